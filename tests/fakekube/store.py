"""The object store behind the fake API server: etcd + the generic registry, in memory.

Global resourceVersion counter, a bounded event history (for watch resumption and 410 Gone),
generation tracking, finalizers, owner-reference garbage collection, admission.
"""
from __future__ import annotations

import collections
import copy
import datetime
import threading
import uuid

from . import admission, podsecurity
from .errors import ApiError, already_exists, bad_request, conflict, invalid, namespace_not_found, not_found
from .patch import json_patch, merge_patch, strategic_merge_patch
from .resources import ResourceType, resolve


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Event:
    __slots__ = ("rv", "rt", "type", "obj", "old")

    def __init__(self, rv, rt, type_, obj, old):
        self.rv, self.rt, self.type, self.obj, self.old = rv, rt, type_, obj, old


def _strip_volatile(obj):
    o = copy.deepcopy(obj)
    md = o.get("metadata") or {}
    md.pop("resourceVersion", None)
    md.pop("managedFields", None)
    return o


class Store:
    def __init__(self, history_limit: int = 5000):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.objects: dict[tuple, dict] = {}
        self.rv = 0
        self.history: collections.deque[Event] = collections.deque()
        self.history_limit = history_limit
        self.compacted_rv = 0  # events with rv <= compacted_rv are no longer available
        self.closed = False
        # hooks set by the cluster
        self.graceful_delete_hook = None  # (rt, obj, grace) -> bool (True: kubelet will finish the deletion)

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _k(rt: ResourceType, ns, name):
        return (rt.key, ns if rt.namespaced else "", name)

    def _bump(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _emit(self, type_, rt, obj, old=None):
        self.history.append(Event(int(obj["metadata"]["resourceVersion"]), rt, type_, copy.deepcopy(obj),
                                  copy.deepcopy(old) if old is not None else None))
        while len(self.history) > self.history_limit:
            ev = self.history.popleft()
            self.compacted_rv = ev.rv
        self.cond.notify_all()

    def compact(self):
        """Forget all history (like an etcd compaction): older resourceVersions now get 410 Gone."""
        with self.lock:
            self.history.clear()
            self.compacted_rv = self.rv
            self.cond.notify_all()

    def events_after(self, rv: int) -> list[Event]:
        """Caller holds the lock. Raises ApiError 410 if rv is older than the kept history."""
        if rv < self.compacted_rv:
            raise ApiError(410, "Expired", f"too old resource version: {rv} ({self.compacted_rv + 1})")
        return [e for e in self.history if e.rv > rv]

    def follow(self, rt, stopping, on_existing, on_event) -> None:
        """An informer for the fake controllers: hand each current object of type `rt` to
        `on_existing`, then every later event of that type to `on_event`, until `stopping()`.
        A handler's exception is printed and the loop goes on, as a controller's would."""
        with self.lock:
            last = self.rv
            existing, _ = self.list(rt)
        for obj in existing:
            _guarded(on_existing, obj)
        while not stopping():
            with self.lock:
                try:
                    events = self.events_after(last)
                except ApiError:          # fell behind the history: resync from now
                    last, events = self.rv, []
                if not events:
                    self.cond.wait(0.2)
                    continue
            for ev in events:
                last = ev.rv
                if ev.rt.key == rt.key:
                    _guarded(on_event, ev)

    def raw_get(self, rt, ns, name):
        if isinstance(rt, str):
            rt = resolve(rt)
        return self.objects.get(self._k(rt, ns, name))

    def namespace_exists(self, ns) -> bool:
        return self.objects.get(("namespaces", "", ns)) is not None

    # ------------------------------------------------------------------ reads
    def get(self, rt, ns, name) -> dict:
        with self.lock:
            obj = self.objects.get(self._k(rt, ns, name))
            if obj is None:
                raise not_found(rt, name)
            return copy.deepcopy(obj)

    def list(self, rt, ns=None, label_pred=None, field_pred=None):
        with self.lock:
            items = []
            for (key, ons, _name), obj in self.objects.items():
                if key != rt.key:
                    continue
                if rt.namespaced and ns and ons != ns:
                    continue
                if label_pred and not label_pred(obj["metadata"].get("labels") or {}):
                    continue
                if field_pred and not field_pred(obj):
                    continue
                items.append(copy.deepcopy(obj))
            items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
            return items, str(self.rv)

    # ------------------------------------------------------------------ writes
    def create(self, rt, ns, body, *, dry_run=False, field_validation=None, internal=False):
        """Returns (obj, warnings)."""
        if not isinstance(body, dict):
            raise bad_request("the body of the request was in an unknown format")
        obj = copy.deepcopy(body)
        self._check_type(rt, obj)
        md = obj.setdefault("metadata", {})
        if not isinstance(md, dict):
            raise bad_request("metadata must be an object")
        if rt.namespaced:
            if md.get("namespace") and ns and md["namespace"] != ns:
                raise bad_request("the namespace of the provided object does not match the namespace sent on "
                                  "the request")
            ns = ns or md.get("namespace") or "default"
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
            ns = ""
        warnings: list[str] = []
        with self.lock:
            if rt.namespaced and not self.namespace_exists(ns):
                raise namespace_not_found(ns)
            if not md.get("name") and md.get("generateName"):
                for _ in range(20):
                    cand = md["generateName"] + admission.rand_suffix()
                    if self._k(rt, ns, cand) not in self.objects:
                        break
                md["name"] = cand
            for k in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "selfLink", "managedFields"):
                md.pop(k, None)
            warnings += self._admit(rt, ns, obj, None, field_validation, internal)
            name = md["name"]
            if self._k(rt, ns, name) in self.objects:
                raise already_exists(rt, name)
            md["uid"] = str(uuid.uuid4())
            md["creationTimestamp"] = now_rfc3339()
            if rt.generation:
                md["generation"] = 1
            if rt.status_subresource:
                if rt.plural == "pods":
                    obj["status"] = admission.initial_pod_status(obj)
                elif rt.plural == "namespaces":
                    obj["status"] = {"phase": "Active"}
                elif not internal:
                    obj.pop("status", None)
            if dry_run:
                return obj, warnings
            md["resourceVersion"] = self._bump()
            self.objects[self._k(rt, ns, name)] = obj
            self._emit("ADDED", rt, obj)
            if rt.plural == "namespaces":
                self._seed_namespace(name)
            return copy.deepcopy(obj), warnings

    def _seed_namespace(self, ns):
        sa = resolve("serviceaccounts")
        cm = resolve("configmaps")
        for rt, body in ((sa, {"metadata": {"name": "default"}}),
                         (cm, {"metadata": {"name": "kube-root-ca.crt",
                                            "annotations": {"kubernetes.io/description": "Contains a CA bundle "
                                                            "that can be used to verify the kube-apiserver when "
                                                            "using internal endpoints such as the internal "
                                                            "service IP or kubernetes.default.svc. No other "
                                                            "usage is guaranteed across distributions of "
                                                            "Kubernetes clusters."}},
                               "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nZmFrZWt1YmU=\n"
                                                  "-----END CERTIFICATE-----\n"}})):
            if self._k(rt, ns, body["metadata"]["name"]) not in self.objects:
                self.create(rt, ns, body, internal=True)

    def _check_type(self, rt, obj):
        av, kind = obj.get("apiVersion"), obj.get("kind")
        if av and av != rt.api_version:
            raise bad_request(f"the API version in the data ({av}) does not match the expected API version "
                              f"({rt.api_version})")
        if kind and kind != rt.kind:
            raise bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind

    def _admit(self, rt, ns, obj, old, field_validation, internal) -> list[str]:
        warnings = []
        if rt.plural == "pods" and old is None:
            admission.default_pod(obj, self, ns)
        if rt.is_custom:
            admission.default_knative(rt, obj, old)
            warnings += admission.knative_schema(rt, obj, field_validation)
        admission.validate_metadata(rt, obj, old)
        if rt.plural == "pods":
            if old is None:
                admission.validate_pod(rt, obj)
                if not internal:
                    admission.pod_admission(obj, self, ns)
                    podsecurity.admit(obj, self, ns)
            else:
                admission.validate_pod_update(rt, obj, old)
        if rt.plural == "configmaps" or rt.plural == "secrets":
            self._validate_data(rt, obj)
        if rt.is_custom and not internal:
            admission.knative_webhook_validate(rt, obj, old)
        return warnings

    def _validate_data(self, rt, obj):
        import base64
        name = obj["metadata"]["name"]
        causes = []
        fields = ("data", "binaryData") if rt.plural == "configmaps" else ("data",)
        for f in fields:
            for k, v in (obj.get(f) or {}).items():
                if not isinstance(v, str):
                    causes.append({"reason": "FieldValueTypeInvalid", "field": f"{f}[{k}]",
                                   "message": "Invalid value: must be a string"})
                    continue
                if f == "binaryData" or rt.plural == "secrets":
                    try:
                        base64.b64decode(v, validate=True)
                    except Exception:
                        raise bad_request(f"illegal base64 data at input byte 0 in {f}[{k}]")
        if rt.plural == "configmaps":
            both = set(obj.get("data") or {}) & set(obj.get("binaryData") or {})
            for k in both:
                causes.append({"reason": "FieldValueDuplicate", "field": "data",
                               "message": f'Invalid value: "{k}": duplicate of key present in binaryData'})
        size = 0
        for f in fields:
            for v in (obj.get(f) or {}).values():
                if isinstance(v, str):
                    size += len(base64.b64decode(v)) if (f == "binaryData" or rt.plural == "secrets") else len(v)
        if size > 1048576:
            causes.append({"reason": "FieldValueTooLong", "field": "[]",
                           "message": "Too long: must have at most 1048576 bytes"})
        if causes:
            raise invalid(rt, name, causes)

    def update(self, rt, ns, name, body, *, subresource=None, field_validation=None, dry_run=False,
               internal=False):
        if not isinstance(body, dict):
            raise bad_request("the body of the request was in an unknown format")
        body = copy.deepcopy(body)
        md = body.get("metadata") or {}
        if md.get("name") and md["name"] != name:
            raise bad_request(f"the name of the object ({md['name']}) does not match the name on the URL ({name})")
        with self.lock:
            old = self.objects.get(self._k(rt, ns, name))
            if old is None:
                raise not_found(rt, name)
            rv = md.get("resourceVersion")
            if rv:
                if rv != old["metadata"]["resourceVersion"]:
                    raise conflict(rt, name)
            elif rt.is_custom and not internal:
                raise invalid(rt, name, [{"reason": "FieldValueInvalid", "field": "metadata.resourceVersion",
                                          "message": "Invalid value: 0x0: must be specified for an update"}])
            self._check_type(rt, body)
            if subresource == "status":
                new = copy.deepcopy(old)
                if "status" in body:
                    new["status"] = body["status"]
                else:
                    new.pop("status", None)
            else:
                new = body
                nmd = new.setdefault("metadata", {})
                omd = old["metadata"]
                nmd["name"] = name
                for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                          "generation"):
                    if k in omd:
                        nmd[k] = omd[k]
                    else:
                        nmd.pop(k, None)
                if rt.namespaced:
                    nmd["namespace"] = ns
                if nmd.get("generateName") is None and omd.get("generateName"):
                    nmd["generateName"] = omd["generateName"]
                if rt.status_subresource:
                    if "status" in old:
                        new["status"] = copy.deepcopy(old["status"])
                    else:
                        new.pop("status", None)
            return self._commit_update(rt, ns, name, old, new, subresource, field_validation, dry_run, internal)

    def _commit_update(self, rt, ns, name, old, new, subresource, field_validation, dry_run, internal):
        warnings = []
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if subresource not in ("status", "binding"):
            warnings += self._admit(rt, ns, new, old, field_validation, internal)
        elif subresource == "status" and rt.is_custom:
            from . import schema as crd_schema
            crd_schema.prune_and_default(crd_schema.load_crd_schema(rt.crd_file), new)
        if rt.generation and new.get("spec") != old.get("spec"):
            new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        if _strip_volatile(new) == _strip_volatile(old):
            return copy.deepcopy(old), warnings
        if dry_run:
            return new, warnings
        omd = old["metadata"]
        if omd.get("deletionTimestamp") and not new["metadata"].get("finalizers") and not self._pod_pending_kill(
                rt, new):
            self._remove(rt, ns, name)
            return copy.deepcopy(self._last_deleted), warnings
        new["metadata"]["resourceVersion"] = self._bump()
        self.objects[self._k(rt, ns, name)] = new
        self._emit("MODIFIED", rt, new, old)
        return copy.deepcopy(new), warnings

    def _pod_pending_kill(self, rt, obj):
        return rt.plural == "pods" and obj["metadata"].get("deletionGracePeriodSeconds", 0) > 0

    def patch(self, rt, ns, name, content_type, patch_body, *, subresource=None, field_validation=None,
              dry_run=False, field_manager=None, force=False):
        ct = (content_type or "").split(";")[0].strip().lower()
        with self.lock:
            old = self.objects.get(self._k(rt, ns, name))
            if ct == "application/apply-patch+yaml":
                if not field_manager:
                    raise bad_request("PATCH /: fieldManager is required for apply requests")
                if old is None:
                    if subresource:
                        raise not_found(rt, name)
                    body = copy.deepcopy(patch_body)
                    body.setdefault("metadata", {})["name"] = name
                    return self.create(rt, ns, body, dry_run=dry_run, field_validation=field_validation)
            if old is None:
                raise not_found(rt, name)
            if ct in ("application/merge-patch+json", "application/apply-patch+yaml"):
                if not isinstance(patch_body, dict):
                    raise bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
                pb = patch_body
                if ct == "application/apply-patch+yaml":
                    pb = _drop_nulls(pb)
                    pb.get("metadata", {}).pop("resourceVersion", None)
                new = merge_patch(old, pb)
            elif ct == "application/strategic-merge-patch+json":
                if rt.is_custom:
                    raise ApiError(415, "UnsupportedMediaType",
                                   "the body of the request was in an unknown format - accepted media types "
                                   "include: application/json-patch+json, application/merge-patch+json, "
                                   "application/apply-patch+yaml")
                if not isinstance(patch_body, dict):
                    raise bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
                new = strategic_merge_patch(old, patch_body)
            elif ct == "application/json-patch+json":
                new = json_patch(old, patch_body)
            else:
                raise ApiError(415, "UnsupportedMediaType",
                               "the body of the request was in an unknown format - accepted media types include: "
                               "application/json-patch+json, application/merge-patch+json, "
                               "application/apply-patch+yaml" +
                               ("" if rt.is_custom else ", application/strategic-merge-patch+json"))
            if not isinstance(new, dict):
                raise bad_request("patch produced a non-object")
            nmd = new.setdefault("metadata", {})
            if nmd.get("name") != name:
                raise bad_request(f"the name of the object ({nmd.get('name')}) does not match the name on the URL "
                                  f"({name})")
            if nmd.get("resourceVersion") and nmd["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            if subresource == "status":
                n2 = copy.deepcopy(old)
                if "status" in new:
                    n2["status"] = new["status"]
                else:
                    n2.pop("status", None)
                new = n2
            else:
                omd = old["metadata"]
                for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                          "generation", "namespace"):
                    if k in omd:
                        nmd[k] = omd[k]
                if rt.status_subresource:
                    if "status" in old:
                        new["status"] = copy.deepcopy(old["status"])
                    else:
                        new.pop("status", None)
            self._check_type(rt, new)
            return self._commit_update(rt, ns, name, old, new, subresource, field_validation, dry_run, False)

    def mutate(self, rt, ns, name, fn, subresource="status"):
        """Controllers' write path: fn(copy) -> modified copy (or None to skip). Returns new obj or None."""
        if isinstance(rt, str):
            rt = resolve(rt)
        with self.lock:
            old = self.objects.get(self._k(rt, ns, name))
            if old is None:
                return None
            new = fn(copy.deepcopy(old))
            if new is None:
                return None
            if subresource == "status":
                n2 = copy.deepcopy(old)
                n2["status"] = new.get("status")
                new = n2
            new.setdefault("metadata", {})["resourceVersion"] = old["metadata"]["resourceVersion"]
            obj, _ = self._commit_update(rt, ns, name, old, new, subresource, None, False, True)
            return obj

    def delete(self, rt, ns, name, *, propagation=None, grace=None, preconditions=None, dry_run=False):
        """Returns (obj_or_None, immediately_deleted)."""
        with self.lock:
            obj = self.objects.get(self._k(rt, ns, name))
            if obj is None:
                raise not_found(rt, name)
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != obj["metadata"]["uid"]:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {rt.qualified_plural} "{name}": '
                               f'Precondition failed: UID in precondition: {pre["uid"]}, UID in object meta: '
                               f'{obj["metadata"]["uid"]}')
            if pre.get("resourceVersion") and pre["resourceVersion"] != obj["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            if dry_run:
                return copy.deepcopy(obj), False
            md = obj["metadata"]
            if propagation == "Orphan":
                self._orphan(md["uid"])
            if md.get("finalizers") or (rt.plural == "pods" and self.graceful_delete_hook and
                                        self.graceful_delete_hook(rt, obj, grace)):
                if md.get("deletionTimestamp"):
                    return copy.deepcopy(obj), False
                new = copy.deepcopy(obj)
                new["metadata"]["deletionTimestamp"] = now_rfc3339()
                if rt.plural == "pods":
                    g = grace if grace is not None else obj["spec"].get("terminationGracePeriodSeconds", 30)
                    new["metadata"]["deletionGracePeriodSeconds"] = int(g)
                else:
                    new["metadata"]["deletionGracePeriodSeconds"] = 0
                new["metadata"]["resourceVersion"] = self._bump()
                self.objects[self._k(rt, ns, name)] = new
                self._emit("MODIFIED", rt, new, obj)
                return copy.deepcopy(new), False
            self._remove(rt, ns, name, propagation)
            return copy.deepcopy(self._last_deleted), True

    def finish_pod_deletion(self, ns, name):
        """The kubelet has stopped the containers of a gracefully deleted pod."""
        rt = resolve("pods")
        with self.lock:
            obj = self.objects.get(self._k(rt, ns, name))
            if obj is None or not obj["metadata"].get("deletionTimestamp"):
                return
            if obj["metadata"].get("finalizers"):
                new = copy.deepcopy(obj)
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                new["metadata"]["resourceVersion"] = self._bump()
                self.objects[self._k(rt, ns, name)] = new
                self._emit("MODIFIED", rt, new, obj)
                return
            self._remove(rt, ns, name)

    def _remove(self, rt, ns, name, propagation=None):
        key = self._k(rt, ns, name)
        obj = self.objects.pop(key)
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = self._bump()
        self._emit("DELETED", rt, gone, obj)
        self._last_deleted = gone
        uid = obj["metadata"]["uid"]
        if rt.plural == "namespaces":
            for k in [k for k in self.objects if k[1] == name and k[0] != "namespaces"]:
                if k in self.objects:
                    self._remove(resolve(k[0]), k[1], k[2])
        if propagation != "Orphan":
            self._collect_dependents(uid)
        self._last_deleted = gone

    def _collect_dependents(self, uid):
        for k, o in list(self.objects.items()):
            refs = o["metadata"].get("ownerReferences") or []
            if any(r.get("uid") == uid for r in refs) and k in self.objects:
                remaining = [r for r in refs if r.get("uid") != uid and self._uid_exists(r.get("uid"))]
                rt = resolve(k[0])
                if remaining:
                    continue
                if o["metadata"].get("finalizers") or (rt.plural == "pods" and self.graceful_delete_hook):
                    self.delete(rt, k[1], k[2])
                else:
                    self._remove(rt, k[1], k[2])

    def _uid_exists(self, uid):
        return any(o["metadata"].get("uid") == uid for o in self.objects.values())

    def _orphan(self, uid):
        for k, o in list(self.objects.items()):
            refs = o["metadata"].get("ownerReferences") or []
            if any(r.get("uid") == uid for r in refs):
                new = copy.deepcopy(o)
                new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                if not new["metadata"]["ownerReferences"]:
                    del new["metadata"]["ownerReferences"]
                new["metadata"]["resourceVersion"] = self._bump()
                self.objects[k] = new
                self._emit("MODIFIED", resolve(k[0]), new, o)


def _drop_nulls(d):
    if isinstance(d, dict):
        return {k: _drop_nulls(v) for k, v in d.items() if v is not None}
    if isinstance(d, list):
        return [_drop_nulls(v) for v in d]
    return d


def _guarded(handler, arg) -> None:
    try:
        handler(arg)
    except Exception:
        import traceback

        traceback.print_exc()
