"""The composition root: which target serves a command."""

from __future__ import annotations

from fnctl.errors import EnvironmentProblem
from fnctl.model import Reporter, Target

NO_CLUSTER_NOTE = "no Kubernetes configuration found (KUBECONFIG, ~/.kube/config): using the local Docker engine"


def has_cluster_config() -> bool:
    try:
        from fnctl.kube import has_cluster_config as found
    except ImportError:      # the cluster path is not installed in this build
        return False
    return found()


def choose_target(reporter: Reporter, local: bool = False, cluster: bool = False,
                  context: str | None = None, namespace: str | None = None, announce: bool = False) -> Target:
    if local and (cluster or context):
        raise EnvironmentProblem("--local cannot be combined with --cluster or --context",
                                 "pick one target")
    if local:
        return _local()
    if cluster or context or has_cluster_config():
        if not has_cluster_config():
            raise EnvironmentProblem(
                "no Kubernetes configuration found, but the cluster was asked for",
                "set KUBECONFIG or create ~/.kube/config (e.g. `kubectl config view`), or use --local")
        from fnctl.cluster import ClusterTarget

        return ClusterTarget(context=context, namespace=namespace)
    if announce:
        reporter.note(NO_CLUSTER_NOTE)
    return _local()


def _local() -> Target:
    from fnctl.local import LocalTarget

    return LocalTarget()
