"""Images built in the cluster by kaniko: the cluster target's builder.

The runtime image is built once per namespace and runtime context: the
ConfigMap fnctl-runtime-images records context digest -> image@digest. The
function image is reused while the Service runs an image built from the very
same context (its fnctl.dev/context annotation). Before reusing either, the
registry is asked whether it still has the image (fnctl.registry); a function
build that fails because the recorded runtime image is gone rebuilds it, once.
Each build is one pod (fnctl.builders.buildpod).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from fnctl import config, knative, labels, registry, registryauth, templates, trust
from fnctl.builders.buildpod import (
    DEFAULT_INIT_IMAGE,
    DEFAULT_KANIKO_IMAGE,
    BuildOptions,
    BuildPods,
    BuildSpec,
    configmap_manifest,
    pod_manifest,
    secret_manifest,
)
from fnctl.cluster import Cluster
from fnctl.clustertemplates import ClusterTemplates
from fnctl.errors import BuildError
from fnctl.kube.client import CONFIGMAPS, KSERVICES
from fnctl.kube.errors import Conflict
from fnctl.model import BUILD, RUNTIME, BuiltImage, DeployRequest, Reporter
from fnctl.source.context import BuildContext
from fnctl.templates import BuildTemplate

if TYPE_CHECKING:
    from fnctl.pipeline import Prepared

DEFAULT_REGISTRY = "knative.registry.svc.cluster.local"
RUNTIME_IMAGES = "fnctl-runtime-images"           # ConfigMap: runtime context digest -> image@digest


def cluster_images() -> config.Config:
    """The image map for builds in the cluster: the `cluster.images` section, never the machine's
    local one (those images exist only on this machine's Docker engine, kaniko pulls in the cluster)."""
    return config.Config(images=config.load().cluster.images)


def build_options(request: DeployRequest, build_timeout: float | None = None,
                  init_image: str = DEFAULT_INIT_IMAGE) -> BuildOptions:
    """A flag wins over the config file's `cluster:` section, which wins over the built-in default.
    A request's timeout bounds each build (the pod's activeDeadlineSeconds too) unless `build_timeout`."""
    defaults = config.load().cluster
    return BuildOptions(registry_host=request.registry_host or defaults.registry_host or DEFAULT_REGISTRY,
                        registry_secret=registryauth.pull_secret(request),
                        insecure_registry=request.insecure_registry or defaults.insecure_registry,
                        kaniko_image=request.kaniko_image or defaults.kaniko_image or DEFAULT_KANIKO_IMAGE,
                        init_image=defaults.upload_image or init_image,
                        timeout=build_timeout if build_timeout is not None else request.timeout,
                        resources=defaults.build_resources)


class KanikoBuilder:
    """Builds in the cluster's namespace (or --build-namespace) and pushes to its registry."""

    def __init__(self, cluster: Cluster, *, build_timeout: float | None = None,
                 init_image: str = DEFAULT_INIT_IMAGE):
        self.cluster = cluster
        self.build_timeout = build_timeout
        self.init_image = init_image
        self.image_config = cluster_images()
        self._recorded: set[str] = set()      # runtime images taken from the record (not built now)

    def templates(self, reporter: Reporter) -> dict[str, BuildTemplate]:
        return ClusterTemplates(self.cluster).for_deploy(reporter)

    def _pods(self, prepared: Prepared, reporter: Reporter) -> BuildPods:
        kube = self.cluster.kube
        options = build_options(prepared.request, self.build_timeout, self.init_image)
        return BuildPods(kube.in_namespace(prepared.request.build_namespace or kube.namespace), options, reporter)

    # -- runtime image ----------------------------------------------------------

    def runtime_image(self, prepared: Prepared, reporter: Reporter, rebuild: bool = False) -> str | None:
        """The template's runtime image by digest, built only when this namespace has not built it yet
        (or `rebuild`, or the registry says the recorded one is gone)."""
        context = prepared.runtime_context
        if context is None:
            return None
        kube = self.cluster.kube
        pods = self._pods(prepared, reporter)
        host = pods.options.registry_host
        marker = kube.get(CONFIGMAPS, RUNTIME_IMAGES)
        known = ((marker or {}).get("data") or {}).get(context.digest)
        if known and known.startswith(host + "/") and not rebuild:
            if registry.manifest_exists(known, pods.options.insecure_registry) is not False:
                reporter.phase(RUNTIME, f"{prepared.template.name} runtime image already built: {known}")
                self._recorded.add(known)
                return known
            reporter.note(f"the recorded runtime image {known} is gone from the registry; building it again")
        spec = runtime_spec(prepared, host)
        reporter.phase(RUNTIME, f"building the {prepared.template.name} runtime image {spec.destination} "
                                f"in kaniko pod {spec.pod_name}")
        image = pods.build(spec)
        self._remember(marker, context.digest, image)
        return image

    def _remember(self, marker: dict | None, digest: str, image: str) -> None:
        kube = self.cluster.kube
        if marker is None:
            try:
                kube.create(CONFIGMAPS, runtime_marker(kube.namespace, {digest: image}))
                return
            except Conflict:            # created meanwhile by another deploy: add our key
                pass
        kube.merge_patch(CONFIGMAPS, RUNTIME_IMAGES, {"data": {digest: image}})

    # -- function image -----------------------------------------------------------

    def function_image(self, prepared: Prepared, runtime_image: str | None, reporter: Reporter) -> BuiltImage:
        kube, name = self.cluster.kube, prepared.request.name
        pods = self._pods(prepared, reporter)
        context = prepared.function_context(runtime_image)
        image = reusable_image(kube.get(KSERVICES, name), context, pods.options.registry_host)
        if image is not None and registry.manifest_exists(image, pods.options.insecure_registry) is False:
            reporter.note(f"the function's image {image} is gone from the registry; building it again")
            image = None
        if image is not None:
            reporter.phase(BUILD, f"the function's build context is unchanged ({context.short_digest}); "
                                  f"reusing {image}")
            return BuiltImage(image, image.rsplit("@", 1)[1], context, cached=True)
        try:
            return self._build_function(prepared, runtime_image, pods, reporter)
        except BuildError as e:
            if not (runtime_image in self._recorded and base_vanished(e, runtime_image)):
                raise
        # The registry lost the recorded runtime image (wiped, garbage-collected): rebuild it, once.
        reporter.note(f"the recorded runtime image {runtime_image} is gone from the registry "
                      "(kaniko: manifest unknown); building it again")
        runtime_image = self.runtime_image(prepared, reporter, rebuild=True)
        return self._build_function(prepared, runtime_image, pods, reporter)

    def discard(self, image: BuiltImage, reporter: Reporter) -> None:
        """Pushed images stay: many registries refuse deletes (the distribution API makes them
        optional), and a registry's garbage collection removes unreferenced ones."""

    def _build_function(self, prepared: Prepared, runtime_image: str | None, pods: BuildPods,
                        reporter: Reporter) -> BuiltImage:
        context = prepared.function_context(runtime_image)
        spec = function_spec(prepared, context, runtime_image, pods.options.registry_host,
                             self.cluster.kube.namespace)
        reporter.phase(BUILD, f"{spec.destination} in kaniko pod {spec.pod_name}")
        image = pods.build(spec)
        return BuiltImage(image, image.rsplit("@", 1)[1], context)


class KanikoBuildPlan:
    """Records the objects KanikoBuilder would create for a first deploy, with no API call.

    Digests the cluster would assign are unknown, so images appear by tag. Only the
    built-in templates are known without the cluster.
    """

    def __init__(self, objects: list[dict], cluster: Cluster, *, build_timeout: float | None = None,
                 init_image: str = DEFAULT_INIT_IMAGE):
        self.objects = objects
        self.cluster = cluster
        self.build_timeout = build_timeout
        self.init_image = init_image
        self.image_config = cluster_images()

    def templates(self, reporter: Reporter) -> dict[str, BuildTemplate]:
        return {}

    def _record(self, prepared: Prepared, spec: BuildSpec) -> None:
        options = build_options(prepared.request, self.build_timeout, self.init_image)
        namespace = prepared.request.build_namespace or self.cluster.namespace
        self.objects.append(pod_manifest(spec, namespace, options))
        if spec.small:
            self.objects.append(configmap_manifest(spec, namespace))
        if spec.secrets:
            shown = secret_manifest(spec, namespace)
            shown["data"] = dict.fromkeys(spec.secrets, "")      # what it would create, without the values
            self.objects.append(shown)

    def discard(self, image: BuiltImage, reporter: Reporter) -> None:
        pass

    def runtime_image(self, prepared: Prepared, reporter: Reporter) -> str | None:
        context = prepared.runtime_context
        if context is None:
            return None
        spec = runtime_spec(prepared, build_options(prepared.request).registry_host)
        reporter.phase(RUNTIME, f"would build {spec.destination} unless the namespace has it")
        self._record(prepared, spec)
        self.objects.append(runtime_marker(self.cluster.namespace, {context.digest: spec.destination}))
        return spec.destination

    def function_image(self, prepared: Prepared, runtime_image: str | None, reporter: Reporter) -> BuiltImage:
        context = prepared.function_context(runtime_image)
        spec = function_spec(prepared, context, runtime_image, build_options(prepared.request).registry_host,
                             self.cluster.namespace)
        reporter.phase(BUILD, f"would build {spec.destination} unless the Service runs it already")
        self._record(prepared, spec)
        return BuiltImage(spec.destination, None, context)


# -- what to build --------------------------------------------------------------------

def runtime_spec(prepared: Prepared, host: str) -> BuildSpec:
    context = prepared.runtime_context
    assert context is not None
    return BuildSpec(service=prepared.request.name, destination=runtime_destination(host, prepared.template.name,
                                                                                    context),
                     context=context, kind="runtime",
                     build_args={**prepared.runtime_build_args(), **trust.proxies(for_cluster=True)})


def function_spec(prepared: Prepared, context: BuildContext, runtime_image: str | None, host: str,
                  namespace: str) -> BuildSpec:
    template, values = prepared.template, prepared.values
    args = template.public(values)          # secret parameters go as a Secret volume, never as args
    if runtime_image is not None:
        args[templates.RUNTIME_IMAGE_ARG] = runtime_image
    args.update(trust.proxies(for_cluster=True))    # Docker's predefined proxy ARGs: RUN steps see them
    return BuildSpec(service=prepared.request.name,
                     destination=function_destination(host, namespace, prepared.request.name, context),
                     context=context, build_args=args, secrets=template.secrets(values) or {})


def function_destination(host: str, namespace: str, name: str, context: BuildContext) -> str:
    return f"{host}/{namespace}/{name}:{context.short_digest}"


def runtime_destination(host: str, template: str, context: BuildContext) -> str:
    return f"{host}/fnctl-runtime/{template}:{context.short_digest}"


def runtime_marker(namespace: str, data: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": RUNTIME_IMAGES, "namespace": namespace, "labels": dict(labels.MANAGED_BY)},
            "data": data}


def reusable_image(existing: dict | None, context: BuildContext, host: str) -> str | None:
    """The running image when the Service was built from this very context (nothing to build)."""
    if not existing:
        return None
    annotations = (existing.get("metadata") or {}).get("annotations") or {}
    if annotations.get(labels.CONTEXT) != context.digest:
        return None
    image = knative.service_info(existing).image or ""
    return image if "@sha256:" in image and image.startswith(host + "/") else None


def base_vanished(error: BuildError, base_image: str | None) -> bool:
    """Did kaniko fail because the registry no longer has `base_image` (repo@sha256:…)?"""
    if not base_image:
        return False
    text = f"{error.message}\n{error.details or ''}"
    repo = base_image.split("@", 1)[0].split("/", 1)[-1]
    return bool(re.search(r"MANIFEST_UNKNOWN|manifest unknown", text, re.I)) and repo in text
