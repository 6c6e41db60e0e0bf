"""Knative Serving (serving.knative.dev/v1) Services: the manifest, and deploying it.

`service_manifest` and `service_info` are pure. `deploy` creates or updates
the Service (optimistic concurrency on resourceVersion) and `wait_ready`
watches it until the controller has seen the new generation and says Ready,
fails, or time runs out.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from contextlib import closing

from fnctl import labels, resources
from fnctl.errors import DeployError, FnctlError, WaitTimeout
from fnctl.kube.client import KSERVICES, PODS, REVISIONS, Kube
from fnctl.kube.errors import Conflict, NotFound
from fnctl.model import DeployRequest, ServiceInfo

API_VERSION = "serving.knative.dev/v1"
PORT = 8080
PORT_NAME = "http1"               # Knative's name for HTTP/1.1 (h2c for HTTP/2)
# Per-revision autoscaling annotations (config-autoscaler documents their cluster-wide defaults:
# min-scale, max-scale, container-concurrency-target-default).
MIN_SCALE = "autoscaling.knative.dev/min-scale"
MAX_SCALE = "autoscaling.knative.dev/max-scale"
TARGET = "autoscaling.knative.dev/target"
AUTOSCALING_PREFIX = "autoscaling.knative.dev/"
UPDATE_RETRIES = 5


def _autoscaling(key: str) -> bool:
    return key.startswith(AUTOSCALING_PREFIX)


# Functions run confined, as Pod Security's "restricted" level asks, so that they run in namespaces
# that enforce it (the real API server refuses the revision's pods otherwise: tests/realcluster).
# The runtimes need no root: the bridge listens on 8080 and they write only to /tmp.
FUNCTION_USER = 65532
FUNCTION_SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "runAsUser": FUNCTION_USER,
    "runAsGroup": FUNCTION_USER,
    "seccompProfile": {"type": "RuntimeDefault"},
}
# A ready-made image runs as the user its image names (many run as root, and an arbitrary user
# could not read their files); the rest of the confinement stays.
IMAGE_USER_KEYS = ("runAsNonRoot", "runAsUser", "runAsGroup")


def service_manifest(request: DeployRequest, namespace: str, image: str, *, template: str,
                     source: str, context_digest: str | None = None, image_user: bool = False,
                     build_args: dict[str, str] | None = None) -> dict:
    """The Service for `request`, running `image` (by digest) on port 8080; `image_user`: as the
    image's own user (a ready-made image), else as FUNCTION_USER."""
    service_labels = {**request.labels, **labels.MANAGED_BY, labels.SERVICE: request.name}
    # Knative's webhook refuses autoscaling annotations on the Service: they only work per revision.
    annotations = {**{k: v for k, v in request.annotations.items() if not _autoscaling(k)},
                   labels.TEMPLATE: template, labels.SOURCE: source}
    if context_digest:
        annotations[labels.CONTEXT] = context_digest
    annotations[labels.BUILD_ARGS] = json.dumps(build_args or {}, sort_keys=True)
    revision_annotations = dict(request.annotations)
    if request.min_scale is not None:
        revision_annotations[MIN_SCALE] = str(request.min_scale)
    if request.max_scale is not None:
        revision_annotations[MAX_SCALE] = str(request.max_scale)
    if request.concurrency_target is not None:
        revision_annotations[TARGET] = str(request.concurrency_target)
    container: dict = {
        "image": image,
        "ports": [{"name": PORT_NAME, "containerPort": PORT}],
        "securityContext": {k: v for k, v in FUNCTION_SECURITY_CONTEXT.items()
                            if not (image_user and k in IMAGE_USER_KEYS)},
    }
    if request.env:
        container["env"] = [{"name": k, "value": v} for k, v in request.env.items()]
    if request.memory is not None or request.cpu is not None:
        container["resources"] = resources.container_resources(request.memory, request.cpu)
    if request.env_secrets:
        container["envFrom"] = [{"secretRef": {"name": s}} for s in request.env_secrets]
    revision_spec: dict = {"containers": [container]}
    if request.concurrency is not None:
        revision_spec["containerConcurrency"] = request.concurrency
    if request.registry_secret:
        revision_spec["imagePullSecrets"] = [{"name": request.registry_secret}]
    template_meta: dict = {"labels": {**request.labels, labels.SERVICE: request.name}}
    if revision_annotations:
        template_meta["annotations"] = revision_annotations
    return {
        "apiVersion": API_VERSION,
        "kind": "Service",
        "metadata": {"name": request.name, "namespace": namespace, "labels": service_labels,
                     "annotations": annotations},
        "spec": {"template": {"metadata": template_meta, "spec": revision_spec}},
    }


# -- reading status ----------------------------------------------------------

def condition(obj: dict, kind: str = "Ready") -> dict:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c
    return {}


def is_current(obj: dict) -> bool:
    """The controller has seen the latest spec (observedGeneration == generation)."""
    gen = (obj.get("metadata") or {}).get("generation")
    return gen is not None and (obj.get("status") or {}).get("observedGeneration") == gen


def service_info(obj: dict) -> ServiceInfo:
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    ready = condition(obj)
    containers = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [{}]
    state = ready.get("status")
    return ServiceInfo(
        name=meta.get("name", ""), target="cluster", url=status.get("url"),
        ready=True if state == "True" else False if state == "False" else None,
        reason=ready.get("reason"), message=ready.get("message"),
        revision=status.get("latestReadyRevisionName"), image=containers[0].get("image"),
        template=(meta.get("annotations") or {}).get(labels.TEMPLATE),
        namespace=meta.get("namespace"), created=meta.get("creationTimestamp"),
        env={e["name"]: e.get("value", "") for e in containers[0].get("env") or [] if "name" in e})


# -- deploying ----------------------------------------------------------------

def apply(kube: Kube, manifest: dict, on_conflict: Callable[[str], None] | None = None) -> tuple[dict, dict | None]:
    """Create the Service, or replace an existing one's spec (a new revision).

    (the object now, the object it replaced or None when it was created). The update carries
    the resourceVersion it read: when another deploy (or delete) got in between, the API server
    answers 409 Conflict (404 when deleted) and the Service is read again; `on_conflict` hears why.
    """
    name = manifest["metadata"]["name"]
    last_conflict: Conflict | None = None
    for _ in range(UPDATE_RETRIES):
        current = kube.get(KSERVICES, name)
        if current is None:
            try:
                return kube.create(KSERVICES, manifest), None
            except Conflict as e:
                last_conflict = e          # someone created it meanwhile: update instead
                if on_conflict:
                    on_conflict(f"{name} was created by someone else meanwhile; updating it instead")
                continue
        body = updated(current, manifest)
        try:
            return kube.replace(KSERVICES, body), current
        except Conflict as e:
            last_conflict = e              # changed since we read it: read again
            if on_conflict:
                on_conflict(f"{name} was changed by someone else since fnctl read it (resourceVersion "
                            f"{(current.get('metadata') or {}).get('resourceVersion')}); reading it again")
        except NotFound:
            if on_conflict:                # deleted since we read it: create it again
                on_conflict(f"{name} was deleted by someone else since fnctl read it; creating it again")
    if last_conflict is None:
        raise DeployError(f"service {name!r} kept being deleted while fnctl updated it",
                          "someone else is deleting it at the same time; retry")
    raise DeployError(f"service {name!r} kept changing while fnctl updated it: {last_conflict.message}",
                      "someone else is updating it at the same time; retry")


def updated(current: dict, manifest: dict) -> dict:
    """`current` with our labels, annotations and spec; resourceVersion kept for optimistic concurrency."""
    body = {k: v for k, v in current.items() if k != "status"}
    meta = dict(current.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), **manifest["metadata"]["labels"]}
    meta["annotations"] = {**(meta.get("annotations") or {}), **manifest["metadata"]["annotations"]}
    body["metadata"] = meta
    spec = dict(current.get("spec") or {})
    spec["template"] = manifest["spec"]["template"]
    spec.pop("traffic", None)          # back to 100% on the latest revision
    body["spec"] = spec
    return body


def wait_ready(kube: Kube, name: str, generation: int | None, timeout: float) -> dict:
    """Watch the Service until generation `generation` is Ready; fail fast on Ready False.

    The new revision's pods are watched too: Knative reports a pod that cannot pull its image
    only after its progress deadline (600 s), so a pull, crash-loop or configuration failure
    of those pods ends the wait at once, with the pod's own message.
    """
    deadline = time.monotonic() + timeout
    watches = _Watches(deadline)
    watches.add("service", kube.watch(KSERVICES, name, deadline))
    try:
        return _wait(kube, name, generation, timeout, watches)
    finally:
        watches.close()


def _wait(kube: Kube, name: str, generation: int | None, timeout: float, watches: _Watches) -> dict:
    waiting_for = "the Knative controller to see the new spec"
    revision = None
    pods: dict[str, dict] = {}
    for source, item in watches:
        if source == "pods":
            _track(pods, item)
            problem = pod_problem([p for p in pods.values() if _revision_of(p) == revision])
            if problem:
                raise pod_failed(name, kube.namespace, revision, *problem)
            continue
        obj = item
        if obj is _END:
            break
        if not obj:
            raise DeployError(f"service {name!r} was deleted while fnctl waited for it",
                              "someone deleted it; deploy again")
        gen = (obj.get("metadata") or {}).get("generation")
        if generation is not None and gen is not None and gen > generation:
            generation = gen           # a newer update by someone else: wait for that one
        if not is_current(obj) or (generation is not None and gen != generation):
            continue
        ready = condition(obj)
        state = ready.get("status")
        if state == "True":
            return obj
        if state == "False":
            raise failed(obj, _revision(kube, obj))
        created = (obj.get("status") or {}).get("latestCreatedRevisionName")
        if created and created != revision:
            revision = created
            # Best effort: without the right to watch pods, the Service's own status still decides.
            watches.add("pods", kube.watch_events(PODS, watches.deadline, label_selector=f"{REVISION_LABEL}={created}"),
                        best_effort=True)
        detail = _unknown_detail(obj)
        waiting_for = f"Ready: {detail}" if detail else "the Ready condition"
    raise WaitTimeout(
        f"service {name!r} was not ready within {_seconds(timeout)}; still waiting for {waiting_for}",
        f"see `fnctl describe service {name}` and `kubectl get ksvc,revision,pod -l {labels.SERVICE}={name} -n "
        f"{kube.namespace}`; raise --timeout for slow starts")


# -- the revision's pods ----------------------------------------------------------

REVISION_LABEL = "serving.knative.dev/revision"
# Waiting reasons of a container that will not start by itself (kubelet's image pull and start errors).
_PULL_FAILURES = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
_POD_FAILURES = _PULL_FAILURES | {"CrashLoopBackOff", "CreateContainerConfigError", "CreateContainerError"}


def _revision_of(pod: dict) -> str | None:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(REVISION_LABEL)


def _track(pods: dict[str, dict], event) -> None:
    """Keep `pods` (by name) current with one watch event (kind, object)."""
    kind, obj = event
    if kind == "LISTED":
        pods.update({p["metadata"]["name"]: p for p in obj})
    elif kind == "DELETED":
        pods.pop(obj.get("metadata", {}).get("name"), None)
    elif obj.get("metadata", {}).get("name"):
        pods[obj["metadata"]["name"]] = obj


def pod_problem(pods: list[dict]) -> tuple[str, str, str, str, str] | None:
    """(pod, container, reason, message, image) of the first container that cannot start by itself."""
    for pod in pods:
        status = pod.get("status") or {}
        for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason") or ""
            if reason not in _POD_FAILURES:
                continue
            message = (waiting.get("message") or "").strip()
            last = (cs.get("lastState") or {}).get("terminated") or {}
            if reason == "CrashLoopBackOff" and last:
                ended = f"it exited with code {last.get('exitCode')}"
                if (last.get("message") or "").strip():
                    ended += f": {last['message'].strip()[-300:]}"
                message = f"{message}; {ended}" if message else ended
            return pod["metadata"]["name"], cs.get("name") or "?", reason, message, cs.get("image") or "?"
    return None


def pod_failed(name: str, namespace: str, revision: str | None, pod: str, container: str, reason: str,
               message: str, image: str) -> DeployError:
    what = f"service {name!r} cannot become ready (revision {revision}): its pod {pod} {container}: {reason}"
    logs = f"`kubectl logs -n {namespace} {pod} -c {container}`"
    if reason in _PULL_FAILURES:
        hint = (f"the node cannot pull {image}: check that the nodes resolve and trust the registry (see "
                "docs/cluster.md, 'What the nodes need') and that --registry-secret names a working pull secret")
    elif reason == "CrashLoopBackOff":
        hint = f"the function exits as it starts; {logs} shows its output"
    else:
        hint = "check the Secrets and ConfigMaps it uses (--env-secret) exist in the namespace"
    return DeployError(f"{what}: {message}" if message else what,
                       f"{hint} (`kubectl describe pod -n {namespace} {pod}`)")


_END = object()


class _Watches:
    """Several watches read at once, one thread each, their items in arrival order until `deadline`."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self._items: queue.Queue = queue.Queue()
        self._stop = threading.Event()

    def add(self, source: str, stream, best_effort: bool = False) -> None:
        def pump():
            try:
                with closing(stream):
                    for item in stream:
                        if self._stop.is_set():
                            return
                        self._items.put((source, item))
            except Exception as e:      # noqa: BLE001 - handed to the reader, or dropped when best effort
                if not best_effort:
                    self._items.put((source, e))
                return
            if not best_effort:
                self._items.put((source, _END))

        threading.Thread(target=pump, name=f"fnctl-watch-{source}", daemon=True).start()

    def __iter__(self):
        while True:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                source, item = self._items.get(timeout=remaining)
            except queue.Empty:
                return
            if isinstance(item, BaseException):
                raise item
            yield source, item

    def close(self) -> None:
        """The threads end at their watch's next event, or its deadline."""
        self._stop.set()


def _unknown_detail(obj: dict) -> str:
    parts = []
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("status") != "True" and (c.get("reason") or c.get("message")):
            text = c.get("reason") or ""
            if c.get("message"):
                text += f" ({c['message']})" if text else c["message"]
            parts.append(f"{c.get('type')} {text}")
            if c.get("type") == "Ready":
                return parts[-1]
    return "; ".join(parts)


def _revision(kube: Kube, obj: dict) -> dict | None:
    """The failed revision, for its own reason (e.g. ContainerMissing under RevisionFailed); best effort."""
    name = (obj.get("status") or {}).get("latestCreatedRevisionName")
    if not name:
        return None
    try:
        return kube.get(REVISIONS, name)
    except FnctlError:
        return None


def failed(obj: dict, revision: dict | None = None) -> DeployError:
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    ready = condition(obj)
    name = meta.get("name")
    reason = ready.get("reason") or "NotReady"
    rev_reason = condition(revision or {}).get("reason")
    if rev_reason and rev_reason != reason:
        reason += f" ({rev_reason})"
    message = ready.get("message") or "no message"
    # Often the Configuration's condition says more (e.g. the revision's ExitCode1 message).
    cfg = condition(obj, "ConfigurationsReady")
    if cfg.get("status") == "False" and cfg.get("message") and cfg.get("message") != message:
        message += f"; {cfg['message']}"
    previous = status.get("latestReadyRevisionName")
    created = status.get("latestCreatedRevisionName")
    keeps = ""
    if previous and previous != created:
        keeps = f"; the previous revision {previous} keeps serving"
    rev = f" (revision {created})" if created else ""
    return DeployError(
        f"service {name!r} failed to become ready{rev}: {reason}: {message}{keeps}",
        f"check the function starts and listens on $PORT ({PORT}); `kubectl logs -n {meta.get('namespace')} "
        f"-l serving.knative.dev/service={name} -c user-container` shows its output")


def _seconds(value: float) -> str:
    return f"{value:g}s"
