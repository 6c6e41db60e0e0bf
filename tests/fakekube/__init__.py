"""A fake Kubernetes API server (core v1 + Knative Serving) for testing fnctl with the real
`kubernetes` Python client. See FakeCluster."""
from .cluster import FakeCluster
from .errors import ApiError

__all__ = ["FakeCluster", "ApiError"]
