"""Knative Services: the cluster target's deployer.

A release becomes a create or an update of the Service (a new revision); the
wait watches it until Ready, a failure, or the timeout (fnctl.knative). Knative
keeps the previous revision serving until the new one is ready.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

from fnctl import domains, knative, labels, redeploy, registryauth, templates, validation
from fnctl.cluster import Cluster
from fnctl.errors import Interrupted, NotFoundError, UsageError
from fnctl.kube.client import CONFIGMAPS, KSERVICES, PODS
from fnctl.model import DEPLOY, WAIT, DeployRequest, DeployResult, RecordedSettings, Reporter, ServiceInfo
from fnctl.templates import BuildTemplate

if TYPE_CHECKING:
    from fnctl.pipeline import Release


def manifest(release: Release, namespace: str) -> dict:
    request = replace(release.request, registry_secret=registryauth.pull_secret(release.request))
    return knative.service_manifest(request, namespace, release.image.reference,
                                    template=release.prepared.template.name, source=release.prepared.origin,
                                    context_digest=release.context.digest,
                                    image_user=release.prepared.template is templates.READY_MADE,
                                    build_args=redeploy.recordable(release.prepared.template,
                                                                   release.request.build_args))


class KnativeDeployer:
    target = "cluster"

    def __init__(self, cluster: Cluster):
        self.cluster = cluster

    def check(self, request: DeployRequest, template: BuildTemplate) -> None:
        kube = self.cluster.knative()   # every cluster option applies here
        if request.domain:
            domains.check_served(kube)

    def serialize(self, name: str, reporter: Reporter):
        # Deploys from any machine meet only in the API server: an update carries the
        # resourceVersion it read, and a 409 Conflict means read again (fnctl.knative.apply).
        return contextlib.nullcontext()

    def recorded(self, name: str) -> RecordedSettings | None:
        return recorded_settings(self.cluster.knative().get(KSERVICES, name))

    def roll_out(self, release: Release, reporter: Reporter) -> DeployResult:
        request = release.request
        kube = self.cluster.knative()
        try:
            reporter.phase(DEPLOY, f"Knative Service {request.name} in namespace {kube.namespace}")
            obj, before = knative.apply(kube, manifest(release, kube.namespace), on_conflict=reporter.note)
            if request.domain:
                domains.apply(kube, request.domain, request.name)
            generation = (obj.get("metadata") or {}).get("generation")
            # The same spec again leaves the generation as it was: no new revision.
            same_spec = before is not None and (before.get("metadata") or {}).get("generation") == generation
            if request.wait:
                reporter.phase(WAIT, f"for {request.name} to be ready (timeout {request.timeout:g}s)")
                obj = knative.wait_ready(kube, request.name, generation, request.timeout)
                now = (obj.get("metadata") or {}).get("generation")
                if generation is not None and now is not None and now > generation:
                    reporter.note(f"{request.name} was updated again by someone else while this deploy waited "
                                  f"(generation {now}, this deploy's was {generation}): that update serves now")
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

    def delete(self, name: str, force: bool = False) -> list[str]:
        """Delete the Service and any build pods or ConfigMaps of it left behind.

        A Service that fnctl did not make (no managed-by label) is left alone unless `force`.
        """
        validation.service_name(name)
        kube = self.cluster.knative()
        removed = []
        if self.cluster.delete_ours(KSERVICES, name, f"service {name!r}", force):
            removed.append(f"Knative Service {name}")
        mappings = domains.delete_of_service(kube, name)
        if mappings:
            removed.append("its DomainMapping" if mappings == 1 else f"its {mappings} DomainMappings")
        for res in (PODS, CONFIGMAPS):
            for item in kube.list(res, label_selector=labels.service_selector(name)).get("items") or []:
                if kube.delete(res, item["metadata"]["name"]):
                    removed.append(f"{res.kind} {item['metadata']['name']}")
        if not removed:
            raise self._not_found(name)
        return removed

    def labelled(self, key: str, value: str) -> list[str]:
        """The Services fnctl made that carry the label key=value (e.g. their manifest's service)."""
        found = self.cluster.knative().list(KSERVICES, label_selector=f"{labels.MANAGED_BY_KEY}=fnctl,{key}={value}")
        return sorted(o["metadata"]["name"] for o in found.get("items") or [])

    def _not_found(self, name: str) -> NotFoundError:
        return NotFoundError(f"service {name!r} not found in namespace {self.cluster.namespace}",
                             "`fnctl get service` lists the services")


def recorded_settings(service: dict | None) -> RecordedSettings | None:
    """What the Service was given: its build-args annotation and its container's plain env values."""
    if service is None:
        return None
    annotations = (service.get("metadata") or {}).get("annotations") or {}
    containers = (((service.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [{}]
    env = {e["name"]: e["value"] for e in containers[0].get("env") or [] if "name" in e and "value" in e}
    return RecordedSettings(annotations.get(labels.TEMPLATE), redeploy.parse(annotations.get(labels.BUILD_ARGS)), env)


class KnativeDeployPlan:
    """Records the Service KnativeDeployer would create, with no API call."""

    target = "cluster"

    def __init__(self, objects: list[dict], cluster: Cluster):
        self.objects = objects
        self.cluster = cluster

    def check(self, request: DeployRequest, template: BuildTemplate) -> None:
        pass

    def serialize(self, name: str, reporter: Reporter):
        return contextlib.nullcontext()

    def recorded(self, name: str) -> RecordedSettings | None:
        return None                     # planned as a first deploy, with no API call

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
