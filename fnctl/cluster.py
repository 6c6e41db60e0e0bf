"""The cluster target: functions as Knative Services, images built in the cluster by kaniko.

    target = ClusterTarget(context=None, namespace=None)   # kubeconfig's current context / namespace
    result = target.deploy(request, reporter)               # source -> context -> kaniko -> Knative
    target.list(); target.describe(name); target.delete(name)
    target.deploy_template("path/or/https://.../template.yaml"); target.templates(); target.delete_template(name)
    target.dry_run(request)                                  # the objects a deploy would create; no API call

Nothing talks to the cluster before the first method call that needs it.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from fnctl import config, knative, registry, templates, validation
from fnctl.builders.kaniko import (
    DEFAULT_INIT_IMAGE,
    DEFAULT_KANIKO_IMAGE,
    BuildOptions,
    BuildSpec,
    KanikoBuilder,
    configmap_manifest,
    pod_manifest,
    secret_manifest,
)
from fnctl.errors import BuildError, ClusterError, Interrupted, NotFoundError, TemplateError, UsageError
from fnctl.model import DeployRequest, DeployResult, Reporter, ServiceInfo
from fnctl.pipeline import Prepared, prepare
from fnctl.redact import redact
from fnctl.source.context import BuildContext

DEFAULT_REGISTRY = "knative.registry.svc.cluster.local"
RUNTIME_IMAGES = "fnctl-runtime-images"           # ConfigMap: runtime context digest -> image@digest
TEMPLATE_LABEL = "fnctl.dev/buildtemplate"
TEMPLATE_PATHS = "fnctl.dev/paths"                 # annotation: ConfigMap key -> file path, when they differ
TEMPLATE_PREFIX = "fnctl-buildtemplate-"
TEMPLATE_LIMIT = 900 * 1024
MANAGED_BY = {"app.kubernetes.io/managed-by": "fnctl"}
_CM_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


class ClusterTarget:
    """Deploys to Knative Serving in a Kubernetes cluster.

    `context`: kubeconfig context (default: the current one). `namespace`: default the
    context's namespace, else `default` (in a pod: the service account's namespace).
    A request's `timeout` bounds each kaniko build (the build pod's activeDeadlineSeconds too)
    and the wait for readiness; `build_timeout` overrides it for builds. `init_image` runs the
    upload init container of large contexts.
    """

    name = "cluster"

    def __init__(self, context: str | None = None, namespace: str | None = None, *,
                 build_timeout: float | None = None, init_image: str = DEFAULT_INIT_IMAGE):
        self.context = context
        self._namespace = namespace
        self.build_timeout = build_timeout
        self.init_image = init_image
        self._kube = None
        self._knative_checked = False

    # -- connection -------------------------------------------------------

    @property
    def kube(self):
        if self._kube is None:
            from fnctl.kube import connect

            self._kube = connect(self.context, self._namespace)
        return self._kube

    @property
    def namespace(self) -> str:
        """The namespace in use (connects to find out only if not given)."""
        if self._namespace:
            return self._namespace
        return self.kube.namespace

    def _knative(self):
        kube = self.kube
        if not self._knative_checked:
            from fnctl.kube.errors import knative_missing

            if not kube.api_group_served("serving.knative.dev", "v1"):
                raise knative_missing(kube.server)
            self._knative_checked = True
        return kube

    # -- deploy -----------------------------------------------------------

    def deploy(self, request: DeployRequest, reporter: Reporter) -> DeployResult:
        try:
            return self._deploy(request, reporter)
        except KeyboardInterrupt:
            # Builds clean up after themselves (and raise Interrupted); here the Service may be half-way.
            raise Interrupted(f"interrupted while deploying {request.name}; build pods were deleted, and a "
                              "Service update already sent goes on in the cluster",
                              f"`fnctl describe service {request.name}` shows where it stands") from None

    def _deploy(self, request: DeployRequest, reporter: Reporter) -> DeployResult:
        from fnctl.kube.client import KSERVICES

        validation.service_name(request.name)
        phases = PhaseClock(reporter)
        kube = self._knative()
        template = templates.find(request.template, extra=self._cluster_templates(phases))
        phases.phase("source", redact(request.source))
        prepared = prepare(request, template, cfg=_cluster_images())
        values, origin = prepared.values, prepared.origin
        options = self._options(request)
        builder = KanikoBuilder(kube.in_namespace(request.build_namespace or kube.namespace), options, phases)
        runtime_image, recorded = self._runtime_image(kube, builder, request, prepared, phases)
        context = prepared.function_context(runtime_image)
        existing = kube.get(KSERVICES, request.name)
        image = _reusable_image(existing, context, options.registry_host)
        if image is not None and registry.manifest_exists(image, options.insecure_registry) is False:
            phases.note(f"the function's image {image} is gone from the registry; building it again")
            image = None
        built = image is None
        if image is None:
            def build_function(runtime: str | None) -> tuple[BuildContext, str]:
                ctx = prepared.function_context(runtime)
                spec = BuildSpec(service=request.name,
                                 destination=function_destination(options.registry_host, kube.namespace,
                                                                  request.name, ctx),
                                 context=ctx, build_args=_build_args(template, values, runtime),
                                 secrets=template.secrets(values) or {})
                return ctx, builder.build(spec)

            try:
                context, image = build_function(runtime_image)
            except BuildError as e:
                if not (recorded and runtime_image and _base_vanished(e, runtime_image)):
                    raise
                # The registry lost the recorded runtime image (wiped, garbage-collected): rebuild it, once.
                phases.note(f"the recorded runtime image {runtime_image} is gone from the registry "
                            "(kaniko: manifest unknown); building it again")
                runtime_image, _ = self._runtime_image(kube, builder, request, prepared, phases, rebuild=True)
                context, image = build_function(runtime_image)
        else:
            phases.note(f"the function's build context is unchanged ({context.short_digest}); "
                        "reusing its image")
        manifest = knative.service_manifest(request, kube.namespace, image, template=template.name,
                                            source=origin, context_digest=context.digest)
        phases.phase("deploy", f"Knative Service {request.name} in namespace {kube.namespace}")
        obj, created = knative.apply(kube, manifest)
        generation = (obj.get("metadata") or {}).get("generation")
        unchanged = (not created and existing is not None
                     and (existing.get("metadata") or {}).get("generation") == generation)
        if request.wait:
            phases.phase("wait", f"for {request.name} to be ready (timeout {request.timeout:g}s)")
            obj = knative.wait_ready(kube, request.name, generation, request.timeout)
        phases.stop()
        return DeployResult(knative.service_info(obj), unchanged=unchanged and not built, built=built,
                            phases=phases.totals)

    def _options(self, request: DeployRequest) -> BuildOptions:
        """The build options: a flag wins over the config file's `cluster:` section, which wins over
        the built-in default."""
        defaults = config.load().cluster
        return BuildOptions(registry_host=request.registry_host or defaults.registry_host or DEFAULT_REGISTRY,
                            registry_secret=request.registry_secret,
                            insecure_registry=request.insecure_registry or defaults.insecure_registry,
                            kaniko_image=request.kaniko_image or defaults.kaniko_image or DEFAULT_KANIKO_IMAGE,
                            init_image=defaults.upload_image or self.init_image,
                            timeout=self.build_timeout if self.build_timeout is not None else request.timeout,
                            resources=defaults.build_resources)

    def _runtime_image(self, kube, builder: KanikoBuilder, request: DeployRequest, prepared: Prepared,
                       reporter, rebuild: bool = False) -> tuple[str | None, bool]:
        """The template's runtime image by digest, built only when this namespace has not built it yet
        (or `rebuild`, or the registry says the recorded one is gone). (image, taken from the record)."""
        from fnctl.kube.client import CONFIGMAPS

        template, values, context = prepared.template, prepared.values, prepared.runtime_context
        if context is None:
            return None, False
        host = builder.options.registry_host
        marker = kube.get(CONFIGMAPS, RUNTIME_IMAGES)
        known = ((marker or {}).get("data") or {}).get(context.digest)
        if known and known.startswith(host + "/") and not rebuild:
            if registry.manifest_exists(known, builder.options.insecure_registry) is not False:
                reporter.note(f"runtime image of {template.name} already built: {known}")
                return known, True
            reporter.note(f"the recorded runtime image {known} is gone from the registry; building it again")
        spec = BuildSpec(service=request.name, destination=runtime_destination(host, template.name, context),
                         context=context, kind="runtime",
                         build_args={k: values[k] for k in template.runtime_image.parameters if k in values})
        image = builder.build(spec)
        self._remember_runtime(kube, marker, context.digest, image)
        return image, False

    def _remember_runtime(self, kube, marker: dict | None, digest: str, image: str) -> None:
        from fnctl.kube.client import CONFIGMAPS

        if marker is None:
            try:
                kube.create(CONFIGMAPS, runtime_marker(kube.namespace, {digest: image}))
                return
            except Exception as e:          # created meanwhile by another deploy: add our key
                if getattr(e, "status", None) != 409:
                    raise
        kube.merge_patch(CONFIGMAPS, RUNTIME_IMAGES, {"data": {digest: image}})

    # -- services ---------------------------------------------------------

    def list(self) -> list[ServiceInfo]:
        from fnctl.kube.client import KSERVICES

        listing = self._knative().list(KSERVICES)
        infos = [knative.service_info(o) for o in listing.get("items") or []]
        return sorted(infos, key=lambda i: i.name)

    def describe(self, name: str) -> ServiceInfo:
        from fnctl.kube.client import KSERVICES

        kube = self._knative()
        obj = kube.get(KSERVICES, name)
        if obj is None:
            raise NotFoundError(f"service {name!r} not found in namespace {kube.namespace}",
                                "`fnctl get service` lists the services")
        return knative.service_info(obj)

    def logs(self, name: str, follow: bool = False, tail: int | None = None):
        """Not served yet on a cluster: say what to run instead."""
        raise UsageError(
            f"fnctl logs works on the local target; service {name!r} runs in a cluster",
            f"use `kubectl logs -n {self.namespace} -l serving.knative.dev/service={name} "
            f"-c user-container{' -f' if follow else ''}`")

    def delete(self, name: str, force: bool = False) -> None:
        """Delete the Service and any build pods or ConfigMaps of it left behind.

        A Service that fnctl did not make (no managed-by label) is left alone unless `force`.
        """
        from fnctl.kube.client import CONFIGMAPS, KSERVICES, PODS

        validation.service_name(name)
        kube = self._knative()
        found = _delete_ours(kube, KSERVICES, name, f"service {name!r}", force)
        selector = f"app.kubernetes.io/managed-by=fnctl,fnctl.dev/service={name}"
        leftovers = 0
        for res in (PODS, CONFIGMAPS):
            for item in kube.list(res, label_selector=selector).get("items") or []:
                kube.delete(res, item["metadata"]["name"])
                leftovers += 1
        if not found and not leftovers:
            raise NotFoundError(f"service {name!r} not found in namespace {kube.namespace}",
                                "`fnctl get service` lists the services")

    # -- build templates in the cluster -------------------------------------

    def templates(self) -> dict[str, templates.BuildTemplate]:
        """The namespace's build templates (origin cluster:<namespace>), by name."""
        from fnctl.kube.client import CONFIGMAPS

        kube = self.kube
        found = {}
        for cm in kube.list(CONFIGMAPS, label_selector=TEMPLATE_LABEL).get("items") or []:
            try:
                t = template_from_configmap(cm, kube.namespace)
            except TemplateError:
                continue        # a broken one must not break every deploy; `describe` shows it
            found[t.name] = t
        return found

    def _cluster_templates(self, reporter: Reporter) -> dict[str, templates.BuildTemplate]:
        try:
            return self.templates()
        except ClusterError as e:
            if getattr(e, "status", None) != 403:
                raise
            reporter.note("cannot list the namespace's build templates (RBAC); using the built-in ones")
            return {}

    def deploy_template(self, file_or_url: str) -> templates.BuildTemplate:
        """Store a template (folder, template.yaml file, or https URL of a template.yaml) in the namespace."""
        from fnctl.kube.client import CONFIGMAPS

        kube = self.kube
        text, files = read_template_source(file_or_url)
        cm = template_configmap(text, files, kube.namespace)
        template = template_from_configmap(cm, kube.namespace)
        current = kube.get(CONFIGMAPS, cm["metadata"]["name"])
        if current is None:
            kube.create(CONFIGMAPS, cm)
        else:
            cm["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            kube.replace(CONFIGMAPS, cm)
        return template

    def delete_template(self, name: str, force: bool = False) -> None:
        from fnctl.kube.client import CONFIGMAPS

        validation.template_name(name)
        kube = self.kube
        if not _delete_ours(kube, CONFIGMAPS, TEMPLATE_PREFIX + name, f"build template {name!r}", force):
            raise NotFoundError(f"build template {name!r} not found in namespace {kube.namespace}",
                                "`fnctl get buildtemplate` lists them")

    # -- dry run ------------------------------------------------------------

    def dry_run(self, request: DeployRequest) -> list[dict]:
        """Every object a first deploy would create, without any API call.

        Digests the cluster would assign are unknown, so images appear by tag.
        Only built-in templates are known without the cluster.
        """
        from fnctl.kube.config import context_namespace

        validation.service_name(request.name)
        namespace = self._namespace or context_namespace(self.context)[1] or "default"
        build_namespace = request.build_namespace or namespace
        prepared = prepare(request, templates.find(request.template), cfg=_cluster_images())
        template, values, origin = prepared.template, prepared.values, prepared.origin
        options = self._options(request)
        objects: list[dict] = []
        runtime_image = None
        runtime_ctx = prepared.runtime_context
        if runtime_ctx is not None:
            runtime_image = runtime_destination(options.registry_host, template.name, runtime_ctx)
            spec = BuildSpec(service=request.name, destination=runtime_image, context=runtime_ctx,
                             kind="runtime",
                             build_args={k: values[k] for k in template.runtime_image.parameters if k in values})
            objects += _build_objects(spec, build_namespace, options)
            objects.append(runtime_marker(namespace, {runtime_ctx.digest: runtime_image}))
        context = prepared.function_context(runtime_image)
        image = function_destination(options.registry_host, namespace, request.name, context)
        spec = BuildSpec(service=request.name, destination=image, context=context,
                         build_args=_build_args(template, values, runtime_image),
                         secrets=template.secrets(values) or {})
        objects += _build_objects(spec, build_namespace, options)
        objects.append(knative.service_manifest(request, namespace, image, template=template.name,
                                                source=origin, context_digest=context.digest))
        return objects


# -- pure helpers ---------------------------------------------------------------

class PhaseClock:
    """A Reporter that passes everything on and times each phase (summed by name)."""

    def __init__(self, reporter: Reporter):
        self.reporter = reporter
        self.totals: dict[str, float] = {}
        self._current: tuple[str, float] | None = None

    def phase(self, name: str, detail: str = "") -> None:
        self.stop()
        self._current = (name, time.monotonic())
        self.reporter.phase(name, detail)

    def stop(self) -> None:
        if self._current:
            name, start = self._current
            self.totals[name] = self.totals.get(name, 0.0) + time.monotonic() - start
            self._current = None

    def log(self, line: str) -> None:
        self.reporter.log(line)

    def note(self, text: str) -> None:
        self.reporter.note(text)


def _build_args(template: templates.BuildTemplate, values: dict[str, str],
                runtime_image: str | None) -> dict[str, str]:
    args = template.public(values)          # secret parameters go as a Secret volume, never as args
    if runtime_image is not None:
        args[templates.RUNTIME_IMAGE_ARG] = runtime_image
    return args


def _delete_ours(kube, res, name: str, what: str, force: bool) -> bool:
    """Delete `name` if fnctl made it (or `force`); False when it does not exist."""
    obj = kube.get(res, name)
    if obj is None:
        return False
    meta = obj.get("metadata") or {}
    if not force and not MANAGED_BY.items() <= (meta.get("labels") or {}).items():
        label = "{}={}".format(*next(iter(MANAGED_BY.items())))
        raise UsageError(f"{what} in namespace {kube.namespace} was not made by fnctl "
                         f"(it has no label {label}); fnctl left it alone",
                         f"pass --force to delete it anyway, or use kubectl delete {res.name} {name}")
    # The uid precondition: an object made again meanwhile under the same name is not ours to delete.
    return kube.delete(res, name, uid=meta.get("uid"))


def _cluster_images() -> config.Config:
    """The image map for builds in the cluster: the `cluster.images` section, never the machine's
    local one (those images exist only on this machine's Docker engine, kaniko pulls in the cluster)."""
    return config.Config(images=config.load().cluster.images)


def function_destination(host: str, namespace: str, name: str, context: BuildContext) -> str:
    return f"{host}/{namespace}/{name}:{context.short_digest}"


def runtime_destination(host: str, template: str, context: BuildContext) -> str:
    return f"{host}/fnctl-runtime/{template}:{context.short_digest}"


def _base_vanished(error: BuildError, base_image: str) -> bool:
    """Did kaniko fail because the registry no longer has `base_image` (repo@sha256:…)?"""
    text = f"{error.message}\n{error.details or ''}"
    repo = base_image.split("@", 1)[0].split("/", 1)[-1]
    return bool(re.search(r"MANIFEST_UNKNOWN|manifest unknown", text, re.I)) and repo in text


def _reusable_image(existing: dict | None, context: BuildContext, host: str) -> str | None:
    """The running image when the Service was built from this very context (nothing to build)."""
    if not existing:
        return None
    annotations = (existing.get("metadata") or {}).get("annotations") or {}
    if annotations.get(knative.CONTEXT_ANNOTATION) != context.digest:
        return None
    image = knative.service_info(existing).image or ""
    return image if "@sha256:" in image and image.startswith(host + "/") else None


def _build_objects(spec: BuildSpec, namespace: str, options: BuildOptions) -> list[dict]:
    objects = [pod_manifest(spec, namespace, options)]
    if spec.small:
        objects.append(configmap_manifest(spec, namespace))
    if spec.secrets:
        # A dry run prints what it would create: the Secret without its values.
        shown = secret_manifest(spec, namespace)
        shown["data"] = dict.fromkeys(spec.secrets, "")
        objects.append(shown)
    return objects


def runtime_marker(namespace: str, data: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": RUNTIME_IMAGES, "namespace": namespace, "labels": dict(MANAGED_BY)},
            "data": data}


def read_template_source(file_or_url: str) -> tuple[str, dict[str, bytes]]:
    """(template.yaml text, the files beside it) from a folder, a template.yaml, or an https URL."""
    if file_or_url.startswith(("http://", "https://")):
        from fnctl import download

        data = download.fetch(file_or_url, TEMPLATE_LIMIT)      # one byte over: template_configmap says so
        try:
            return data.decode(), {}
        except UnicodeDecodeError:
            raise TemplateError(f"{redact(file_or_url)} is not a text file",
                                "give the URL of a template.yaml") from None
    path = Path(file_or_url).expanduser()
    if path.is_file():
        folder = path.parent
        main = path
    elif path.is_dir():
        folder = path
        main = path / "template.yaml"
        if not main.is_file():
            raise TemplateError(f"{path} has no template.yaml", "a template folder needs template.yaml")
    else:
        raise UsageError(f"build template {file_or_url!r} does not exist",
                         "give a template folder, its template.yaml, or an https URL")
    files = {p.relative_to(folder).as_posix(): p.read_bytes()
             for p in sorted(folder.rglob("*"))
             if p.is_file() and p != main and "__pycache__" not in p.parts and ".git" not in p.parts}
    return main.read_text(), files


def template_configmap(text: str, files: dict[str, bytes], namespace: str) -> dict:
    """The ConfigMap holding a template: data template.yaml plus its files (binary ones in binaryData)."""
    import yaml

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise TemplateError(f"the template is not valid YAML: {e}", "fix template.yaml") from None
    # Validate before storing anything.
    parsed = templates.parse(document, {**files, "template.yaml": text.encode()}, f"cluster:{namespace}")
    data = {"template.yaml": text}
    binary: dict[str, str] = {}
    paths: dict[str, str] = {}
    for i, (path, content) in enumerate(sorted(files.items())):
        key = path if _CM_KEY.match(path) and path not in ("template.yaml",) else f"file-{i}"
        if key != path:
            paths[key] = path
        try:
            data[key] = content.decode()
        except UnicodeDecodeError:
            import base64

            binary[key] = base64.b64encode(content).decode()
    size = len(text) + sum(len(c) for c in files.values())
    if size > TEMPLATE_LIMIT:
        raise TemplateError(f"build template {parsed.name!r} is {size // 1024} KiB; a cluster template must "
                            f"stay under {TEMPLATE_LIMIT // 1024} KiB", "leave large files out of its folder")
    meta: dict = {"name": TEMPLATE_PREFIX + parsed.name, "namespace": namespace,
                  "labels": {**MANAGED_BY, TEMPLATE_LABEL: parsed.name}}
    if paths:
        meta["annotations"] = {TEMPLATE_PATHS: json.dumps(paths, sort_keys=True)}
    cm: dict = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}
    if binary:
        cm["binaryData"] = binary
    return cm


def template_from_configmap(cm: dict, namespace: str) -> templates.BuildTemplate:
    import base64

    import yaml

    meta = cm.get("metadata") or {}
    origin = f"cluster:{namespace}"
    data = dict(cm.get("data") or {})
    text = data.pop("template.yaml", None)
    if text is None:
        raise TemplateError(f"ConfigMap {meta.get('name')} holds no template.yaml", "deploy the template again")
    try:
        paths = json.loads((meta.get("annotations") or {}).get(TEMPLATE_PATHS) or "{}")
    except ValueError:
        paths = {}
    files = {paths.get(k, k): v.encode() for k, v in data.items()}
    files.update({paths.get(k, k): base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise TemplateError(f"{origin}: template {meta.get('name')} is not valid YAML: {e}",
                            "deploy the template again") from None
    files["template.yaml"] = text.encode()
    return templates.parse(document, files, origin)
