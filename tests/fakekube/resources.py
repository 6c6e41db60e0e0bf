"""The resource types the fake API server serves."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    singular: str = ""
    short_names: tuple = ()
    status_subresource: bool = False
    generation: bool = False  # metadata.generation tracks spec changes
    return_deleted: bool = True  # DELETE returns the object (else a Success Status)
    subresources: tuple = ()
    crd_file: str | None = None
    categories: tuple = ()
    verbs: tuple = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    qualified_plural = key

    @property
    def kind_qualified(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def is_custom(self) -> bool:
        return bool(self.group)

    def names(self):
        yield self.plural
        yield self.kind.lower()
        yield self.singular or self.kind.lower()
        yield from self.short_names


CORE = [
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False, singular="namespace", short_names=("ns",),
                 status_subresource=True, subresources=("status",),
                 verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    ResourceType("", "v1", "pods", "Pod", singular="pod", short_names=("po",), status_subresource=True,
                 generation=True, subresources=("status", "log", "exec"), categories=("all",)),
    ResourceType("", "v1", "configmaps", "ConfigMap", singular="configmap", short_names=("cm",), return_deleted=False),
    ResourceType("", "v1", "secrets", "Secret", singular="secret", return_deleted=False),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", singular="serviceaccount", short_names=("sa",),
                 return_deleted=False),
    ResourceType("", "v1", "events", "Event", singular="event", short_names=("ev",), return_deleted=False),
]

KNATIVE_GROUP = "serving.knative.dev"

KNATIVE = [
    ResourceType(KNATIVE_GROUP, "v1", "services", "Service", singular="service", short_names=("kservice", "ksvc"),
                 status_subresource=True, generation=True, subresources=("status",),
                 crd_file="300-resources/service.yaml",
                 categories=("all", "knative", "serving")),
    ResourceType(KNATIVE_GROUP, "v1", "configurations", "Configuration", singular="configuration",
                 short_names=("config", "cfg"), status_subresource=True, generation=True, subresources=("status",),
                 crd_file="300-resources/configuration.yaml", categories=("all", "knative", "serving")),
    ResourceType(KNATIVE_GROUP, "v1", "revisions", "Revision", singular="revision", short_names=("rev",),
                 status_subresource=True, generation=True, subresources=("status",),
                 crd_file="300-resources/revision.yaml",
                 categories=("all", "knative", "serving")),
    ResourceType(KNATIVE_GROUP, "v1", "routes", "Route", singular="route", short_names=("rt",),
                 status_subresource=True, generation=True, subresources=("status",),
                 crd_file="300-resources/route.yaml",
                 categories=("all", "knative", "serving")),
    # Custom domains: served as v1beta1 only (Knative Serving 1.23).
    ResourceType(KNATIVE_GROUP, "v1beta1", "domainmappings", "DomainMapping", singular="domainmapping",
                 short_names=("dm",), status_subresource=True, generation=True, subresources=("status",),
                 crd_file="300-resources/domain-mapping.yaml", categories=("all", "knative", "serving")),
]

ALL = CORE + KNATIVE
BY_KEY = {rt.key: rt for rt in ALL}


def by_path(group: str, version: str, plural: str) -> ResourceType | None:
    rt = BY_KEY.get(f"{plural}.{group}" if group else plural)
    if rt is not None and rt.version == version:
        return rt
    return None


def resolve(name: str) -> ResourceType:
    """'pods', 'Pod', 'po', 'services.serving.knative.dev', 'ksvc', 'revisions.serving.knative.dev'...

    A bare 'services'/'service' means the Knative Service (no core Service is served).
    """
    if name in BY_KEY:
        return BY_KEY[name]
    low = name.lower()
    group = None
    if "." in low:
        low, group = low.split(".", 1)
        if group.startswith("v1."):
            group = group[3:]
    for rt in ALL:
        if group is not None and rt.group != group:
            continue
        if low in rt.names():
            return rt
    raise KeyError(f"unknown resource {name!r}")
