"""A fake Knative Serving controller: Service -> Configuration -> Revision(s) + Route, with statuses
written through the status subresource the way Knative's reconcilers write them."""
from __future__ import annotations

import contextlib
import copy
import hashlib
import threading
import time

from . import realdocker
from .resources import resolve
from .store import now_rfc3339

KSVC = resolve("services.serving.knative.dev")
CFG = resolve("configurations.serving.knative.dev")
REV = resolve("revisions.serving.knative.dev")
ROUTE = resolve("routes.serving.knative.dev")
PODS = resolve("pods")
# Modes whose revision pod is stuck in that kubelet state; Knative itself says nothing about it until the
# revision's progress deadline (600 s): the revision and the Service stay Ready Unknown meanwhile.
POD_STATES = ("ErrImagePull", "ImagePullBackOff", "CrashLoopBackOff", "CreateContainerConfigError")
API = "serving.knative.dev/v1"


def _cond(type_, status, reason=None, message=None, severity=None):
    c = {"type": type_, "status": status, "lastTransitionTime": now_rfc3339()}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    if severity:
        c["severity"] = severity
    return c


def _conds(*cs):
    return sorted(cs, key=lambda c: c["type"])


def _keep_transition_times(old_status, new_status):
    old = {c["type"]: c for c in (old_status or {}).get("conditions") or []}
    for c in (new_status or {}).get("conditions") or []:
        o = old.get(c["type"])
        if o and o.get("status") == c["status"] and o.get("lastTransitionTime"):
            c["lastTransitionTime"] = o["lastTransitionTime"]
    return new_status


class KnativeController:
    def __init__(self, cluster):
        self.cluster = cluster
        self.store = cluster.store
        self.mode = "ready"
        self.delay = 0.2
        self.first_status_delay = 0.0  # seconds before the first (in-progress) status is written
        self._lock = threading.RLock()
        self._seen: dict[tuple, int] = {}
        self._thread = None
        # mode "docker": each new revision runs as a real container on the host network (see _RevisionContainer)
        self.registry = realdocker.REGISTRY
        self.ready_timeout = 120.0        # seconds until a revision that never gets ready fails
        self.endpoints: dict[tuple[str, str], str] = {}           # (ns, service) -> URL of the serving revision
        self.revision_endpoints: dict[tuple[str, str], str] = {}  # (ns, revision) -> URL of its container
        self.containers: dict[tuple[str, str], _RevisionContainer] = {}  # (ns, revision) -> its container
        self._docker_used = False

    def start(self):
        self._thread = threading.Thread(target=self._loop, name="fake-knative", daemon=True)
        self._thread.start()

    def _loop(self):
        self.store.follow(KSVC, lambda: self.cluster._stopping, self._maybe_reconcile, self._on_event)

    def _on_event(self, ev):
        if ev.type == "DELETED":
            self._on_deleted(ev.obj)
        elif ev.type in ("ADDED", "MODIFIED"):
            self._maybe_reconcile(ev.obj)

    def _maybe_reconcile(self, svc):
        md = svc["metadata"]
        if md.get("deletionTimestamp"):
            return
        key = (md.get("namespace"), md["name"], md["uid"])
        gen = md.get("generation", 1)
        with self._lock:
            if self._seen.get(key) == gen:
                return
            cur = self.store.raw_get(KSVC, md.get("namespace"), md["name"])
            if cur is None or cur["metadata"]["uid"] != md["uid"] or cur["metadata"].get("generation") != gen:
                return  # a newer event will follow
            self._seen[key] = gen
            self._reconcile(copy.deepcopy(cur))

    # ------------------------------------------------------------------ reconcile
    def _reconcile(self, svc):
        st = self.store
        md = svc["metadata"]
        ns, name, uid, gen = md["namespace"], md["name"], md["uid"], md.get("generation", 1)
        mode, delay = self.mode, self.delay
        spec = svc.get("spec") or {}
        tmpl = copy.deepcopy(spec.get("template") or {})
        owner = {"apiVersion": API, "kind": "Service", "name": name, "uid": uid, "controller": True,
                 "blockOwnerDeletion": True}
        labels = dict(md.get("labels") or {})
        labels.update({"serving.knative.dev/service": name, "serving.knative.dev/serviceUID": uid})
        # Configuration
        cfg = st.raw_get(CFG, ns, name)
        if cfg is None:
            cfg, _ = st.create(CFG, ns, {"apiVersion": API, "kind": "Configuration",
                                         "metadata": {"name": name, "namespace": ns, "labels": labels,
                                                      "ownerReferences": [owner]},
                                         "spec": {"template": tmpl}}, internal=True)
        elif cfg["spec"].get("template") != tmpl or (cfg["metadata"].get("labels") or {}) != labels:
            def upd(o):
                o["spec"]["template"] = tmpl
                o["metadata"]["labels"] = labels
                return o
            cfg = st.mutate(CFG, ns, name, upd, subresource=None)
        cfg_gen = cfg["metadata"].get("generation", 1)
        tmeta = tmpl.get("metadata") or {}
        rev_name = tmeta.get("name") or f"{name}-{cfg_gen:05d}"
        rev = st.raw_get(REV, ns, rev_name)
        prev_cfg_status = cfg.get("status") or {}
        prev_ready = prev_cfg_status.get("latestReadyRevisionName")
        if rev is None:
            rlabels = dict(tmeta.get("labels") or {})
            rlabels.update({"serving.knative.dev/configuration": name,
                            "serving.knative.dev/configurationGeneration": str(cfg_gen),
                            "serving.knative.dev/configurationUID": cfg["metadata"]["uid"],
                            "serving.knative.dev/service": name,
                            "serving.knative.dev/serviceUID": uid,
                            "serving.knative.dev/routingState": "pending"})
            rann = dict(tmeta.get("annotations") or {})
            rann.update({"serving.knative.dev/creator": "fake",
                         "serving.knative.dev/routingStateModified": now_rfc3339()})
            rev, _ = st.create(REV, ns, {
                "apiVersion": API, "kind": "Revision",
                "metadata": {"name": rev_name, "namespace": ns, "labels": rlabels, "annotations": rann,
                             "ownerReferences": [{"apiVersion": API, "kind": "Configuration", "name": name,
                                                  "uid": cfg["metadata"]["uid"], "controller": True,
                                                  "blockOwnerDeletion": True}]},
                "spec": copy.deepcopy(tmpl.get("spec") or {})}, internal=True)
            self._status(REV, ns, rev_name, {
                "observedGeneration": 1,
                "conditions": _conds(_cond("ContainerHealthy", "Unknown"),
                                     _cond("ResourcesAvailable", "Unknown"),
                                     _cond("Ready", "Unknown"),
                                     _cond("Active", "Unknown", "Deploying", severity="Info"))})
            outcome = mode
        else:
            rc = next((c for c in (rev.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), None)
            outcome = {"True": "ready", "False": "failed-before"}.get((rc or {}).get("status"), mode)
        # Route
        route_traffic = []
        for t in spec.get("traffic") or [{"latestRevision": True, "percent": 100}]:
            t = dict(t)
            if t.get("latestRevision", not t.get("revisionName")):
                t["configurationName"] = name
                t["latestRevision"] = True
            route_traffic.append(t)
        route = st.raw_get(ROUTE, ns, name)
        if route is None:
            st.create(ROUTE, ns, {"apiVersion": API, "kind": "Route",
                                  "metadata": {"name": name, "namespace": ns, "labels": labels,
                                               "ownerReferences": [owner]},
                                  "spec": {"traffic": route_traffic}}, internal=True)
        elif route["spec"].get("traffic") != route_traffic:
            st.mutate(ROUTE, ns, name, lambda o: (o["spec"].__setitem__("traffic", route_traffic), o)[1],
                      subresource=None)
        if self.first_status_delay:
            time.sleep(self.first_status_delay)
        # Configuration status: latest created
        cfg_status = {"observedGeneration": cfg_gen, "latestCreatedRevisionName": rev_name}
        if prev_ready:
            cfg_status["latestReadyRevisionName"] = prev_ready
        if prev_ready == rev_name:
            cfg_status["conditions"] = [_cond("Ready", "True")]
        else:
            cfg_status["conditions"] = [_cond("Ready", "Unknown")]
        self._status(CFG, ns, name, cfg_status)
        # Service status: in progress
        url, address = self._urls(ns, name)
        status = {"observedGeneration": gen, "url": url, "address": {"url": address},
                  "latestCreatedRevisionName": rev_name}
        if prev_ready:
            status["latestReadyRevisionName"] = prev_ready
            status["traffic"] = self._traffic(spec, prev_ready, ns, name)
            status["conditions"] = _conds(_cond("ConfigurationsReady", "Unknown"),
                                          _cond("RoutesReady", "True"),
                                          _cond("Ready", "Unknown"))
            self._route_status(ns, name, prev_ready, spec, True)
        else:
            msg = f'Configuration "{name}" is waiting for a Revision to become ready.'
            status["conditions"] = _conds(_cond("ConfigurationsReady", "Unknown"),
                                          _cond("RoutesReady", "Unknown", "RevisionMissing", msg),
                                          _cond("Ready", "Unknown", "RevisionMissing", msg))
            self._route_status(ns, name, None, spec, None)
        self._status(KSVC, ns, name, status)
        self.cluster.events.append(f"knative: {ns}/{name} generation {gen} -> revision {rev_name} ({outcome})")
        if outcome == "never":
            return
        if outcome in POD_STATES:
            self._stuck_pod(ns, name, rev_name, outcome)
            return
        if outcome == "docker":
            threading.Thread(target=self._run_revision_safe, args=(ns, name, uid, gen, rev_name), daemon=True,
                             name=f"revision-{rev_name}").start()
            return
        t = threading.Timer(delay, self._finalize_safe, args=(ns, name, uid, gen, rev_name, outcome))
        t.daemon = True
        t.start()

    def _stuck_pod(self, ns, name, rev_name, state):
        """The revision's pod (as its Deployment would make it), its user-container stuck in `state` with the
        kubelet's message; queue-proxy runs."""
        rev = self.store.raw_get(REV, ns, rev_name)
        if rev is None:
            return
        image = ((rev.get("spec") or {}).get("containers") or [{}])[0].get("image", "")
        pod_name = f"{rev_name}-deployment-{hashlib.sha256(rev_name.encode()).hexdigest()[:10]}-x7k2p"
        labels = {"serving.knative.dev/revision": rev_name, "serving.knative.dev/service": name,
                  "serving.knative.dev/configuration": name, "app": rev_name}
        pod, _ = self.store.create(PODS, ns, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": ns, "labels": labels,
                         "ownerReferences": [{"apiVersion": API, "kind": "Revision", "name": rev_name,
                                              "uid": rev["metadata"]["uid"]}]},
            "spec": {"containers": [{"name": "user-container", "image": image},
                                    {"name": "queue-proxy", "image": "gcr.io/knative-releases/queue"}]}},
            internal=True)
        uid = pod["metadata"]["uid"]
        ref = image if "/" in image.split("@")[0] else f"docker.io/library/{image}"
        last = {}
        waiting = {
            "ErrImagePull": f'rpc error: code = NotFound desc = failed to pull and unpack image "{ref}": failed to '
                            f'resolve reference "{ref}": {ref}: not found',
            "ImagePullBackOff": f'Back-off pulling image "{image}"',
            "CreateContainerConfigError": 'secret "missing" not found',
            "CrashLoopBackOff": f"back-off 10s restarting failed container=user-container pod={pod_name}_{ns}({uid})",
        }[state]
        if state == "CrashLoopBackOff":
            last = {"terminated": {"exitCode": 1, "reason": "Error", "message": "handler not found",
                                   "startedAt": now_rfc3339(), "finishedAt": now_rfc3339()}}

        def status(o):
            o["status"] = {"phase": "Pending" if state != "CrashLoopBackOff" else "Running", "containerStatuses": [
                {"name": "user-container", "image": image, "imageID": "", "ready": False, "started": False,
                 "restartCount": 1 if last else 0, "lastState": last,
                 "state": {"waiting": {"reason": state, "message": waiting}}},
                {"name": "queue-proxy", "image": "gcr.io/knative-releases/queue", "imageID": "", "ready": False,
                 "started": True, "restartCount": 0, "lastState": {},
                 "state": {"running": {"startedAt": now_rfc3339()}}}]}
            return o
        self.store.mutate(PODS, ns, pod_name, status)
        self.cluster.events.append(f"knative: {ns}/{rev_name} pod {pod_name} {state}")

    def _finalize_safe(self, *args):
        try:
            if not self.cluster._stopping:
                self._finalize(*args)
        except Exception:
            import traceback
            traceback.print_exc()

    def _finalize(self, ns, name, uid, gen, rev_name, outcome, failure=None):
        """Write the revision's outcome; False when the Service moved on (deleted, or a newer generation)."""
        st = self.store
        with self._lock:
            svc = st.raw_get(KSVC, ns, name)
            if svc is None or svc["metadata"]["uid"] != uid or svc["metadata"].get("generation") != gen:
                return False
            svc = copy.deepcopy(svc)
            spec = svc.get("spec") or {}
            rev = st.raw_get(REV, ns, rev_name)
            cfg = st.raw_get(CFG, ns, name)
            if rev is None or cfg is None:
                return False
            image = ((rev.get("spec") or {}).get("containers") or [{}])[0].get("image", "")
            cname = ((rev.get("spec") or {}).get("containers") or [{}])[0].get("name", "user-container")
            url, address = self._urls(ns, name)
            cfg_gen = cfg["metadata"].get("generation", 1)
            prev_ready = (cfg.get("status") or {}).get("latestReadyRevisionName")
            if prev_ready == rev_name:
                prev_ready = None
            if outcome == "ready":
                digest = image if "@sha256:" in image else \
                    f"{image.split('@')[0].rsplit(':', 1)[0] if ':' in image.rsplit('/', 1)[-1] else image}" \
                    f"@sha256:{hashlib.sha256(image.encode()).hexdigest()}"
                self._status(REV, ns, rev_name, {
                    "observedGeneration": 1,
                    "actualReplicas": 1, "desiredReplicas": 1,
                    "containerStatuses": [{"name": cname, "imageDigest": digest}],
                    "conditions": _conds(_cond("Active", "True"), _cond("ContainerHealthy", "True"),
                                         _cond("Ready", "True"), _cond("ResourcesAvailable", "True"))})
                self._routing_state(ns, rev_name, "active")
                if prev_ready:
                    self._routing_state(ns, prev_ready, "reserve")
                self._status(CFG, ns, name, {"observedGeneration": cfg_gen, "latestCreatedRevisionName": rev_name,
                                             "latestReadyRevisionName": rev_name,
                                             "conditions": [_cond("Ready", "True")]})
                traffic = self._traffic(spec, rev_name, ns, name)
                missing = self._missing_revision(spec, ns)
                self._route_status(ns, name, rev_name, spec, missing is None)
                status = {"observedGeneration": gen, "url": url, "address": {"url": address},
                          "latestCreatedRevisionName": rev_name, "latestReadyRevisionName": rev_name,
                          "traffic": traffic}
                if missing:
                    m = f'Revision "{missing}" referenced in traffic not found.'
                    status["conditions"] = _conds(_cond("ConfigurationsReady", "True"),
                                                  _cond("RoutesReady", "False", "RevisionMissing", m),
                                                  _cond("Ready", "False", "RevisionMissing", m))
                    del status["traffic"]
                else:
                    status["conditions"] = _conds(_cond("ConfigurationsReady", "True"),
                                                  _cond("RoutesReady", "True"), _cond("Ready", "True"))
                if (ns, rev_name) in self.containers:
                    # docker mode: the new revision answers; move the traffic, then the Service says Ready
                    self._retire(ns, name, rev_name, traffic if not missing else [])
                self._status(KSVC, ns, name, status)
                self.cluster.events.append(f"knative: {ns}/{name} Ready ({rev_name})")
                return True
            # failures
            if failure is not None:
                reason, rmsg = failure
            elif outcome == "container-missing":
                reason = "ContainerMissing"
                rmsg = (f'Unable to fetch image "{image}": failed to resolve image to digest: '
                        f"GET https://{_registry(image)}/v2/{_path(image)}/manifests/{_tag(image)}: MANIFEST_UNKNOWN: "
                        f"manifest unknown; map[Tag:{_tag(image)}]")
            elif outcome == "failed-before":
                rc = next((c for c in (rev.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"),
                          {})
                reason, rmsg = rc.get("reason", "ExitCode1"), rc.get("message", "Container failed with: exit "
                                                                                  "status 1")
            else:
                reason, rmsg = "ExitCode1", "Container failed with: exit status 1"
            self._status(REV, ns, rev_name, {
                "observedGeneration": 1, "actualReplicas": 0, "desiredReplicas": 0,
                "conditions": _conds(_cond("Active", "False", "NoTraffic",
                                           "The target is not receiving traffic.", severity="Info"),
                                     _cond("ContainerHealthy", "False", reason, rmsg),
                                     _cond("Ready", "False", reason, rmsg),
                                     _cond("ResourcesAvailable", "False", reason, rmsg))})
            cmsg = f'Revision "{rev_name}" failed with message: {rmsg}.'
            cstatus = {"observedGeneration": cfg_gen, "latestCreatedRevisionName": rev_name,
                       "conditions": [_cond("Ready", "False", "RevisionFailed", cmsg)]}
            if prev_ready:
                cstatus["latestReadyRevisionName"] = prev_ready
            self._status(CFG, ns, name, cstatus)
            status = {"observedGeneration": gen, "url": url, "address": {"url": address},
                      "latestCreatedRevisionName": rev_name}
            if prev_ready:
                status["latestReadyRevisionName"] = prev_ready
                status["traffic"] = self._traffic(spec, prev_ready, ns, name)
                routes = _cond("RoutesReady", "True")
                self._route_status(ns, name, prev_ready, spec, True)
            else:
                routes = _cond("RoutesReady", "False", "RevisionMissing",
                               f'Configuration "{name}" does not have any ready Revision.')
                self._route_status(ns, name, None, spec, False)
            status["conditions"] = _conds(_cond("ConfigurationsReady", "False", "RevisionFailed", cmsg), routes,
                                          _cond("Ready", "False", "RevisionFailed", cmsg))
            self._status(KSVC, ns, name, status)
            self.cluster.events.append(f"knative: {ns}/{name} failed ({reason})")
            return True

    # ------------------------------------------------------------------ docker mode
    def _run_revision_safe(self, *args):
        try:
            if not self.cluster._stopping:
                self._run_revision(*args)
        except Exception:
            import traceback
            traceback.print_exc()

    def _run_revision(self, ns, name, uid, gen, rev_name):
        """Run the revision's container (once per revision), wait until it is ready or has failed, and write
        the outcome the way Knative does. A ready revision takes the traffic; containers of revisions that no
        longer get any are removed. A failed one is removed and leaves the serving one as it was."""
        self._docker_used = True
        with self._lock:
            rc = self.containers.get((ns, rev_name))
            starter = rc is None
            if starter:
                rev = self.store.raw_get(REV, ns, rev_name)
                if rev is None:
                    return
                rc = _RevisionContainer(self, ns, name, rev_name, copy.deepcopy(rev))
                self.containers[(ns, rev_name)] = rc
        if starter:
            rc.start()
        else:
            rc.settled.wait()
        if self.cluster._stopping or rc.cancelled:
            return
        if rc.failure is None:
            self.revision_endpoints[(ns, rev_name)] = rc.url
            self._finalize(ns, name, uid, gen, rev_name, "ready")
        else:
            with self._lock:
                if self.containers.get((ns, rev_name)) is rc:
                    del self.containers[(ns, rev_name)]
            rc.remove()
            self._finalize(ns, name, uid, gen, rev_name, "failed", failure=rc.failure)

    def _retire(self, ns, name, ready, traffic):
        """Point the Service's endpoint at its ready revision; remove the containers no traffic goes to."""
        serving = {t.get("revisionName") for t in traffic if t.get("revisionName")} | {ready}
        if (ns, ready) in self.revision_endpoints:
            self.endpoints[(ns, name)] = self.revision_endpoints[(ns, ready)]
        with self._lock:
            gone = [rc for (rns, rev), rc in self.containers.items()
                    if rns == ns and rc.service == name and rev not in serving and rc.settled.is_set()]
            for rc in gone:
                del self.containers[(ns, rc.revision)]
        for rc in gone:
            self.revision_endpoints.pop((ns, rc.revision), None)
            rc.remove()

    def _on_deleted(self, svc):
        md = svc["metadata"]
        ns, name = md.get("namespace"), md["name"]
        self.endpoints.pop((ns, name), None)
        with self._lock:
            gone = [rc for (rns, _), rc in self.containers.items() if rns == ns and rc.service == name]
            for rc in gone:
                del self.containers[(ns, rc.revision)]
        for rc in gone:
            self.revision_endpoints.pop((ns, rc.revision), None)
            rc.cancel()

    def shutdown(self):
        """Remove every container this cluster started (by label, so none is missed)."""
        with self._lock:
            running = list(self.containers.values())
            self.containers.clear()
        for rc in running:
            rc.cancelled = True
            rc.stop.set()
        deadline = time.monotonic() + 10
        for rc in running:  # one still pulling or starting creates its container first
            rc.settled.wait(max(0.0, deadline - time.monotonic()))
        if self._docker_used:
            realdocker.remove_containers(f"{realdocker.LABEL}=1", f"{realdocker.CLUSTER_LABEL}={self.cluster.id}")
        self.endpoints.clear()
        self.revision_endpoints.clear()

    # ------------------------------------------------------------------ helpers
    def _urls(self, ns, name):
        return f"http://{name}.{ns}.{self.cluster.domain}", f"http://{name}.{ns}.svc.cluster.local"

    def _traffic(self, spec, latest_ready, ns, name):
        out = []
        for t in spec.get("traffic") or [{"latestRevision": True, "percent": 100}]:
            latest = t.get("latestRevision", not t.get("revisionName"))
            e = {}
            if t.get("tag"):
                e["tag"] = t["tag"]
                e["url"] = f"http://{t['tag']}-{name}.{ns}.{self.cluster.domain}"
            e["latestRevision"] = bool(latest)
            e["percent"] = t.get("percent", 0) if "percent" in t else (100 if len(spec.get("traffic") or [1]) == 1
                                                                       else 0)
            e["revisionName"] = latest_ready if latest else t.get("revisionName")
            out.append(e)
        return out

    def _missing_revision(self, spec, ns):
        for t in spec.get("traffic") or []:
            rn = t.get("revisionName")
            if rn and not t.get("latestRevision") and self.store.raw_get(REV, ns, rn) is None:
                return rn
        return None

    def _route_status(self, ns, name, ready_rev, spec, ready):
        url, address = self._urls(ns, name)
        route = self.store.raw_get(ROUTE, ns, name)
        if route is None:
            return
        status = {"observedGeneration": route["metadata"].get("generation", 1), "url": url,
                  "address": {"url": address}}
        if ready_rev:
            status["traffic"] = self._traffic(spec, ready_rev, ns, name)
        if ready:
            status["conditions"] = _conds(_cond("AllTrafficAssigned", "True"), _cond("CertificateProvisioned", "True"),
                                          _cond("IngressReady", "True"), _cond("Ready", "True"))
        elif ready is None:
            msg = f'Configuration "{name}" is waiting for a Revision to become ready.'
            status["conditions"] = _conds(_cond("AllTrafficAssigned", "Unknown", "RevisionMissing", msg),
                                          _cond("Ready", "Unknown", "RevisionMissing", msg))
        else:
            msg = f'Configuration "{name}" does not have any ready Revision.'
            status["conditions"] = _conds(_cond("AllTrafficAssigned", "False", "RevisionMissing", msg),
                                          _cond("Ready", "False", "RevisionMissing", msg))
        self._status(ROUTE, ns, name, status)

    def _routing_state(self, ns, rev_name, state):
        def fn(o):
            o["metadata"].setdefault("labels", {})["serving.knative.dev/routingState"] = state
            return o
        self.store.mutate(REV, ns, rev_name, fn, subresource=None)

    def _status(self, rt, ns, name, status):
        def fn(o):
            o["status"] = _keep_transition_times(o.get("status"), copy.deepcopy(status))
            return o
        self.store.mutate(rt, ns, name, fn, subresource="status")


class _RevisionContainer:
    """One revision as a docker container: `docker run -d --network host` of its image (by digest, pulled from
    the loopback registry) with PORT set to a free loopback port; ready when it prints `fnctl-bridge: ready` or
    its port answers."""

    READY_MARKER = "fnctl-bridge: ready"
    TAIL = 20

    def __init__(self, ctl: KnativeController, ns, service, revision, rev: dict):
        self.ctl, self.ns, self.service, self.revision = ctl, ns, service, revision
        spec = rev.get("spec") or {}
        self.container = copy.deepcopy((spec.get("containers") or [{}])[0])
        self.image = self.container.get("image", "")
        self.port = realdocker.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.name = f"fakekube-{ctl.cluster.id}-{ns}-{revision}"[:120]
        self.id: str | None = None
        self.lines: list[str] = []
        self.failure: tuple[str, str] | None = None
        self.settled = threading.Event()
        self.stop = threading.Event()
        self.cancelled = False

    # -- run
    def start(self):
        try:
            self.failure = self._start()
        except Exception as e:  # noqa: BLE001 - surfaces as a failed revision
            self.failure = ("ContainerCreating", f"fakekube could not run the revision: {e}")
        finally:
            self.settled.set()

    def _start(self):
        image = self.image
        if realdocker.registry_of(image) != self.ctl.registry:
            return ("ContainerMissing", f'Unable to fetch image "{image}": failed to resolve image to digest: '
                                        f"fakekube docker mode runs images of {self.ctl.registry} only")
        pull = realdocker.docker("pull", "-q", image, timeout=300)
        if pull.returncode != 0:
            err = pull.stderr.decode("utf-8", "replace").strip()[-400:]
            return ("ContainerMissing", f'Unable to fetch image "{image}": failed to resolve image to digest: {err}')
        argv = ["run", "-d", "--network", "host", "--name", self.name,
                "--label", f"{realdocker.LABEL}=1", "--label", f"{realdocker.CLUSTER_LABEL}={self.ctl.cluster.id}",
                "--label", f"fakekube.namespace={self.ns}", "--label", f"fakekube.service={self.service}",
                "--label", f"fakekube.revision={self.revision}"]
        for key, value in self._env().items():
            argv += ["-e", f"{key}={value}"]
        command = [str(a) for a in self.container.get("command") or []]
        if command:
            argv += ["--entrypoint", command[0]]
        argv.append(image)
        argv += command[1:] + [str(a) for a in self.container.get("args") or []]
        run = realdocker.docker(*argv, timeout=120)
        if run.returncode != 0:
            err = run.stderr.decode("utf-8", "replace").strip()[-400:]
            return ("CreateContainerError", f"failed to create containerd task: {err}")
        self.id = run.stdout.decode().strip()
        return self._wait_ready()

    def _env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        store = self.ctl.store
        for src in self.container.get("envFrom") or []:
            for kind, plural, binary in (("configMapRef", "configmaps", False), ("secretRef", "secrets", True)):
                ref = src.get(kind)
                if ref:
                    obj = store.raw_get(resolve(plural), self.ns, ref.get("name")) or {}
                    env.update({(src.get("prefix") or "") + k: _decode(v, binary)
                                for k, v in (obj.get("data") or {}).items()})
        for e in self.container.get("env") or []:
            if "value" in e or "valueFrom" not in e:
                env[e["name"]] = str(e.get("value", ""))
                continue
            vf = e["valueFrom"]
            for kind, plural, binary in (("configMapKeyRef", "configmaps", False),
                                         ("secretKeyRef", "secrets", True)):
                ref = vf.get(kind)
                if ref:
                    obj = store.raw_get(resolve(plural), self.ns, ref.get("name")) or {}
                    if ref.get("key") in (obj.get("data") or {}):
                        env[e["name"]] = _decode(obj["data"][ref["key"]], binary)
        env.update({"PORT": str(self.port), "FNCTL_LISTEN_HOST": "127.0.0.1", "K_SERVICE": self.service,
                    "K_CONFIGURATION": self.service, "K_REVISION": self.revision})
        return env

    def _wait_ready(self):
        ended = threading.Event()

        def on_line(line):
            self.lines.append(line)

        def follow():
            realdocker.stream(["docker", "logs", "-f", self.id], on_line, self.stop)
            ended.set()
        threading.Thread(target=follow, daemon=True, name=f"logs-{self.revision}").start()
        deadline = time.monotonic() + self.ctl.ready_timeout
        while time.monotonic() < deadline:
            if self.stop.is_set() or self.ctl.cluster._stopping:
                return ("Cancelled", "the revision was removed")
            if any(self.READY_MARKER in line for line in list(self.lines)) or realdocker.port_answers(self.port):
                return None
            if ended.wait(0.1) and not self._running():
                ended.clear()
                return self._exited()
        self.remove()
        return ("ProgressDeadlineExceeded", "Initial scale was never achieved")

    def _running(self) -> bool:
        proc = realdocker.docker("inspect", "--format", "{{.State.Running}}", self.id, timeout=30)
        return proc.stdout.decode().strip() == "true"

    def _exited(self):
        proc = realdocker.docker("inspect", "--format", "{{.State.ExitCode}}", self.id, timeout=30)
        code = proc.stdout.decode().strip() or "?"
        logs = realdocker.docker("logs", "--tail", str(self.TAIL), self.id, timeout=30)
        tail = (logs.stdout + logs.stderr).decode("utf-8", "replace").strip()
        # Knative: reason ExitCode<N>, message "Container failed with: " + the termination message (the log
        # tail: Knative sets terminationMessagePolicy FallbackToLogsOnError on the user container).
        message = f"Container failed with: exit status {code}" + (f"\n{tail[-2048:]}" if tail else "")
        return (f"ExitCode{code}", message)

    # -- stop
    def remove(self):
        self.stop.set()
        if self.id:
            with contextlib.suppress(Exception):  # removed by label when the cluster stops anyway
                realdocker.docker("rm", "-f", self.id, timeout=60)

    def cancel(self):
        self.cancelled = True
        self.remove()
        if not self.id and not self.settled.is_set():
            # still pulling or starting: remove it by name once it exists
            threading.Thread(target=lambda: (self.settled.wait(60), self.remove()), daemon=True).start()


def _decode(value, binary):
    if not binary:
        return str(value)
    import base64
    return base64.b64decode(value).decode("utf-8", "replace")


def _registry(image):
    first = image.split("/")[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return first
    return "index.docker.io"


def _path(image):
    rest = image.split("@")[0]
    first = rest.split("/")[0]
    if "/" in rest and ("." in first or ":" in first or first == "localhost"):
        rest = rest.split("/", 1)[1]
    elif "/" not in rest:
        rest = "library/" + rest
    last = rest.rsplit("/", 1)
    if ":" in last[-1]:
        rest = rest[: rest.rfind(":")]
    return rest


def _tag(image):
    if "@" in image:
        return image.split("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"
