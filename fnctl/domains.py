"""Custom domains of cluster services: Knative DomainMappings (serving.knative.dev/v1beta1).

`deploy service NAME --domain api.example.com` maps the domain to the Service with one
DomainMapping named after the domain (Knative's own naming: the object's name is the host);
`describe` and `get` show the mapped URLs, `delete service` removes the mappings with the
Service. Knative routes the domain only once the cluster lets the namespace claim it: a
ClusterDomainClaim made by an admin, or config-network's autocreate-cluster-domain-claims
(docs/cluster.md).
"""

from __future__ import annotations

from fnctl import knative, labels, validation
from fnctl.errors import EnvironmentProblem, UsageError
from fnctl.kube.client import Kube, Resource
from fnctl.kube.errors import Conflict, Forbidden, KnativeMissing, NotFound

GROUP = "serving.knative.dev"
VERSION = "v1beta1"
DOMAINMAPPINGS = Resource(GROUP, VERSION, "domainmappings", "DomainMapping")


def manifest(domain: str, service: str, namespace: str) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DomainMapping",
        "metadata": {"name": validation.domain(domain), "namespace": namespace,
                     "labels": {**labels.MANAGED_BY, labels.SERVICE: service}},
        "spec": {"ref": {"apiVersion": knative.API_VERSION, "kind": "Service", "name": service,
                         "namespace": namespace}},
    }


def url(mapping: dict) -> str:
    """The mapping's URL: the controller's status.url, else the plain-HTTP URL of its host."""
    return (mapping.get("status") or {}).get("url") or f"http://{mapping['metadata']['name']}"


def check_served(kube: Kube) -> None:
    if not kube.api_group_served(GROUP, VERSION):
        raise EnvironmentProblem(f"this cluster's Knative does not serve {GROUP}/{VERSION} DomainMappings, "
                                 "which --domain needs",
                                 "install Knative Serving 1.x with its domain-mapping CRD, or drop --domain")


def apply(kube: Kube, domain: str, service: str) -> dict:
    """Create the mapping, or point the one fnctl made for `domain` at `service`."""
    body = manifest(domain, service, kube.namespace)
    for _ in range(knative.UPDATE_RETRIES):
        current = kube.get(DOMAINMAPPINGS, domain)
        if current is None:
            try:
                return kube.create(DOMAINMAPPINGS, body)
            except Conflict:
                continue                  # made meanwhile: update it instead
        meta = current.get("metadata") or {}
        if not labels.MANAGED_BY.items() <= (meta.get("labels") or {}).items():
            raise UsageError(f"domain {domain} is already mapped in namespace {kube.namespace} by a DomainMapping "
                             f"fnctl did not make; fnctl left it alone",
                             f"`kubectl get domainmapping {domain} -n {kube.namespace} -o yaml` shows it; delete it "
                             "first to let fnctl manage the domain")
        updated = {**current, "metadata": {**meta, "labels": {**(meta.get("labels") or {}),
                                                               **body["metadata"]["labels"]}},
                   "spec": {**(current.get("spec") or {}), "ref": body["spec"]["ref"]}}
        updated.pop("status", None)
        try:
            return kube.replace(DOMAINMAPPINGS, updated)
        except Conflict:
            continue                      # changed since read: read again
    raise UsageError(f"domain mapping {domain} kept changing while fnctl updated it", "retry")


def of_service(kube: Kube, service: str) -> list[dict]:
    """The mappings fnctl made for `service`; none where DomainMappings are not served or not allowed."""
    try:
        found = kube.list(DOMAINMAPPINGS, label_selector=labels.service_selector(service))
    except (NotFound, KnativeMissing, Forbidden):
        return []
    return sorted(found.get("items") or [], key=lambda m: m["metadata"]["name"])


def by_service(kube: Kube) -> dict[str, list[str]]:
    """service -> its mapped URLs, from one list call (best effort, as `of_service`)."""
    try:
        found = kube.list(DOMAINMAPPINGS, label_selector=f"{labels.MANAGED_BY_KEY}=fnctl,{labels.SERVICE}")
    except (NotFound, KnativeMissing, Forbidden):
        return {}
    urls: dict[str, list[str]] = {}
    for mapping in sorted(found.get("items") or [], key=lambda m: m["metadata"]["name"]):
        service = ((mapping.get("metadata") or {}).get("labels") or {}).get(labels.SERVICE)
        if service:
            urls.setdefault(service, []).append(url(mapping))
    return urls


def delete_of_service(kube: Kube, service: str) -> int:
    """Delete the mappings fnctl made for `service`; how many there were."""
    mappings = of_service(kube, service)
    for mapping in mappings:
        kube.delete(DOMAINMAPPINGS, mapping["metadata"]["name"], uid=mapping["metadata"].get("uid"))
    return len(mappings)
