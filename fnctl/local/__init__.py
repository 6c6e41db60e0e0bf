from fnctl.local.target import LocalTarget

__all__ = ["LocalTarget"]
