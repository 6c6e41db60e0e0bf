"""Build pods: one kaniko Pod per image, its manifests and the loop that follows it.

The kaniko builder (fnctl.builders.kaniko) decides what to build; this module
builds one image: `BuildPods(kube, options, reporter).build(spec)`.

The build context is the same reproducible gzip tar the local target uses.
A small one (<= ~900 KiB) travels in a ConfigMap mounted into the pod; a
larger one is streamed into an `upload` init container over a pod exec of
`head -c N | tar -x`, which ends after exactly N bytes with stdin still open
(WebSocket v4 exec has no stdin close, and busybox tar reads to the end of
its input); only then does it write the done marker, beside the context and
not inside the tar, and the init container ends and kaniko reads the context
from a shared emptyDir. kaniko writes the pushed image's digest to /dev/termination-log,
so it comes back in the container's termination message.

The pod and its ConfigMap are deleted whatever happens (the ConfigMap is
also owned by the pod, so the garbage collector removes it if fnctl dies).
"""

from __future__ import annotations

import base64
import io
import math
import re
import secrets
import shlex
import tarfile
import time
from collections import deque
from contextlib import closing
from dataclasses import dataclass, field

from fnctl import labels
from fnctl.errors import BuildError, FnctlError, Interrupted, WaitTimeout
from fnctl.kube.client import CONFIGMAPS, PODS, SECRETS, Kube
from fnctl.kube.errors import BadRequest
from fnctl.model import Reporter
from fnctl.source.context import BuildContext

DEFAULT_KANIKO_IMAGE = "gcr.io/kaniko-project/executor:v1.24.0"      # the archived project's last release
DEFAULT_INIT_IMAGE = "busybox:1.36"
CONFIGMAP_LIMIT = 900 * 1024          # ConfigMaps hold at most 1 MiB; keep room for metadata
CONTEXT_DIR = "/workspace-context"
SECRETS_DIR = "/run/secrets"          # where BuildKit puts `RUN --mount=type=secret,id=ID` files
CONTEXT_FILE = "context.tar.gz"
DONE_MARKER = ".fnctl-upload-done"
KANIKO = "kaniko"
UPLOADER = "upload"
TAIL_LINES = 20
_PULL_ERRORS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
                "RegistryUnavailable"}
_START_ERRORS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
_PUSHING = re.compile(r"(?i)\bpushing image\b|\bpushed\b.*\b(image|destination)")


@dataclass
class BuildOptions:
    """How builds run; the same for every build of one deploy."""

    registry_host: str = "knative.registry.svc.cluster.local"
    registry_secret: str | None = None          # kubernetes.io/dockerconfigjson Secret for pushes
    insecure_registry: bool = False
    kaniko_image: str = DEFAULT_KANIKO_IMAGE
    init_image: str = DEFAULT_INIT_IMAGE
    timeout: float = 1800.0                     # also the build pod's activeDeadlineSeconds
    resources: dict = field(default_factory=dict)   # kaniko's requests/limits (config cluster.build-resources)


@dataclass
class BuildSpec:
    """One image to build."""

    service: str                                 # the service it is for (labels, pod name)
    destination: str                             # registry/repo:tag to push
    context: BuildContext
    build_args: dict[str, str] = field(default_factory=dict)
    kind: str = "function"                       # "function" or "runtime"
    # Secret template parameters (id -> value): a Secret mounted at /run/secrets, where the
    # Dockerfile's `RUN --mount=type=secret,id=ID` steps read them (kaniko parses that flag but
    # mounts nothing itself); kaniko leaves mounted paths out of the image it snapshots.
    secrets: dict[str, str] = field(default_factory=dict)
    build_id: str = field(default_factory=lambda: secrets.token_hex(4))

    @property
    def pod_name(self) -> str:
        stem = self.service[:36].rstrip("-")
        return f"fnctl-build-{stem}-{'rt-' if self.kind == 'runtime' else ''}{self.build_id}"

    @property
    def configmap_name(self) -> str:
        return self.pod_name + "-context"

    @property
    def secret_name(self) -> str:
        return self.pod_name + "-secrets"

    @property
    def small(self) -> bool:
        return len(self.context.data) <= CONFIGMAP_LIMIT


def pod_labels(spec: BuildSpec) -> dict[str, str]:
    return {**labels.MANAGED_BY, labels.SERVICE: spec.service, labels.BUILD: spec.build_id,
            labels.BUILD_KIND: spec.kind}


# kaniko runs as root (it unpacks base images into its own root file system and runs RUN steps there)
# and keeps only what that takes: chown/chmod/xattrs of unpacked files (CHOWN, DAC_OVERRIDE, FOWNER,
# FSETID, SETFCAP), RUN steps as another USER (SETUID, SETGID), signalling its children (KILL); all are
# in Pod Security's baseline set. No setuid program is needed, so no privilege escalation.
KANIKO_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETFCAP", "SETGID", "SETUID"]
KANIKO_SECURITY = {"allowPrivilegeEscalation": False, "privileged": False,
                   "capabilities": {"drop": ["ALL"], "add": KANIKO_CAPABILITIES}}
# The upload container only writes into the shared emptyDir (created world-writable): nobody, nothing more.
UPLOADER_SECURITY = {"allowPrivilegeEscalation": False, "privileged": False, "runAsNonRoot": True,
                     "runAsUser": 65534, "runAsGroup": 65534, "readOnlyRootFilesystem": True,
                     "capabilities": {"drop": ["ALL"]}}
UPLOADER_RESOURCES = {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}}


def kaniko_args(spec: BuildSpec, options: BuildOptions) -> list[str]:
    args = ["--dockerfile", "Dockerfile",
            "--context", f"tar://{CONTEXT_DIR}/{CONTEXT_FILE}",
            "--destination", spec.destination,
            "--digest-file", "/dev/termination-log",
            "--cache=true", "--cache-repo", f"{options.registry_host}/fnctl-cache"]
    for key, value in spec.build_args.items():
        args += ["--build-arg", f"{key}={value}"]
    if options.insecure_registry:
        args += ["--insecure", "--skip-tls-verify", "--insecure-pull"]
    return args


def pod_manifest(spec: BuildSpec, namespace: str, options: BuildOptions) -> dict:
    """The build pod: kaniko, plus an `upload` init container for contexts too big for a ConfigMap."""
    mounts = [{"name": "context", "mountPath": CONTEXT_DIR, "readOnly": spec.small}]
    volumes: list[dict] = []
    if spec.small:
        volumes.append({"name": "context", "configMap": {
            "name": spec.configmap_name, "items": [{"key": CONTEXT_FILE, "path": CONTEXT_FILE}]}})
    else:
        volumes.append({"name": "context", "emptyDir": {}})
    if options.registry_secret:
        volumes.append({"name": "docker-config", "secret": {
            "secretName": options.registry_secret,
            "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}})
        mounts.append({"name": "docker-config", "mountPath": "/kaniko/.docker", "readOnly": True})
    if spec.secrets:
        volumes.append({"name": "build-secrets", "secret": {"secretName": spec.secret_name}})
        mounts.append({"name": "build-secrets", "mountPath": SECRETS_DIR, "readOnly": True})
    kaniko = {"name": KANIKO, "image": options.kaniko_image, "args": kaniko_args(spec, options),
              "volumeMounts": mounts, "terminationMessagePath": "/dev/termination-log",
              "terminationMessagePolicy": "File", "securityContext": KANIKO_SECURITY}
    if options.resources:
        kaniko["resources"] = options.resources
    pod_spec: dict = {"restartPolicy": "Never", "automountServiceAccountToken": False,
                      "activeDeadlineSeconds": max(1, math.ceil(options.timeout)),
                      "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                      "containers": [kaniko], "volumes": volumes}
    if not spec.small:
        pod_spec["initContainers"] = [{
            "name": UPLOADER, "image": options.init_image, "command": wait_command(),
            "volumeMounts": [{"name": "context", "mountPath": CONTEXT_DIR}],
            "securityContext": UPLOADER_SECURITY, "resources": UPLOADER_RESOURCES}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": spec.pod_name, "namespace": namespace, "labels": pod_labels(spec),
                         "annotations": {labels.DESTINATION: spec.destination,
                                         labels.CONTEXT_DIGEST: spec.context.digest}},
            "spec": pod_spec}


def configmap_manifest(spec: BuildSpec, namespace: str, owner: dict | None = None) -> dict:
    """The ConfigMap carrying a small context; owned by the build pod when `owner` is given."""
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(spec.configmap_name, spec, namespace, owner),
            "binaryData": {CONTEXT_FILE: base64.b64encode(spec.context.data).decode()}}


def secret_manifest(spec: BuildSpec, namespace: str, owner: dict | None = None) -> dict:
    """The Secret carrying the build's secret parameters; owned by the build pod when `owner` is given."""
    return {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(spec.secret_name, spec, namespace, owner),
            "type": "Opaque", "data": {k: base64.b64encode(v.encode()).decode() for k, v in spec.secrets.items()}}


def _meta(name: str, spec: BuildSpec, namespace: str, owner: dict | None) -> dict:
    """Metadata of an object of the build pod: its labels, and the pod as owner (the garbage collector
    removes the object with the pod, even when fnctl dies before its own cleanup)."""
    meta: dict = {"name": name, "namespace": namespace, "labels": pod_labels(spec)}
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": owner["metadata"]["name"],
                                    "uid": owner["metadata"]["uid"]}]
    return meta


def upload_tar(context: BuildContext) -> bytes:
    """What is streamed into the upload container: a tar of the one context file.

    tar (not the bare file) so that a cut-off stream fails the extraction instead of
    leaving a short file behind the done marker.
    """
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(CONTEXT_FILE)
        info.size, info.mode, info.mtime = len(context.data), 0o644, 0
        tar.addfile(info, io.BytesIO(context.data))
    return raw.getvalue()


def upload_command(size: int, directory: str = CONTEXT_DIR) -> list[str]:
    """The exec that receives upload_tar's `size` bytes on stdin and then writes the done marker.

    `head -c` ends after exactly `size` bytes whether or not stdin is ever closed, so tar
    sees its end of input; the marker is written only when tar succeeded.
    """
    where = shlex.quote(directory)
    return ["sh", "-c", f"head -c {int(size)} | tar -xf - -C {where} && touch {where}/{DONE_MARKER}"]


def wait_command(directory: str = CONTEXT_DIR) -> list[str]:
    """The upload container: wait for the done marker. The last second lets the exec that
    wrote the marker end (and report its exit code) before the container's end kills it."""
    return ["sh", "-c", f"until [ -e {shlex.quote(directory)}/{DONE_MARKER} ]; do sleep 1; done; sleep 1"]


# -- running ----------------------------------------------------------------

class BuildPods:
    """Runs build pods in `kube`'s namespace and reports through `reporter` (notes and log lines:
    the phase is the caller's)."""

    def __init__(self, kube: Kube, options: BuildOptions, reporter: Reporter):
        self.kube = kube
        self.options = options
        self.reporter = reporter

    def build(self, spec: BuildSpec) -> str:
        """Build and push; returns the pushed image by digest (repo@sha256:...)."""
        created_pod = created_cm = created_secret = False
        what = "runtime image" if spec.kind == "runtime" else f"image of {spec.service}"
        try:
            size = _size(len(spec.context.data))
            how = "in a ConfigMap" if spec.small else "into the build pod"
            self.reporter.note(f"kaniko pod {spec.pod_name}: the build context of the {what}, {size}, goes {how}")
            created_pod = True          # from here on, cleanup tries (a missing object is fine)
            pod = self.kube.create(PODS, pod_manifest(spec, self.kube.namespace, self.options))
            if spec.small:
                created_cm = True
                self.kube.create(CONFIGMAPS, configmap_manifest(spec, self.kube.namespace, owner=pod))
            if spec.secrets:
                created_secret = True
                self.kube.create(SECRETS, secret_manifest(spec, self.kube.namespace, owner=pod))
            digest = self._run(spec, what)
            repo = spec.destination.rsplit(":", 1)[0] if ":" in spec.destination.rsplit("/", 1)[-1] \
                else spec.destination
            return f"{repo}@{digest}"
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted while building the {what}; the build pod "
                              f"{spec.pod_name} was deleted", "deploy again when ready") from None
        finally:
            self._cleanup(spec, created_pod, created_cm, created_secret)

    def _cleanup(self, spec: BuildSpec, pod: bool, cm: bool, secret: bool = False) -> None:
        for wanted, res, name in ((pod, PODS, spec.pod_name), (cm, CONFIGMAPS, spec.configmap_name),
                                  (secret, SECRETS, spec.secret_name)):
            if not wanted:
                continue
            try:
                self.kube.delete(res, name)
            except (FnctlError, KeyboardInterrupt):
                self.reporter.note(f"could not delete {res.kind} {name}; delete it with "
                                   f"`kubectl delete {res.plural} {name} -n {self.kube.namespace}`")

    def _run(self, spec: BuildSpec, what: str) -> str:
        deadline = time.monotonic() + self.options.timeout
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        uploaded = spec.small
        with closing(self.kube.watch(PODS, spec.pod_name, deadline)) as states:
            return self._follow(spec, what, states, deadline, tail, uploaded)

    def _follow(self, spec: BuildSpec, what: str, states, deadline: float, tail: deque[str],
                uploaded: bool) -> str:
        last = "the build pod to be scheduled"
        streamed = False
        for pod in states:
            if not pod:
                raise BuildError(f"the build pod {spec.pod_name} was deleted during the build of the {what}",
                                 "someone or something deleted it; deploy again")
            problem = pod_problem(pod, self.options)
            if problem:
                raise BuildError(f"the build of the {what} failed: {problem[0]}", problem[1],
                                 details="\n".join(tail) or None)
            if not uploaded and _running(pod, UPLOADER, init=True):
                self._upload(spec)
                uploaded = True
                last = "kaniko to start"
                continue
            kaniko = _status(pod, KANIKO)
            state = kaniko.get("state") or {}
            if not streamed and ("running" in state or "terminated" in state):
                streamed = True
                self._stream_log(spec, deadline, tail)
                last = "the build pod to finish"
            if "terminated" in state:
                return self._result(spec, what, state["terminated"], tail)
            last = _describe_wait(pod, last)
        raise WaitTimeout(f"the build of the {what} did not finish within {self.options.timeout:g}s; "
                          f"it was waiting for {last}",
                          "raise --timeout, or check the cluster's capacity and the registry",
                          details="\n".join(tail) or None)

    def _upload(self, spec: BuildSpec) -> None:
        data = upload_tar(spec.context)
        code, err = self.kube.exec_upload(spec.pod_name, UPLOADER, upload_command(len(data)), data)
        said = f": {err.strip()[-300:]}" if err.strip() else ""
        if code is None:        # no exit status: nothing says the context arrived whole
            raise BuildError(f"uploading the build context into {spec.pod_name} failed: the exec ended "
                             f"without an exit status{said}",
                             "deploy again; if it persists, check the API server's and the node's health")
        if code != 0:
            raise BuildError(f"uploading the build context into {spec.pod_name} failed (exit {code}){said}",
                             f"the upload container image ({self.options.init_image}) needs sh, head and tar")

    def _stream_log(self, spec: BuildSpec, deadline: float, tail: deque[str]) -> None:
        pushing = False
        try:
            for line in self.kube.follow_log(spec.pod_name, KANIKO, deadline):
                tail.append(line)
                if not pushing and _PUSHING.search(line):
                    pushing = True
                    self.reporter.note(f"kaniko is pushing {spec.destination}")
                self.reporter.log(line)
        except BadRequest as e:                          # the container is not (or no longer) there
            self.reporter.note(f"kaniko's log is not available: {e.message}")
        self._pushing = pushing

    def _result(self, spec: BuildSpec, what: str, terminated: dict, tail: deque[str]) -> str:
        code = terminated.get("exitCode")
        reason = terminated.get("reason") or ""
        message = (terminated.get("message") or "").strip()
        details = "\n".join(tail) or None
        if reason == "OOMKilled":
            raise BuildError(f"the build of the {what} ran out of memory (kaniko was OOMKilled)",
                             "raise the memory limit of build pods (cluster.build-resources in the config file, "
                             "within the namespace's LimitRange) or make the build lighter", details=details)
        if code != 0:
            raise BuildError(f"the build of the {what} failed: kaniko exited with code {code}"
                             + (f" ({reason})" if reason and reason not in ("Error", "Completed") else ""),
                             "the log tail above shows the failing step" if details
                             else "kaniko printed nothing fnctl could read", details=details)
        match = re.search(r"sha256:[0-9a-f]{64}", message)
        if not match:
            raise BuildError(f"kaniko finished but reported no image digest (termination message {message!r})",
                             "use a kaniko image that supports --digest-file", details=details)
        if not getattr(self, "_pushing", False):
            self.reporter.note(f"kaniko pushed {spec.destination} ({match.group(0)[:19]})")
        return match.group(0)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    return f"{n / 1024:.0f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MiB"


def _status(pod: dict, container: str, init: bool = False) -> dict:
    key = "initContainerStatuses" if init else "containerStatuses"
    for s in (pod.get("status") or {}).get(key) or []:
        if s.get("name") == container:
            return s
    return {}


def _running(pod: dict, container: str, init: bool = False) -> bool:
    return "running" in ((_status(pod, container, init).get("state")) or {})


def pod_problem(pod: dict, options: BuildOptions) -> tuple[str, str] | None:
    """(message, hint) when the build pod cannot succeed any more, else None."""
    status = pod.get("status") or {}
    if status.get("reason") == "DeadlineExceeded":     # the kubelet ended it at activeDeadlineSeconds
        return (f"the build pod ran longer than its deadline ({options.timeout:g}s, activeDeadlineSeconds) and was "
                "stopped", "raise --timeout, or check the cluster's capacity and the registry")
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" \
                and cond.get("reason") == "Unschedulable":
            return (f"the build pod cannot be scheduled (Unschedulable): {cond.get('message') or 'no reason given'}",
                    "free or add capacity in the cluster, or check node selectors, taints and quotas")
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(key) or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason") or ""
            image = cs.get("image") or (options.kaniko_image if cs.get("name") == KANIKO else options.init_image)
            if reason in _PULL_ERRORS:
                return (f"the image {image} of the {cs.get('name')} container cannot be pulled ({reason}): "
                        f"{waiting.get('message') or ''}".rstrip(": "),
                        "check the image name and that the nodes can reach its registry; pass --kaniko-image "
                        "to use a mirror or a maintained fork (see docs/cluster.md)")
            if reason in _START_ERRORS:
                return (f"the {cs.get('name')} container cannot start ({reason}): {waiting.get('message') or ''}"
                        .rstrip(": "),
                        "check that --registry-secret names an existing kubernetes.io/dockerconfigjson Secret")
            if key == "initContainerStatuses":
                term = (cs.get("state") or {}).get("terminated") or {}
                if term and term.get("exitCode") not in (0, None):
                    return (f"the upload container failed (exit {term.get('exitCode')}, {term.get('reason')})",
                            f"the upload image ({options.init_image}) needs sh and tar")
    if status.get("phase") == "Failed" and not ((_status(pod, KANIKO).get("state") or {}).get("terminated")):
        return (f"the build pod failed: {status.get('reason') or ''} {status.get('message') or ''}".strip(),
                "check the cluster's events: kubectl get events")
    return None


def _describe_wait(pod: dict, fallback: str) -> str:
    status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(key) or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason"):
                extra = f": {waiting['message']}" if waiting.get("message") else ""
                return f"the {cs.get('name')} container ({waiting['reason']}{extra})"
    for cond in status.get("conditions") or []:
        if cond.get("status") == "False" and cond.get("reason"):
            return f"the build pod ({cond['type']} False: {cond['reason']})"
    phase = status.get("phase")
    return f"the build pod (phase {phase})" if phase else fallback
