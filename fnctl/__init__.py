"""fnctl: deploy Lambda-style and Azure-style functions as Knative Services."""

__version__ = "0.1.0"
