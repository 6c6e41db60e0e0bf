"""A fake kubelet (+ scheduler) that runs pods created through the API, with a fake kaniko executor.

Each pod gets a worker thread that walks it through Pending -> (init containers) -> Running ->
Succeeded/Failed, writing every change through the pod's status subresource (so watchers see
MODIFIED events). Logs, exec and volume contents (ConfigMap / emptyDir) live here.
"""
from __future__ import annotations

import base64
import contextlib
import datetime
import gzip
import hashlib
import io
import json
import posixpath
import re
import shlex
import tarfile
import threading
import time
import uuid

from . import realdocker
from .errors import ApiError, bad_request
from .resources import resolve
from .store import now_rfc3339

NODE = "fake-node"
PODS = resolve("pods")


def _ts_nano() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


class ContainerRuntime:
    def __init__(self, spec: dict, init: bool):
        self.spec = spec
        self.name = spec.get("name")
        self.init = init
        self.lines: list[tuple[str, str]] = []
        self.started = False
        self.terminated = False
        self.running = False
        self.execs: list[ExecStdin] = []       # stdin of the execs running in it


class PodRuntime:
    def __init__(self, obj: dict):
        md = obj["metadata"]
        self.ns, self.name, self.uid = md.get("namespace"), md["name"], md["uid"]
        self.spec = obj["spec"]
        self.containers: dict[str, ContainerRuntime] = {}
        for c in self.spec.get("initContainers") or []:
            self.containers[c["name"]] = ContainerRuntime(c, True)
        for c in self.spec.get("containers") or []:
            self.containers[c["name"]] = ContainerRuntime(c, False)
        self.volumes: dict[str, dict[str, bytes]] = {}
        self.archives: dict[tuple[str, str], bytes] = {}  # (volume, dir) -> tar bytes extracted there
        self.rootfs: dict[str, dict[str, bytes]] = {}
        self.stop = threading.Event()
        self.deadline_exceeded = False
        self.deleting = False
        self.done = False
        self.thread: threading.Thread | None = None


class Killed(Exception):
    """The exec's container ended while the exec ran: its processes die with it (exit 137)."""


class ExecStdin:
    """An exec's stdin as it arrives over the WebSocket: a read blocks until its bytes are there,
    stdin ends (v5 close, or the client hangs up), or the container ends under the process."""

    def __init__(self, data: bytes | None = None, on_data=None):
        self._buf = bytearray(data or b"")
        self._pos = 0
        self._eof = data is not None
        self._killed = False
        self._on_data = on_data
        self._cond = threading.Condition()

    def feed(self, data: bytes):
        with self._cond:
            self._buf += data
            self._cond.notify_all()
        if self._on_data:
            self._on_data(data)

    def end(self):
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def kill(self):
        with self._cond:
            self._killed = True
            self._cond.notify_all()

    def read(self, n: int = -1) -> bytes:
        """Like read(2) on a pipe: what has arrived, up to n bytes, waiting only while nothing has;
        b"" at the end of stdin. n < 0 reads to the end of stdin."""
        with self._cond:
            while True:
                if self._killed:
                    raise Killed()
                available = len(self._buf) - self._pos
                if self._eof or (available and n >= 0):
                    take = available if n < 0 else min(n, available)
                    out = bytes(self._buf[self._pos:self._pos + take])
                    self._pos += take
                    return out
                self._cond.wait(0.5)

    def read_exactly(self, n: int) -> bytes:
        """n bytes, or fewer at the end of stdin (what head -c N reads)."""
        out = b""
        while len(out) < n:
            chunk = self.read(n - len(out))
            if not chunk:
                break
            out += chunk
        return out


class Kubelet:
    def __init__(self, cluster):
        self.cluster = cluster
        self.store = cluster.store
        self.mode = "succeed"
        # mode "docker": kaniko containers really build (docker build) and push to `registry`; base-image build
        # args go through the machine's image map (`image_map`, read from `image_map_file` when None).
        self.registry = realdocker.REGISTRY
        self.image_map: dict[str, str] | None = None
        self.image_map_file = realdocker.IMAGE_MAP_FILE
        self.log_lines: list[str] | None = None
        self.run_seconds = 0.3
        self.step_delay = 0.01  # time between pod lifecycle steps
        self.mount_retry = 0.05  # seconds between attempts to mount a missing ConfigMap / Secret volume
        self.pods: dict[tuple[str, str], PodRuntime] = {}
        self.cond = threading.Condition()
        self._thread = None
        self.store.graceful_delete_hook = self._graceful_delete_hook

    # ------------------------------------------------------------------ informer
    def start(self):
        self._thread = threading.Thread(target=self._loop, name="fake-kubelet", daemon=True)
        self._thread.start()

    def _loop(self):
        self.store.follow(PODS, lambda: self.cluster._stopping, self._on_added, self._on_event)

    def _on_event(self, ev):
        meta = ev.obj["metadata"]
        if ev.type == "ADDED":
            self._on_added(ev.obj)
        elif ev.type == "DELETED":
            key = (meta.get("namespace"), meta["name"])
            rtm = self.pods.get(key)
            if rtm is not None and rtm.uid == meta["uid"]:
                rtm.stop.set()
                del self.pods[key]
                self._notify()
        elif ev.type == "MODIFIED" and meta.get("deletionTimestamp"):
            rtm = self.pods.get((meta.get("namespace"), meta["name"]))
            if rtm is not None:
                rtm.stop.set()

    def _on_added(self, obj):
        if "serving.knative.dev/revision" in (obj["metadata"].get("labels") or {}):
            return                  # a revision's pod: the fake Knative controller gives it its states
        rtm = PodRuntime(obj)
        self.pods[(rtm.ns, rtm.name)] = rtm
        rtm.thread = threading.Thread(target=self._run_pod_safe, args=(rtm,), name=f"pod-{rtm.name}", daemon=True)
        rtm.thread.start()

    def _notify(self):
        with self.cond:
            self.cond.notify_all()

    def _graceful_delete_hook(self, rt, obj, grace):
        """Called under the store lock. True: the kubelet will finish deleting this pod."""
        if grace == 0:
            rtm = self.pods.get((obj["metadata"].get("namespace"), obj["metadata"]["name"]))
            if rtm is not None:
                rtm.stop.set()
            return False
        if not obj["spec"].get("nodeName") or (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return False
        rtm = self.pods.get((obj["metadata"].get("namespace"), obj["metadata"]["name"]))
        if rtm is None or rtm.uid != obj["metadata"]["uid"] or rtm.done:
            return False
        rtm.deleting = True
        rtm.stop.set()
        threading.Thread(target=self._finish_delete, args=(rtm,), daemon=True).start()
        return True

    def _finish_delete(self, rtm):
        time.sleep(0.05)
        if rtm.thread is not None:
            rtm.thread.join(timeout=2)
        self.store.finish_pod_deletion(rtm.ns, rtm.name)

    # ------------------------------------------------------------------ status helpers
    def _log(self, msg):
        self.cluster.events.append(msg)

    def _set(self, rtm, fn, binding=False):
        """Apply fn(pod) and write it through the status subresource. Raises _Gone if the pod is gone."""
        def apply(o):
            if o["metadata"]["uid"] != rtm.uid:
                return None
            fn(o)
            return o
        out = self.store.mutate(PODS, rtm.ns, rtm.name, apply, subresource="binding" if binding else "status")
        if out is None:
            raise _Gone()
        return out

    def _event(self, rtm, type_, reason, message):
        ts = now_rfc3339()
        body = {"metadata": {"name": f"{rtm.name}.{uuid.uuid4().hex[:16]}", "namespace": rtm.ns},
                "involvedObject": {"kind": "Pod", "namespace": rtm.ns, "name": rtm.name, "uid": rtm.uid,
                                   "apiVersion": "v1"},
                "reason": reason, "message": message, "type": type_,
                "source": {"component": "kubelet", "host": NODE} if reason not in (
                    "Scheduled", "FailedScheduling") else {"component": "default-scheduler"},
                "firstTimestamp": ts, "lastTimestamp": ts, "count": 1,
                "reportingComponent": "kubelet" if reason not in ("Scheduled", "FailedScheduling")
                else "default-scheduler", "reportingInstance": NODE}
        with contextlib.suppress(ApiError):
            self.store.create(resolve("events"), rtm.ns, body, internal=True)

    @staticmethod
    def _cond(pod, type_, status, reason=None, message=None):
        conds = pod["status"].setdefault("conditions", [])
        c = next((c for c in conds if c["type"] == type_), None)
        if c is None:
            c = {"type": type_}
            conds.append(c)
        if c.get("status") != status:
            c["lastTransitionTime"] = now_rfc3339()
        c["status"] = status
        c["lastProbeTime"] = None
        c.pop("reason", None)
        c.pop("message", None)
        if reason:
            c["reason"] = reason
        if message:
            c["message"] = message

    @staticmethod
    def _cstatus(pod, cr: ContainerRuntime, state: dict, ready=False, started=None, restart_count=None,
                 last_state=None):
        key = "initContainerStatuses" if cr.init else "containerStatuses"
        lst = pod["status"].setdefault(key, [])
        s = next((s for s in lst if s["name"] == cr.name), None)
        if s is None:
            s = {"name": cr.name, "image": cr.spec.get("image"), "imageID": "", "restartCount": 0,
                 "lastState": {}, "ready": False}
            lst.append(s)
        s["state"] = state
        s["ready"] = ready
        if started is not None:
            s["started"] = started
        if restart_count is not None:
            s["restartCount"] = restart_count
        if last_state is not None:
            s["lastState"] = last_state
        if "running" in state or "terminated" in state:
            s["imageID"] = _image_id(cr.spec.get("image", ""))
            s["containerID"] = "containerd://" + hashlib.sha256(f"{pod['metadata']['uid']}/{cr.name}".encode(
            )).hexdigest()

    def _stopped(self, rtm):
        return rtm.stop.is_set() or self.cluster._stopping

    def _sleep(self, rtm, seconds) -> bool:
        """Sleep unless the pod is being stopped. Returns False if stopped."""
        return not rtm.stop.wait(seconds) and not self.cluster._stopping

    def _append(self, cr: ContainerRuntime, line: str):
        with self.cond:
            cr.lines.append((_ts_nano(), line))
            self.cond.notify_all()

    # ------------------------------------------------------------------ pod lifecycle
    def _run_pod_safe(self, rtm):
        try:
            self._run_pod(rtm)
        except _Gone:
            pass
        except Exception:  # never kill the test process; make it visible
            import traceback
            traceback.print_exc()
        finally:
            rtm.done = True
            for cr in rtm.containers.values():
                cr.running = False
            self._notify()

    def _deadline(self, rtm: PodRuntime, seconds: float):
        """activeDeadlineSeconds: the kubelet kills a pod still active after it, phase Failed, reason
        DeadlineExceeded (its containers end with 137)."""
        if rtm.stop.wait(seconds) or self.cluster._stopping or rtm.done:
            return
        rtm.deadline_exceeded = True
        rtm.stop.set()
        if rtm.thread is not None:
            rtm.thread.join(timeout=5)
        now = now_rfc3339()

        def failed(p):
            p["status"].update({"phase": "Failed", "reason": "DeadlineExceeded",
                                "message": "Pod was active on the node longer than the specified deadline"})
            for cr in rtm.containers.values():
                if cr.started and not cr.terminated:
                    self._cstatus(p, cr, {"terminated": {"exitCode": 137, "reason": "Error", "startedAt": now,
                                                         "finishedAt": now}})
            self._cond(p, "Ready", "False", "PodFailed")
            self._cond(p, "ContainersReady", "False", "PodFailed")
        with contextlib.suppress(_Gone):
            self._set(rtm, failed)
        self._event(rtm, "Normal", "DeadlineExceeded", "Pod was active on the node longer than the specified deadline")
        self._notify()

    def _run_pod(self, rtm: PodRuntime):
        mode = self.mode
        deadline = rtm.spec.get("activeDeadlineSeconds")
        if deadline:
            threading.Thread(target=self._deadline, args=(rtm, float(deadline)), daemon=True).start()
        self._log(f"kubelet: pod {rtm.ns}/{rtm.name} started (mode={mode})")
        inits = [c for c in rtm.containers.values() if c.init]
        mains = [c for c in rtm.containers.values() if not c.init]
        if not self._sleep(rtm, self.step_delay):
            return
        if mode == "unschedulable":
            msg = "0/3 nodes are available: 3 Insufficient memory."
            self._set(rtm, lambda p: self._cond(p, "PodScheduled", "False", "Unschedulable", msg))
            self._event(rtm, "Warning", "FailedScheduling", msg)
            rtm.stop.wait()
            return
        # scheduling: bind to the node, then the kubelet's first status
        self._set(rtm, lambda p: p["spec"].__setitem__("nodeName", NODE), binding=True)
        self._event(rtm, "Normal", "Scheduled", f"Successfully assigned {rtm.ns}/{rtm.name} to {NODE}")

        def first(p):
            p["status"].update({"phase": "Pending", "hostIP": "10.0.0.10", "hostIPs": [{"ip": "10.0.0.10"}],
                                "startTime": now_rfc3339()})
            self._cond(p, "PodReadyToStartContainers", "False")
            if inits:
                self._cond(p, "Initialized", "False", "ContainersNotInitialized",
                           f"containers with incomplete status: [{' '.join(c.name for c in inits)}]")
            else:
                self._cond(p, "Initialized", "True")
            self._cond(p, "Ready", "False", "ContainersNotReady",
                       f"containers with unready status: [{' '.join(c.name for c in mains)}]")
            self._cond(p, "ContainersReady", "False", "ContainersNotReady",
                       f"containers with unready status: [{' '.join(c.name for c in mains)}]")
            self._cond(p, "PodScheduled", "True")
            for c in inits:
                self._cstatus(p, c, {"waiting": {"reason": "PodInitializing"}}, started=False)
            for c in mains:
                self._cstatus(p, c, {"waiting": {"reason": "PodInitializing" if inits else "ContainerCreating"}},
                              started=False)
        self._set(rtm, first)
        # volumes
        # like the kubelet, retry the mounts: a pod created just before its ConfigMap (an owner reference
        # needs the pod's uid first) starts once the ConfigMap exists; until then it stays ContainerCreating
        reported = None
        while True:
            problem = self._mount_problem(rtm)
            if not problem:
                break
            if problem != reported:
                reported = problem
                self._event(rtm, "Warning", "FailedMount", problem)
                self._log(f"kubelet: pod {rtm.ns}/{rtm.name}: {problem}")
            if not self._sleep(rtm, self.mount_retry):
                return
        if not self._sleep(rtm, self.step_delay):
            return
        self._set(rtm, lambda p: (self._cond(p, "PodReadyToStartContainers", "True"),
                                  p["status"].update({"podIP": f"10.244.0.{hash(rtm.uid) % 200 + 10}",
                                                      "podIPs": [{"ip": f"10.244.0.{hash(rtm.uid) % 200 + 10}"}]})))
        pull_target = None
        if mode == "image-pull":
            pull_target = next((c for c in mains if _is_kaniko(c.spec)), mains[0] if mains else None)
        # init containers, one after the other
        for i, cr in enumerate(inits):
            started = now_rfc3339()
            cr.started = cr.running = True
            self._set(rtm, lambda p, cr=cr, started=started: self._cstatus(p, cr, {"running": {"startedAt": started}},
                                                          started=True))
            self._event(rtm, "Normal", "Started", f"Started container {cr.name}")
            marker = _wait_marker(cr.spec)
            if marker:
                while not self._exists(rtm, cr, marker):
                    with self.cond:
                        self.cond.wait(0.05)
                    if self._stopped(rtm):
                        return
            elif not self._sleep(rtm, self.step_delay):
                return
            cr.running = False
            cr.terminated = True
            for stdin in list(cr.execs):    # the container's end kills what still runs in it
                stdin.kill()
            fin = now_rfc3339()
            rest = [c.name for c in inits[i + 1:]]

            def done(p, cr=cr, rest=rest, started=started, fin=fin):
                self._cstatus(p, cr, {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started,
                                                     "finishedAt": fin,
                                                     "containerID": "containerd://" + hashlib.sha256(
                                                         f"{rtm.uid}/{cr.name}".encode()).hexdigest()}},
                              started=False)
                if rest:
                    self._cond(p, "Initialized", "False", "ContainersNotInitialized",
                               f"containers with incomplete status: [{' '.join(rest)}]")
                else:
                    self._cond(p, "Initialized", "True")
            self._set(rtm, done)
            self._notify()
        # main containers
        if pull_target is not None:
            image = pull_target.spec.get("image")
            err = (f'rpc error: code = NotFound desc = failed to pull and unpack image "{_qualify(image)}": '
                   f'failed to resolve reference "{_qualify(image)}": {_qualify(image)}: not found')
            self._set(rtm, lambda p: self._cstatus(p, pull_target, {"waiting": {"reason": "ErrImagePull",
                                                                                 "message": err}}, started=False))
            self._event(rtm, "Warning", "Failed", f'Failed to pull image "{image}": {err}')
            if not self._sleep(rtm, max(self.step_delay * 5, 0.05)):
                return
            msg = f'Back-off pulling image "{image}"'
            self._set(rtm, lambda p: self._cstatus(p, pull_target, {"waiting": {"reason": "ImagePullBackOff",
                                                                                 "message": msg}}, started=False))
            self._event(rtm, "Normal", "BackOff", msg)
            rtm.stop.wait()
            return
        if inits:
            self._set(rtm, lambda p: [self._cstatus(p, c, {"waiting": {"reason": "ContainerCreating"}},
                                                    started=False) for c in mains])
            if not self._sleep(rtm, self.step_delay):
                return
        started = now_rfc3339()
        for cr in mains:
            cr.started = cr.running = True

        def running(p):
            p["status"]["phase"] = "Running"
            for c in mains:
                self._cstatus(p, c, {"running": {"startedAt": started}}, ready=True, started=True)
            self._cond(p, "ContainersReady", "True")
            self._cond(p, "Ready", "True")
        self._set(rtm, running)
        for cr in mains:
            self._event(rtm, "Normal", "Started", f"Started container {cr.name}")
        self._notify()
        # run them
        results = {}
        threads = []
        for cr in mains:
            def work(cr=cr):
                try:
                    results[cr.name] = self._run_container(rtm, cr, mode)
                except _Gone:
                    results[cr.name] = None
            t = threading.Thread(target=work, daemon=True)
            threads.append(t)
            t.start()
        for t in threads:
            t.join()
        if self._stopped(rtm) or any(r is None for r in results.values()):
            return
        fin = now_rfc3339()
        policy = rtm.spec.get("restartPolicy", "Always")

        def terminate(p):
            all_ok = True
            for c in mains:
                code, reason, message = results[c.name]
                term = {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": fin,
                        "containerID": "containerd://" + hashlib.sha256(f"{rtm.uid}/{c.name}".encode()).hexdigest()}
                if message:
                    term["message"] = message
                ok = code == 0
                all_ok = all_ok and ok
                if policy == "Always" or (policy == "OnFailure" and not ok):
                    self._cstatus(p, c, {"waiting": {"reason": "CrashLoopBackOff",
                                                     "message": f"back-off 10s restarting failed container={c.name} "
                                                                f"pod={rtm.name}_{rtm.ns}({rtm.uid})"}},
                                  ready=False, started=False, restart_count=1, last_state={"terminated": term})
                else:
                    self._cstatus(p, c, {"terminated": term}, ready=False, started=False)
            restarting = policy == "Always" or (policy == "OnFailure" and not all_ok)
            if not restarting:
                p["status"]["phase"] = "Succeeded" if all_ok else "Failed"
            names = " ".join(c.name for c in mains)
            reason = "ContainersNotReady" if restarting else "PodCompleted"
            self._cond(p, "ContainersReady", "False", reason,
                       f"containers with unready status: [{names}]" if restarting else None)
            self._cond(p, "Ready", "False", reason,
                       f"containers with unready status: [{names}]" if restarting else None)
            if not restarting:
                self._cond(p, "PodReadyToStartContainers", "False")
        for cr in mains:
            cr.running = False
            cr.terminated = True
        rtm.done = True
        obj = self._set(rtm, terminate)
        self._log(f"kubelet: pod {rtm.ns}/{rtm.name} {obj['status'].get('phase')}")
        self._notify()

    # ------------------------------------------------------------------ containers
    def _run_container(self, rtm, cr, mode):
        """Returns (exitCode, reason, message)."""
        if _is_kaniko(cr.spec):
            return self._kaniko(rtm, cr, mode)
        lines = list(self.log_lines or [])
        for line in lines:
            self._append(cr, line)
        if mode == "slow":
            n = 0
            while self._sleep(rtm, 0.2):
                n += 1
                self._append(cr, f"still running ({n})")
            return None
        if not self._sleep(rtm, self.run_seconds if mode != "succeed" or lines else min(self.run_seconds, 0.05)):
            return None
        if mode == "fail":
            return self._finish_message(rtm, cr, 1, "Error", None)
        if mode == "oom":
            return 137, "OOMKilled", None
        return 0, "Completed", None

    def _finish_message(self, rtm, cr, code, reason, message):
        if message is None and code != 0 and cr.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            tail = "\n".join(text for _, text in cr.lines[-80:])
            message = tail[-2048:]
        return code, reason, message

    def _kaniko(self, rtm, cr, mode):
        args = _kaniko_args(cr.spec)
        context = args.get("context") or "dir:///workspace/"
        dockerfile = args.get("dockerfile") or "Dockerfile"
        destinations = args.get("destination") or []
        no_push = "no-push" in args
        data, files, err = self._read_context(rtm, cr, context)
        if data is not None:
            self.cluster.built_contexts[rtm.name] = data
        dfile = None
        if files is not None:
            dfile = _find_dockerfile(files, dockerfile, context)
        if err is not None or (files is not None and dfile is None):
            lines = []
            if err:
                lines.append(err)
            lines += ["Error: error resolving dockerfile path: please provide a valid path to a Dockerfile within "
                      "the build context with --dockerfile", "Usage:", "  executor [flags]", "  executor [command]",
                      "", "Available Commands:", "  help        Help about any command",
                      "  version     Print the version number of kaniko", ""]
            for line in lines:
                self._append(cr, line)
            if not self._sleep(rtm, min(self.run_seconds, 0.05)):
                return None
            return self._finish_message(rtm, cr, 1, "Error", None)
        if mode == "docker":
            return self._kaniko_docker(rtm, cr, args, data, files, _dockerfile_path(dockerfile, context))
        gone = self._missing_base(dfile.decode("utf-8", "replace") if dfile else "", args, destinations)
        if gone:
            for line in gone:
                self._append(cr, line)
            if not self._sleep(rtm, min(self.run_seconds, 0.05)):
                return None
            return self._finish_message(rtm, cr, 1, "Error", None)
        digest = "sha256:" + hashlib.sha256((data or b"") + (destinations[0] if destinations else "").encode()
                                            ).hexdigest()
        if self.log_lines is not None:
            body, fail_at = list(self.log_lines), len(self.log_lines)
        else:
            body, fail_at = _kaniko_lines(dfile.decode("utf-8", "replace") if dfile else "FROM scratch",
                                          destinations, digest, no_push)
        if mode == "fail":
            body = body[:fail_at] + ["error building image: error building stage: failed to execute command: "
                                     "waiting for process to exit: exit status 1"]
        elif mode == "oom":
            body = body[:fail_at]
        elif mode == "slow":
            body = [b for b in body if not b.startswith("INFO[0003] Pushing") and not b.startswith("INFO[0004]")]
        delay = self.run_seconds / max(len(body), 1)
        for line in body:
            self._append(cr, line)
            if not self._sleep(rtm, delay):
                return None
        if mode == "slow":
            while self._sleep(rtm, 0.2):
                self._append(cr, "INFO[0005] Taking snapshot of full filesystem...")
            return None
        if mode == "fail":
            return self._finish_message(rtm, cr, 1, "Error", None)
        if mode == "oom":
            return 137, "OOMKilled", None
        if not no_push:
            self.cluster.registry_manifests.update(f"{_repo(d)}@{digest}" for d in destinations)
        tpath = cr.spec.get("terminationMessagePath", "/dev/termination-log")
        message = None
        if args.get("digest-file") == tpath:
            message = digest
        elif args.get("image-name-with-digest-file") == tpath and destinations:
            message = f"{_repo(destinations[0])}@{digest}"
        return 0, "Completed", message

    def _missing_base(self, dockerfile: str, args: dict, destinations) -> list[str] | None:
        """kaniko's failure when a FROM image by digest on the registry it pushes to is not there (any more):
        the fake registry holds what fake kaniko pushed (cluster.registry_manifests; clear it to wipe it)."""
        if not destinations:
            return None
        host = realdocker.registry_of(destinations[0])
        values = dict(a.split("=", 1) for a in args.get("build-args") or [] if "=" in a)
        scheme = "http" if args.get("insecure-pull") or args.get("insecure") else "https"
        for ins in _dockerfile_instructions(dockerfile):
            word, _, rest = ins.partition(" ")
            if word.upper() != "FROM" or not rest.strip():
                continue
            image = re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: values.get(m.group(1), ""), rest.split()[0])
            if "@sha256:" not in image or realdocker.registry_of(image) != host:
                continue
            if f"{_repo(image)}@{image.split('@', 1)[1]}" in self.cluster.registry_manifests:
                continue
            repo, ref = _repo(image).split("/", 1)[1], image.split("@", 1)[1]
            return [f"INFO[0000] Retrieving image manifest {image}",
                    f"error building image: unable to complete operation after 0 attempts, last error: GET "
                    f"{scheme}://{host}/v2/{repo}/manifests/{ref}: MANIFEST_UNKNOWN: manifest unknown; "
                    f"map[Tag:{ref}]"]
        return None

    def _kaniko_docker(self, rtm, cr, args, data, files, dockerfile):
        """mode "docker": docker build the context kaniko was given, push it to the loopback registry, and end
        with the pushed digest as kaniko does. The real build and push output is the container's log."""
        t0 = time.monotonic()

        def info(text):
            self._append(cr, f"INFO[{int(time.monotonic() - t0):04d}] {text}")

        def fail(text):
            self._append(cr, text)
            return self._finish_message(rtm, cr, 1, "Error", None)

        destinations = args.get("destination") or []
        no_push = "no-push" in args
        if files is None:
            return fail(f"error building image: fakekube docker mode builds tar:// and dir:// contexts only, not "
                        f"{args.get('context')}")
        if not destinations and not no_push:
            return fail("Error: You must provide --destination, or use --no-push")
        for d in destinations:
            if realdocker.registry_of(d) != self.registry:
                return fail(f"error checking push permissions -- make sure you entered the correct tag name, and "
                            f"that you are authenticated correctly, and try again: fakekube refuses to push {d}: "
                            f"docker mode pushes to {self.registry} only")
        if self.image_map is None:
            self.image_map = realdocker.image_map(self.image_map_file)
        argv = ["docker", "build", "--network", "host", "--force-rm", "-f", dockerfile]
        for spec in args.get("build-args") or []:
            key, eq, value = spec.partition("=")
            mirrored = self.image_map.get(value) if eq else None
            if mirrored:
                info(f"fakekube registry mirror: build arg {key}={value} -> {mirrored}")
                value = mirrored
            argv += ["--build-arg", f"{key}={value}" if eq else key]
        local_tag = destinations[0] if destinations else f"fakekube/nopush:{rtm.uid[:12]}"
        for d in destinations or [local_tag]:
            argv += ["-t", d]
        argv.append("-")
        info(f"Building {len(data)} bytes of context with docker build (classic builder, host network)")
        code = realdocker.stream(argv, lambda line: self._append(cr, line), rtm.stop, stdin=data,
                                 env={"DOCKER_BUILDKIT": "0"})
        if code is None or self._stopped(rtm):
            return None
        if code != 0:
            return fail(f"error building image: error building stage: docker build exited with status {code}")
        digest = None
        if no_push:
            info("Skipping push to container registry due to --no-push flag")
            proc = realdocker.docker("image", "inspect", "--format", "{{.Id}}", local_tag)
            digest = proc.stdout.decode().strip() or None
        for d in destinations if not no_push else []:
            info(f"Pushing image to {d}")
            lines: list[str] = []

            def on_line(line, lines=lines):
                lines.append(line)
                self._append(cr, line)
            code = realdocker.stream(["docker", "push", d], on_line, rtm.stop)
            if code is None or self._stopped(rtm):
                return None
            if code != 0:
                return fail(f"error pushing image: failed to push to destination {d}: docker push exited with "
                            f"status {code}")
            pushed = realdocker.pushed_digest(lines, d)
            if pushed is None:
                return fail(f"error pushing image: no digest for {d} after docker push")
            digest = digest or pushed
            self.cluster.pushed_images.setdefault(rtm.name, f"{_repo(d)}@{pushed}")
            info(f"Pushed {_repo(d)}@{pushed}")
        tpath = cr.spec.get("terminationMessagePath", "/dev/termination-log")
        message = None
        if digest and args.get("digest-file") == tpath:
            message = digest
        elif digest and args.get("image-name-with-digest-file") == tpath and destinations:
            message = f"{_repo(destinations[0])}@{digest}"
        return 0, "Completed", message

    # ------------------------------------------------------------------ volumes / files
    def _volume(self, rtm, name):
        return next((v for v in rtm.spec.get("volumes") or [] if v.get("name") == name), None)

    def _mount_problem(self, rtm) -> str | None:
        st = self.store
        for v in rtm.spec.get("volumes") or []:
            for kind, key, rname in (("configMap", "name", "configmaps"), ("secret", "secretName", "secrets")):
                src = v.get(kind)
                if not isinstance(src, dict):
                    continue
                obj = st.raw_get(rname, rtm.ns, src.get(key))
                if obj is None:
                    if src.get("optional"):
                        continue
                    what = "configmap" if kind == "configMap" else "secret"
                    return f'MountVolume.SetUp failed for volume "{v["name"]}" : {what} "{src.get(key)}" not found'
                keys = set(obj.get("data") or {}) | set(obj.get("binaryData") or {})
                for item in src.get("items") or []:
                    if item.get("key") not in keys and not src.get("optional"):
                        what = "configmap" if kind == "configMap" else "secret"
                        return (f'MountVolume.SetUp failed for volume "{v["name"]}" : {what} references '
                                f'non-existent config key: {item.get("key")}')
        return None

    def _resolve(self, rtm, cr, path):
        """Container path -> (volume name or None, relative path)."""
        path = posixpath.normpath(path)
        best = None
        for m in cr.spec.get("volumeMounts") or []:
            mp = posixpath.normpath(m.get("mountPath", ""))
            if path == mp or path.startswith(mp.rstrip("/") + "/"):
                if best is None or len(mp) > len(posixpath.normpath(best["mountPath"])):
                    best = m
        if best is None:
            return None, path
        rel = path[len(posixpath.normpath(best["mountPath"])):].lstrip("/")
        if best.get("subPath"):
            rel = posixpath.join(best["subPath"], rel) if rel else best["subPath"]
        return best["name"], rel

    def _volume_files(self, rtm, volname) -> dict[str, bytes]:
        v = self._volume(rtm, volname) or {}
        for kind, key, rname in (("configMap", "name", "configmaps"), ("secret", "secretName", "secrets")):
            src = v.get(kind)
            if not isinstance(src, dict):
                continue
            obj = self.store.raw_get(rname, rtm.ns, src.get(key)) or {}
            content = {}
            for k, val in (obj.get("data") or {}).items():
                content[k] = base64.b64decode(val) if kind == "secret" else val.encode()
            for k, val in (obj.get("binaryData") or {}).items():
                content[k] = base64.b64decode(val)
            if src.get("items"):
                return {it["path"]: content[it["key"]] for it in src["items"] if it.get("key") in content}
            return content
        return rtm.volumes.setdefault(volname, {})

    def _files_under(self, rtm, cr, path) -> dict[str, bytes]:
        vol, rel = self._resolve(rtm, cr, path)
        files = self._volume_files(rtm, vol) if vol else rtm.rootfs.setdefault(cr.name, {})
        rel = rel.strip("/")
        if rel in ("", "."):
            return dict(files)
        return {k[len(rel) + 1:]: v for k, v in files.items() if k.startswith(rel + "/")}

    def _read(self, rtm, cr, path) -> bytes | None:
        vol, rel = self._resolve(rtm, cr, path)
        files = self._volume_files(rtm, vol) if vol else rtm.rootfs.setdefault(cr.name, {})
        return files.get(rel.strip("/"))

    def _exists(self, rtm, cr, path) -> bool:
        return self._read(rtm, cr, path) is not None or bool(self._files_under(rtm, cr, path))

    def _write(self, rtm, cr, path, data: bytes):
        vol, rel = self._resolve(rtm, cr, path)
        files = rtm.volumes.setdefault(vol, {}) if vol else rtm.rootfs.setdefault(cr.name, {})
        files[rel.strip("/")] = data

    def _read_context(self, rtm, cr, context):
        """Returns (context bytes, {path: bytes} or None, error line or None)."""
        if context.startswith("tar://"):
            path = context[len("tar://"):]
            data = self._read(rtm, cr, path)
            if data is None:
                return None, None, None if False else (
                    f"ERRO[0000] Error while extracting tar file: open {path}: no such file or directory")
            try:
                return data, _untar(data), None
            except (tarfile.TarError, OSError, EOFError) as e:
                return data, None, f"ERRO[0000] Error while extracting tar file: {e}"
        if context.startswith("dir://"):
            path = context[len("dir://"):]
        elif context.startswith("/") or "://" not in context:
            path = context if context.startswith("/") else "/workspace/" + context
        else:
            return context.encode(), None, None  # git://, s3://, gs://... not emulated: assume it works
        files = self._files_under(rtm, cr, path)
        vol, rel = self._resolve(rtm, cr, path)
        arch = rtm.archives.get((vol, rel.strip("/")))
        if not files:
            return None, {}, None
        return (arch if arch is not None else _tar_of(files)), files, None

    # ------------------------------------------------------------------ logs
    def _container_for(self, ns, name, container, what="log"):
        pod = self.store.get(PODS, ns, name)
        names_main = [c["name"] for c in pod["spec"].get("containers") or []]
        names_init = [c["name"] for c in pod["spec"].get("initContainers") or []]
        if not container:
            if len(names_main) == 1:
                container = names_main[0]
            else:
                raise bad_request(f"a container name must be specified for pod {name}, choose one of: "
                                  f"[{' '.join(names_main)}]" + (f" or one of the init containers: "
                                                                 f"[{' '.join(names_init)}]" if names_init else ""))
        if container not in names_main + names_init:
            raise bad_request(f"container {container} is not valid for pod {name}")
        return pod, container

    def _waiting_reason(self, pod, container):
        for key in ("initContainerStatuses", "containerStatuses"):
            for s in (pod.get("status") or {}).get(key) or []:
                if s["name"] == container and "waiting" in (s.get("state") or {}):
                    return s["state"]["waiting"].get("reason", "ContainerCreating")
        return "ContainerCreating"

    def serve_log(self, h, ns, name):
        pod, container = self._container_for(ns, name, h.q.get("container"))
        rtm = self.pods.get((ns, name))
        cr = rtm.containers.get(container) if rtm and rtm.uid == pod["metadata"]["uid"] else None
        if h.q.get("previous") == "true":
            raise bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
        if cr is None or not cr.started:
            reason = self._waiting_reason(pod, container)
            if reason in ("ErrImagePull", "ImagePullBackOff"):
                raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: trying and failing '
                                  f'to pull image')
            if reason == "PodInitializing" or (cr is not None and not cr.init and any(
                    c.init and not c.terminated for c in rtm.containers.values())):
                raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: PodInitializing')
            raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
        follow = h.q.get("follow") in ("true", "1")
        stamps = h.q.get("timestamps") in ("true", "1")
        tail = h.q.get("tailLines")
        limit = int(h.q["limitBytes"]) if h.q.get("limitBytes") else None

        def fmt(entry):
            ts, text = entry
            return ((ts + " ") if stamps else "") + text + "\n"

        with self.cond:
            lines = list(cr.lines)
        seen = len(lines)  # a follow goes on right after what this snapshot holds (no line twice, none lost)
        if tail not in (None, ""):
            lines = lines[-int(tail):] if int(tail) > 0 else []
        if not follow:
            data = "".join(fmt(e) for e in lines).encode()
            if limit is not None:
                data = data[:limit]
            h.send_response(200)
            h.send_header("Content-Type", "text/plain")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
            return
        h._start_stream("text/plain")
        sent_bytes = 0
        try:
            idx = seen
            for e in lines:
                chunk = fmt(e).encode()
                h._chunk(chunk)
                sent_bytes += len(chunk)
            while True:
                with self.cond:
                    new = cr.lines[idx:]
                    idx += len(new)
                    finished = not cr.running and not new
                    if not new and not finished:
                        self.cond.wait(0.1)
                for e in new:
                    chunk = fmt(e).encode()
                    h._chunk(chunk)
                    sent_bytes += len(chunk)
                if finished or self.cluster._stopping or (rtm.stop.is_set() and not new) or \
                        (limit is not None and sent_bytes >= limit):
                    break
            h._end_stream()
        except OSError:
            h.close_connection = True

    # ------------------------------------------------------------------ exec
    def check_exec(self, ns, name, container):
        pod, container = self._container_for(ns, name, container, "exec")
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            raise bad_request(f"cannot exec into a container in a completed pod; current phase is {phase}")
        rtm = self.pods.get((ns, name))
        cr = rtm.containers.get(container) if rtm else None
        if cr is None or not cr.running:
            raise bad_request(f'unable to upgrade connection: container not found ("{container}")')
        return container

    def exec_stdin(self, name, streaming: bool) -> ExecStdin:
        """A stdin for an exec into pod `name`; what arrives is also kept in cluster.uploaded_contexts."""
        def keep(data):
            self.cluster.uploaded_contexts[name] = self.cluster.uploaded_contexts.get(name, b"") + data
        return ExecStdin(None if streaming else b"", on_data=keep)

    def run_exec(self, ns, name, container, argv, stdin: ExecStdin | bytes | None):
        """Run the command as its process would: it reads stdin as the bytes arrive (a pipe), and dies
        with exit 137 if its container ends first. Returns (exit code, stdout, stderr)."""
        if not isinstance(stdin, ExecStdin):
            given = stdin or b""
            stdin = self.exec_stdin(name, streaming=True)
            if given:
                stdin.feed(given)
            stdin.end()
        rtm = self.pods.get((ns, name))
        if rtm is None:
            return 1, b"", b"pod not found\n"
        if not container:
            container = next(c.name for c in rtm.containers.values() if not c.init)
        cr = rtm.containers[container]
        self._log(f"kubelet: exec in {ns}/{name}[{container}]: {argv}")
        shell = _ExecShell(self, rtm, cr, stdin)
        cr.execs.append(stdin)
        try:
            if not cr.running:          # ended between the upgrade and now
                raise Killed()
            if len(argv) >= 3 and posixpath.basename(argv[0]) in ("sh", "bash", "ash") and argv[1] == "-c":
                code = shell.script(argv[2])
            else:
                code = shell.run(list(argv))
        except Killed:
            code = 137
        except Exception as e:  # a command the fake does not understand
            shell.err += f"fakekube: {e}\n".encode()
            code = 1
        finally:
            cr.execs.remove(stdin)
        self._notify()
        return code, shell.out, shell.err


class _Gone(Exception):
    pass


class _ExecShell:
    """Just enough of sh for the commands fnctl sends: tar -x, cat >, touch, mkdir, echo, test, ls, rm."""

    def __init__(self, kubelet, rtm, cr, stdin: ExecStdin):
        self.k, self.rtm, self.cr, self.stdin = kubelet, rtm, cr, stdin
        self.out, self.err = b"", b""

    def script(self, text):
        code = 0
        for stmt, op in _split_script(text):
            if op == "&&" and code != 0:
                continue
            if op == "||" and code == 0:
                continue
            code = self.pipeline(stmt)
            if code == -1000:
                return self._exit
        return code

    def pipeline(self, stmt):
        """a | b | c: each stage's output is the next one's stdin; the last stage's exit code counts.
        Stages run one after the other, which is what a pipe gives commands that read to their end
        of input or a fixed count (head -c)."""
        stages = _split_pipes(stmt)
        stdin, out, code = self.stdin, self.out, 0
        for i, stage in enumerate(stages):
            last = i == len(stages) - 1
            self.out = out if last else b""
            code = self.run(shlex.split(stage))
            if not last:
                self.stdin = ExecStdin(self.out)        # the stage's whole output, then its end
        self.stdin = stdin
        return code

    def run(self, argv):
        if not argv:
            return 0
        redirect = None
        if ">" in argv:
            i = argv.index(">")
            redirect = argv[i + 1] if i + 1 < len(argv) else None
            argv = argv[:i] + argv[i + 2:]
        elif any(a.startswith(">") and len(a) > 1 for a in argv):
            i = next(i for i, a in enumerate(argv) if a.startswith(">"))
            redirect = argv[i][1:]
            argv = argv[:i] + argv[i + 1:]
        cmd = posixpath.basename(argv[0])
        args = argv[1:]
        k, rtm, cr = self.k, self.rtm, self.cr
        if cmd in ("true", ":", "sync", "sleep", "mkdir", "chmod", "chown"):
            return 0
        if cmd == "false":
            return 1
        if cmd == "exit":
            self._exit = int(args[0]) if args else 0
            return -1000
        if cmd == "touch":
            for p in args:
                if not p.startswith("-") and k._read(rtm, cr, p) is None:
                    k._write(rtm, cr, p, b"")
            return 0
        if cmd == "echo":
            data = (" ".join(a for a in args if a != "-n") + ("" if "-n" in args else "\n")).encode()
            if redirect:
                k._write(rtm, cr, redirect, data)
            else:
                self.out += data
            return 0
        if cmd == "cat":
            files = [a for a in args if a != "-"]
            if not files:
                data = self.stdin.read()
            else:
                data = b""
                for f in files:
                    content = k._read(rtm, cr, f)
                    if content is None:
                        self.err += f"cat: {f}: No such file or directory\n".encode()
                        return 1
                    data += content
            if redirect:
                k._write(rtm, cr, redirect, data)
            else:
                self.out += data
            return 0
        if cmd == "base64" and ("-d" in args or "--decode" in args):
            data = base64.b64decode(self.stdin.read())
            if redirect:
                k._write(rtm, cr, redirect, data)
            else:
                self.out += data
            return 0
        if cmd in ("test", "["):
            a = [x for x in args if x != "]"]
            neg = bool(a) and a[0] == "!"
            if neg:
                a = a[1:]
            res = False
            if len(a) == 2 and a[0] in ("-f", "-e", "-s", "-d"):
                res = k._exists(rtm, cr, a[1])
            return 0 if res != neg else 1
        if cmd == "ls":
            path = next((a for a in args if not a.startswith("-")), "/")
            names = sorted({p.split("/")[0] for p in k._files_under(rtm, cr, path)})
            if not names and k._read(rtm, cr, path) is None:
                self.err += f"ls: {path}: No such file or directory\n".encode()
                return 1
            self.out += "".join(n + "\n" for n in names).encode()
            return 0
        if cmd == "rm":
            for p in args:
                if p.startswith("-"):
                    continue
                vol, rel = k._resolve(rtm, cr, p)
                files = rtm.volumes.get(vol, {}) if vol else rtm.rootfs.get(cr.name, {})
                for key in [x for x in files if x == rel or x.startswith(rel.rstrip("/") + "/")]:
                    del files[key]
            return 0
        if cmd == "tar":
            return self._tar(args)
        if cmd == "head" and len(args) == 2 and args[0] == "-c":
            data = self.stdin.read_exactly(int(args[1]))
            if redirect:
                k._write(rtm, cr, redirect, data)
            else:
                self.out += data
            return 0
        self.err += f"sh: {cmd}: not found\n".encode()
        return 127

    def _tar(self, args):
        k, rtm, cr = self.k, self.rtm, self.cr
        flags, dest, src, i = "", "/", "-", 0
        positional = []
        while i < len(args):
            a = args[i]
            if a in ("-C", "--directory"):
                dest = args[i + 1]
                i += 2
                continue
            if a.startswith("--directory="):
                dest = a.split("=", 1)[1]
            elif a in ("-f", "--file"):
                src = args[i + 1]
                i += 2
                continue
            elif a.startswith("--file="):
                src = a.split("=", 1)[1]
            elif a.startswith("--"):
                pass
            elif a.startswith("-") or (i == 0 and re.fullmatch(r"[a-zA-Z]+", a)):
                letters = a.lstrip("-")
                flags += letters
                if "f" in letters and letters.endswith("f") and i + 1 < len(args):
                    src = args[i + 1]
                    i += 2
                    continue
            else:
                positional.append(a)
            i += 1
        if "x" not in flags:
            self.err += b"tar: only extraction is emulated by fakekube\n"
            return 2
        if src == "-":
            return self._untar_stream(dest)
        data = k._read(rtm, cr, src)
        if data is None:
            self.err += f"tar: {src}: Cannot open: No such file or directory\n".encode()
            return 2
        try:
            files = _untar(data)
        except (tarfile.TarError, OSError, EOFError) as e:
            self.err += f"tar: This does not look like a tar archive ({e})\n".encode()
            return 2
        for rel, content in files.items():
            k._write(rtm, cr, posixpath.join(dest, rel), content)
        vol, rel = k._resolve(rtm, cr, dest)
        rtm.archives[(vol, rel.strip("/"))] = data
        return 0

    def _untar_stream(self, dest):
        """tar -xf - as busybox runs it: each entry is written as soon as it has arrived, and tar then
        reads on to the end of its input (a stdin that is never closed keeps it running)."""
        k, rtm, cr = self.k, self.rtm, self.cr
        seen = _Recorded(self.stdin)
        try:
            with tarfile.open(fileobj=seen, mode="r|*") as tf:
                for member in tf:
                    if member.isfile():
                        name = posixpath.normpath(member.name).lstrip("/")
                        k._write(rtm, cr, posixpath.join(dest, name), tf.extractfile(member).read())
                        k._notify()
        except (tarfile.TarError, OSError, EOFError) as e:
            self.err += f"tar: short read ({e})\n".encode()
            return 1
        seen.read()                 # busybox tar reads to the end of its input
        vol, rel = k._resolve(rtm, cr, dest)
        rtm.archives[(vol, rel.strip("/"))] = bytes(seen.data)
        return 0


# ---------------------------------------------------------------------- helpers

def _split_script(text):
    """Split a shell script into (statement, operator-before-it) on ;, &&, || and newlines (outside quotes)."""
    out, cur, op, quote, i = [], "", None, None, 0
    while i < len(text):
        ch = text[i]
        if quote:
            cur += ch
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
            cur += ch
        elif text.startswith("&&", i) or text.startswith("||", i):
            out.append((cur, op))
            op, cur = text[i:i + 2], ""
            i += 1
        elif ch in (";", "\n"):
            out.append((cur, op))
            op, cur = ";", ""
        else:
            cur += ch
        i += 1
    out.append((cur, op))
    return [(s.strip(), o) for s, o in out if s.strip()]


class _Recorded:
    """A file object over an exec's stdin that keeps what was read (the archive, for kaniko's tar://)."""

    def __init__(self, stdin: ExecStdin):
        self.stdin = stdin
        self.data = bytearray()

    def read(self, n: int = -1) -> bytes:
        chunk = self.stdin.read(n)
        self.data += chunk
        return chunk


def _split_pipes(stmt: str) -> list[str]:
    """The stages of `a | b` (a | outside quotes; || never reaches here)."""
    out, cur, quote = [], "", None
    for ch in stmt:
        if quote:
            quote = None if ch == quote else quote
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "|":
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    out.append(cur.strip())
    return [s for s in out if s]


def _is_kaniko(spec) -> bool:
    args = [str(a) for a in (spec.get("args") or []) + (spec.get("command") or [])]
    if any(a.startswith(("--dockerfile", "--context")) for a in args):
        return True
    image = str(spec.get("image", ""))
    return "kaniko" in image or "executor" in image


def _kaniko_args(spec) -> dict:
    args = [str(a) for a in (spec.get("args") or [])]
    cmd = [str(a) for a in (spec.get("command") or [])]
    if cmd and "executor" in cmd[0]:
        args = cmd[1:] + args
    short = {"-f": "dockerfile", "-c": "context", "-d": "destination"}
    out: dict = {"destination": []}
    i = 0
    while i < len(args):
        a = args[i]
        key, val = None, None
        if a.startswith("--"):
            if "=" in a:
                key, val = a[2:].split("=", 1)
            else:
                key = a[2:]
                if i + 1 < len(args) and not args[i + 1].startswith("-") and key not in (
                        "no-push", "cache", "insecure", "skip-tls-verify", "reproducible", "cleanup",
                        "single-snapshot", "use-new-run", "insecure-pull", "skip-tls-verify-pull"):
                    val = args[i + 1]
                    i += 1
                else:
                    val = "true"
        elif a in short and i + 1 < len(args):
            key, val = short[a], args[i + 1]
            i += 1
        elif a[:2] in short and len(a) > 2:
            key, val = short[a[:2]], a[2:].lstrip("=")
        if key:
            if key == "destination":
                out["destination"].append(val)
            elif key == "build-arg":
                out.setdefault("build-args", []).append(val)
                out[key] = val
            elif key == "no-push":
                if val != "false":
                    out["no-push"] = True
            else:
                out[key] = val
        i += 1
    return out


def _wait_marker(spec) -> str | None:
    text = " ".join(str(a) for a in (spec.get("command") or []) + (spec.get("args") or []))
    if not re.search(r"\b(while|until)\b", text) and "upload-done" not in text:
        return None
    m = re.search(r"-[efs]\s+[\"']?([^\s\"'\]]+)", text)
    if m and re.search(r"\b(while|until)\b", text):
        return m.group(1)
    m = re.search(r"([^\s\"']*upload-done[^\s\"';]*)", text)
    return m.group(1) if m else None


def _untar(data: bytes) -> dict[str, bytes]:
    raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    files = {}
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tf:
        for m in tf.getmembers():
            if m.isfile():
                name = posixpath.normpath(m.name).lstrip("/")
                if name.startswith("./"):
                    name = name[2:]
                files[name] = tf.extractfile(m).read()
    return files


def _tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name in sorted(files):
            ti = tarfile.TarInfo(name)
            ti.size = len(files[name])
            ti.mtime = 0
            tf.addfile(ti, io.BytesIO(files[name]))
    return buf.getvalue()


def _find_dockerfile(files, dockerfile, context):
    return files.get(_dockerfile_path(dockerfile, context))


def _dockerfile_path(dockerfile, context):
    """kaniko's --dockerfile as a path inside the context (it may be given absolute, under the context dir)."""
    d = dockerfile
    if d.startswith("/"):
        base = context.split("://", 1)[-1]
        base = posixpath.normpath(base)
        nd = posixpath.normpath(d)
        d = nd[len(base.rstrip("/")) + 1:] if nd.startswith(base.rstrip("/") + "/") else nd.lstrip("/")
    d = posixpath.normpath(d)
    if d.startswith("./"):
        d = d[2:]
    return d


def _image_id(image: str) -> str:
    return _qualify(image).split(":")[0].split("@")[0] + "@sha256:" + hashlib.sha256(image.encode()).hexdigest()


def _qualify(image: str) -> str:
    first = image.split("/")[0]
    if "/" not in image:
        image = "docker.io/library/" + image
    elif "." not in first and ":" not in first and first != "localhost":
        image = "docker.io/" + image
    last = image.rsplit("/", 1)[-1]
    if ":" not in last and "@" not in last:
        image += ":latest"
    return image


def _repo(dest: str) -> str:
    last = dest.rsplit("/", 1)
    if "@" in last[-1]:
        return dest.split("@")[0]
    if ":" in last[-1]:
        return dest[: dest.rfind(":")]
    return dest


def _dockerfile_instructions(text: str) -> list[str]:
    out, cur = [], ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not cur and (not line.strip() or line.strip().startswith("#")):
            continue
        if line.endswith("\\"):
            cur += line[:-1].strip() + " "
            continue
        cur += line.strip()
        out.append(cur)
        cur = ""
    if cur.strip():
        out.append(cur.strip())
    return out


def _kaniko_lines(dockerfile: str, destinations, digest, no_push):
    """The log a successful kaniko build prints; also returns the index right after the first RUN's output."""
    instrs = _dockerfile_instructions(dockerfile)
    lines = []
    fail_at = None
    stage = -1
    for ins in instrs:
        word = ins.split(None, 1)[0].upper()
        rest = ins.split(None, 1)[1] if " " in ins else ""
        if word == "FROM":
            stage += 1
            image = rest.split()[0] if rest else "scratch"
            reg = _qualify(image).split("/")[0].replace("docker.io", "index.docker.io")
            if stage == 0:
                lines.append(f"INFO[0000] Retrieving image manifest {image}")
                lines.append(f"INFO[0000] Retrieving image {image} from registry {reg}")
                lines.append("INFO[0000] Built cross stage deps: map[]")
            lines.append(f"INFO[0000] Retrieving image manifest {image}")
            lines.append("INFO[0000] Returning cached image manifest")
            lines.append("INFO[0000] Executing 0 build triggers")
            lines.append(f"INFO[0000] Building stage '{image}' [idx: '{stage}', base-idx: '-1']")
            if any(i.split(None, 1)[0].upper() == "RUN" for i in instrs):
                first_run = next(i for i in instrs if i.split(None, 1)[0].upper() == "RUN")
                lines.append(f"INFO[0000] Unpacking rootfs as cmd {first_run} requires it.")
            continue
        lines.append(f"INFO[0001] {ins}")
        if word == "RUN":
            lines.append("INFO[0001] Initializing snapshotter ...")
            lines.append("INFO[0001] Taking snapshot of full filesystem...")
            lines.append("INFO[0002] Cmd: /bin/sh")
            lines.append(f"INFO[0002] Args: [-c {rest}]")
            lines.append(f"INFO[0002] Running: [/bin/sh -c {rest}]")
            if fail_at is None:
                fail_at = len(lines)
            lines.append("INFO[0002] Taking snapshot of full filesystem...")
        elif word in ("COPY", "ADD"):
            lines.append("INFO[0001] Taking snapshot of files...")
        elif word == "WORKDIR":
            lines.append("INFO[0001] Cmd: workdir")
            lines.append(f"INFO[0001] Changed working directory to {rest}")
            lines.append(f"INFO[0001] Creating directory {rest} with uid -1 and gid -1")
        elif word in ("ENV", "CMD", "ENTRYPOINT", "EXPOSE", "LABEL", "USER", "ARG"):
            if word in ("CMD", "ENTRYPOINT", "EXPOSE"):
                lines.append(f"INFO[0001] Cmd: {word}" if word == "EXPOSE" else "INFO[0001] No files changed in "
                             "this command, skipping snapshotting.")
    if fail_at is None:
        fail_at = len(lines)
    if no_push:
        lines.append("INFO[0003] Skipping push to container registry due to --no-push flag")
    for d in destinations:
        lines.append(f"INFO[0003] Pushing image to {d}")
        lines.append(f"INFO[0004] Pushed {_repo(d)}@{digest}")
    return lines, fail_at


__all__ = ["Kubelet", "json"]
