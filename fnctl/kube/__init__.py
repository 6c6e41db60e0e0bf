"""Cluster access: the only package that imports `kubernetes` (lazily).

    from fnctl.kube import has_cluster_config, connect
    if has_cluster_config():
        kube = connect(context=None, namespace=None)   # kubeconfig or in-cluster service account
"""

from __future__ import annotations

from fnctl.kube.config import context_namespace, has_cluster_config, kubeconfig_files

__all__ = ["connect", "context_namespace", "has_cluster_config", "kubeconfig_files"]


def connect(context: str | None = None, namespace: str | None = None):
    """A `fnctl.kube.client.Kube` for the context (default: current) and namespace."""
    from fnctl.kube.client import connect as _connect

    return _connect(context, namespace)
