"""A fake Knative Serving controller: Service -> Configuration -> Revision(s) + Route, with statuses
written through the status subresource the way Knative's reconcilers write them."""
from __future__ import annotations

import copy
import hashlib
import threading
import time

from .errors import ApiError
from .resources import resolve
from .store import now_rfc3339

KSVC = resolve("services.serving.knative.dev")
CFG = resolve("configurations.serving.knative.dev")
REV = resolve("revisions.serving.knative.dev")
ROUTE = resolve("routes.serving.knative.dev")
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

    def start(self):
        self._thread = threading.Thread(target=self._loop, name="fake-knative", daemon=True)
        self._thread.start()

    def _loop(self):
        st = self.store
        with st.lock:
            last = st.rv
            existing, _ = st.list(KSVC)
        for obj in existing:
            self._maybe_reconcile(obj)
        while not self.cluster._stopping:
            with st.lock:
                try:
                    evs = st.events_after(last)
                except ApiError:
                    last = st.rv
                    evs = []
                if not evs:
                    st.cond.wait(0.2)
                    continue
            for ev in evs:
                last = ev.rv
                if ev.rt.key == KSVC.key and ev.type in ("ADDED", "MODIFIED"):
                    try:
                        self._maybe_reconcile(ev.obj)
                    except Exception:
                        import traceback
                        traceback.print_exc()

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
        t = threading.Timer(delay, self._finalize_safe, args=(ns, name, uid, gen, rev_name, outcome))
        t.daemon = True
        t.start()

    def _finalize_safe(self, *args):
        try:
            if not self.cluster._stopping:
                self._finalize(*args)
        except Exception:
            import traceback
            traceback.print_exc()

    def _finalize(self, ns, name, uid, gen, rev_name, outcome):
        st = self.store
        with self._lock:
            svc = st.raw_get(KSVC, ns, name)
            if svc is None or svc["metadata"]["uid"] != uid or svc["metadata"].get("generation") != gen:
                return
            svc = copy.deepcopy(svc)
            spec = svc.get("spec") or {}
            rev = st.raw_get(REV, ns, rev_name)
            cfg = st.raw_get(CFG, ns, name)
            if rev is None or cfg is None:
                return
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
                self._status(KSVC, ns, name, status)
                self.cluster.events.append(f"knative: {ns}/{name} Ready ({rev_name})")
                return
            # failures
            if outcome == "container-missing":
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
