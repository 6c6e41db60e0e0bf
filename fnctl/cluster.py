"""The cluster target's connection: one kubeconfig context and namespace.

Shared by the target's builder (fnctl.builders.kaniko), its deployer
(fnctl.deployers.knative) and the namespace's build templates
(fnctl.clustertemplates). Nothing talks to the cluster before the first call
that needs it; a dry run never does.
"""

from __future__ import annotations

from fnctl import labels
from fnctl.errors import UsageError
from fnctl.kube import client
from fnctl.kube.client import Kube, Resource
from fnctl.kube.config import context_namespace
from fnctl.kube.errors import knative_missing


class Cluster:
    """`context`: kubeconfig context (default: the current one). `namespace`: default the
    context's namespace, else `default` (in a pod: the service account's namespace)."""

    def __init__(self, context: str | None = None, namespace: str | None = None):
        self.context = context
        self._namespace = namespace
        self._kube: Kube | None = None
        self._knative_checked = False

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            self._kube = client.connect(self.context, self._namespace)
        return self._kube

    @property
    def namespace(self) -> str:
        """The namespace in use, found in the kubeconfig (or the pod) without connecting."""
        if self._namespace:
            return self._namespace
        if self._kube is not None:
            return self._kube.namespace
        return context_namespace(self.context)[1] or "default"

    def knative(self) -> Kube:
        """The connection, once Knative Serving is known to be there (asked once)."""
        kube = self.kube
        if not self._knative_checked:
            if not kube.api_group_served("serving.knative.dev", "v1"):
                raise knative_missing(kube.server)
            self._knative_checked = True
        return kube

    def delete_ours(self, res: Resource, name: str, what: str, force: bool) -> bool:
        """Delete `name` if fnctl made it (or `force`); False when it does not exist."""
        kube = self.kube
        obj = kube.get(res, name)
        if obj is None:
            return False
        meta = obj.get("metadata") or {}
        if not force and not labels.MANAGED_BY.items() <= (meta.get("labels") or {}).items():
            raise UsageError(f"{what} in namespace {kube.namespace} was not made by fnctl "
                             f"(it has no label {labels.MANAGED_BY_KEY}=fnctl); fnctl left it alone",
                             f"pass --force to delete it anyway, or use kubectl delete {res.name} {name}")
        # The uid precondition: an object made again meanwhile under the same name is not ours to delete.
        return kube.delete(res, name, uid=meta.get("uid"))
