"""Knative Services: the cluster target's deployer.

A release becomes a create or an update of the Service (a new revision); the
wait watches it until Ready, a failure, or the timeout (fnctl.knative). Knative
keeps the previous revision serving until the new one is ready.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

from fnctl import domains, knative, labels, registryauth, templates, validation
from fnctl.cluster import Cluster
from fnctl.errors import Interrupted, NotFoundError, UsageError
from fnctl.kube.client import CONFIGMAPS, KSERVICES, PODS
from fnctl.model import DEPLOY, WAIT, DeployRequest, DeployResult, Reporter, ServiceInfo
from fnctl.templates import BuildTemplate

if TYPE_CHECKING:
    from fnctl.pipeline import Release


def manifest(release: Release, namespace: str) -> dict:
    request = replace(release.request, registry_secret=registryauth.pull_secret(release.request))
    return knative.service_manifest(request, namespace, release.image.reference,
                                    template=release.prepared.template.name, source=release.prepared.origin,
                                    context_digest=release.context.digest,
                                    image_user=release.prepared.template is templates.READY_MADE)


class KnativeDeployer:
    target = "cluster"

    def __init__(self, cluster: Cluster):
        self.cluster = cluster

    def check(self, request: DeployRequest, template: BuildTemplate) -> None:
        kube = self.cluster.knative()   # every cluster option applies here
        if request.domain:
            domains.check_served(kube)

    def roll_out(self, release: Release, reporter: Reporter) -> DeployResult:
        request = release.request
        kube = self.cluster.knative()
        try:
            reporter.phase(DEPLOY, f"Knative Service {request.name} in namespace {kube.namespace}")
            obj, before = knative.apply(kube, manifest(release, kube.namespace))
            if request.domain:
                domains.apply(kube, request.domain, request.name)
            generation = (obj.get("metadata") or {}).get("generation")
            # The same spec again leaves the generation as it was: no new revision.
            same_spec = before is not None and (before.get("metadata") or {}).get("generation") == generation
            if request.wait:
                reporter.phase(WAIT, f"for {request.name} to be ready (timeout {request.timeout:g}s)")
                obj = knative.wait_ready(kube, request.name, generation, request.timeout)
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted while deploying {request.name}; a Service update already sent "
                              "goes on in the cluster",
                              f"`fnctl describe service {request.name}` shows where it stands") from None
        cached = release.image.cached
        info = self._with_domains(kube, knative.service_info(obj))
        return DeployResult(info, unchanged=same_spec and cached, built=not cached)

    def list(self) -> list[ServiceInfo]:
        kube = self.cluster.knative()
        listing = kube.list(KSERVICES)
        services = sorted((knative.service_info(o) for o in listing.get("items") or []), key=lambda i: i.name)
        mapped = domains.by_service(kube) if services else {}
        for service in services:
            service.domains = mapped.get(service.name, [])
        return services

    def describe(self, name: str) -> ServiceInfo:
        kube = self.cluster.knative()
        obj = kube.get(KSERVICES, name)
        if obj is None:
            raise self._not_found(name)
        return self._with_domains(kube, knative.service_info(obj))

    @staticmethod
    def _with_domains(kube, info: ServiceInfo) -> ServiceInfo:
        info.domains = [domains.url(m) for m in domains.of_service(kube, info.name)]
        return info

    def logs(self, name: str, follow: bool = False, tail: int | None = None) -> Iterator[str]:
        """Not served yet on a cluster: say what to run instead."""
        raise UsageError(
            f"fnctl logs works on the local target; service {name!r} runs in a cluster",
            f"use `kubectl logs -n {self.cluster.namespace} -l serving.knative.dev/service={name} "
            f"-c user-container{' -f' if follow else ''}`")

    def delete(self, name: str, force: bool = False) -> None:
        """Delete the Service and any build pods or ConfigMaps of it left behind.

        A Service that fnctl did not make (no managed-by label) is left alone unless `force`.
        """
        validation.service_name(name)
        kube = self.cluster.knative()
        found = self.cluster.delete_ours(KSERVICES, name, f"service {name!r}", force)
        leftovers = domains.delete_of_service(kube, name)
        for res in (PODS, CONFIGMAPS):
            for item in kube.list(res, label_selector=labels.service_selector(name)).get("items") or []:
                kube.delete(res, item["metadata"]["name"])
                leftovers += 1
        if not found and not leftovers:
            raise self._not_found(name)

    def labelled(self, key: str, value: str) -> list[str]:
        """The Services fnctl made that carry the label key=value (e.g. their manifest's service)."""
        found = self.cluster.knative().list(KSERVICES, label_selector=f"{labels.MANAGED_BY_KEY}=fnctl,{key}={value}")
        return sorted(o["metadata"]["name"] for o in found.get("items") or [])

    def _not_found(self, name: str) -> NotFoundError:
        return NotFoundError(f"service {name!r} not found in namespace {self.cluster.namespace}",
                             "`fnctl get service` lists the services")


class KnativeDeployPlan:
    """Records the Service KnativeDeployer would create, with no API call."""

    target = "cluster"

    def __init__(self, objects: list[dict], cluster: Cluster):
        self.objects = objects
        self.cluster = cluster

    def check(self, request: DeployRequest, template: BuildTemplate) -> None:
        pass

    def roll_out(self, release: Release, reporter: Reporter) -> DeployResult:
        namespace = self.cluster.namespace
        reporter.phase(DEPLOY, f"would create or update Knative Service {release.request.name} in namespace "
                               f"{namespace}")
        service = manifest(release, namespace)
        self.objects.append(service)
        info = knative.service_info(service)
        if release.request.domain:
            mapping = domains.manifest(release.request.domain, release.request.name, namespace)
            self.objects.append(mapping)
            info.domains = [domains.url(mapping)]
        return DeployResult(info, built=not release.image.cached)
