"""The fake Kubernetes API server: HTTP routing, discovery, verbs, watch, pod log, pod exec."""
from __future__ import annotations

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import yaml

from . import resources
from .errors import ApiError, bad_request, forbidden, unauthorized
from .selectors import parse_field_selector, parse_label_selector
from .websocket import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, WebSocket, accept_key

NOT_FOUND_GENERIC = ApiError(404, "NotFound", "the server could not find the requested resource", {})
EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io",
                  "channel.k8s.io")


class _Route:
    def __init__(self, rt, ns, name, sub):
        self.rt, self.ns, self.name, self.sub = rt, ns, name, sub


class FakeApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, cluster):
        self.cluster = cluster
        super().__init__(("127.0.0.1", 0), Handler)

    def handle_error(self, request, client_address):  # quiet: clients hang up on streams all the time
        pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "fakekube/1.0"

    def log_message(self, fmt, *args):
        pass

    # ------------------------------------------------------------------ plumbing
    @property
    def cluster(self):
        return self.server.cluster

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send_json(self, code: int, body, warnings=()):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Audit-Id", "fake")
        for w in warnings:
            self.send_header("Warning", f'299 - "{w}"')
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_error(self, err: ApiError):
        self._send_json(err.code, err.status())

    def _start_stream(self, content_type: str):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _chunk(self, data: bytes):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_stream(self):
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, method: str):
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        q = parse_qs(parts.query, keep_blank_values=True)
        query = {k: (v[0] if len(v) == 1 else v) for k, v in q.items()}
        self.q = {k: (v[-1].lower() if v[-1] in ("True", "False") else v[-1]) for k, v in q.items()}
        self.qlist = q
        cluster = self.cluster
        with cluster._req_lock:
            cluster.requests.append((method, path, query))
        body = b""
        try:
            if method in ("POST", "PUT", "PATCH", "DELETE"):     # DELETE may carry DeleteOptions
                if int(self.headers.get("Content-Length") or 0) > 3 * 1024 * 1024:
                    self.close_connection = True
                    raise ApiError(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")
                body = self._read_body()
            if cluster.reject_tokens:
                raise unauthorized()
            if path in ("/version", "/api", "/apis", "/healthz", "/readyz", "/livez") or \
                    (path.startswith("/apis/") and path.count("/") <= 3 and method == "GET") or path == "/api/v1":
                return self._discovery(path)
            route = self._route(path)
            if route is None:
                raise NOT_FOUND_GENERIC
            self._authorize(method, route)
            self._handle(method, route, body)
        except ApiError as e:
            self._send_error(e)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a bug in the fake: make it loud but keep a Status body
            import traceback
            traceback.print_exc()
            with contextlib.suppress(OSError):
                self._send_error(ApiError(500, "InternalError", f"fakekube internal error: {e!r}"))

    def _route(self, path: str):
        segs = [s for s in path.split("/") if s]
        if not segs:
            return None
        if segs[0] == "api" and len(segs) >= 2:
            group, version, rest = "", segs[1], segs[2:]
        elif segs[0] == "apis" and len(segs) >= 3:
            group, version, rest = segs[1], segs[2], segs[3:]
            if group == resources.KNATIVE_GROUP and not self.cluster.knative_installed:
                return None
        else:
            return None
        if not rest:
            return None
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3 and not (group == "" and rest[2] in ("status", "finalize")):
            ns, rest = rest[1], rest[2:]
        rt = resources.by_path(group, version, rest[0])
        if rt is None:
            return None
        if ns is not None and not rt.namespaced:
            return None
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3:
            return None
        if sub is not None and sub not in rt.subresources:
            return None
        return _Route(rt, ns, name, sub)

    def _verb(self, method, route):
        if method == "GET":
            if route.name is None:
                return "watch" if self.q.get("watch") in ("true", "1") else "list"
            return "get"                # a WebSocket exec (a GET upgrade) too; see _authorize
        return {"POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if route.name else "deletecollection"}[method]

    def _denied(self, verb, route) -> bool:
        mine = (route.rt.key, route.sub if route.sub in ("log", "exec", "status") else None)
        return any(fverb in (verb, "*") and (fres == "*" or fres == mine) and (fns is None or fns == route.ns)
                   for fverb, fres, fns in list(self.cluster._forbidden))

    def _authorize(self, method, route):
        verb = self._verb(method, route)
        rt = route.rt
        resource = rt.plural + (f"/{route.sub}" if route.sub else "")
        if self._denied(verb, route):
            who = f'{rt.qualified_plural} "{route.name}"' if route.name else rt.qualified_plural
            where = f'in the namespace "{route.ns}"' if route.ns else "at the cluster scope"
            raise forbidden(f'{who} is forbidden: User "{self.cluster.user}" cannot {verb} resource "{resource}" '
                            f'in API group "{rt.group}" {where}', route.name, rt)
        # Kubernetes 1.35 (feature AuthorizePodWebsocketUpgradeCreatePermission, beta and on by default):
        # ExecREST.Connect checks "create" as well (ensureAuthorizedForVerb in pkg/registry/core/pod/rest/
        # authorize.go), answering NewForbidden(pods, name, RBAC's reason, empty for a plain deny).
        if route.sub == "exec" and verb != "create" and self._denied("create", route):
            raise forbidden(f'{rt.plural} "{route.name}" is forbidden: ', route.name, rt)

    # ------------------------------------------------------------------ discovery
    def _discovery(self, path):
        c = self.cluster
        if path in ("/healthz", "/readyz", "/livez"):
            data = b"ok"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(data)
            return
        if path == "/version":
            return self._send_json(200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0-fakekube",
                                         "gitCommit": "0000000000000000000000000000000000000000",
                                         "gitTreeState": "clean", "buildDate": "2024-08-13T07:28:49Z",
                                         "goVersion": "go1.22.5", "compiler": "gc", "platform": "linux/amd64"})
        if path == "/api":
            return self._send_json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": c.url.split("//")[1]}]})
        groups = []
        if c.knative_installed:
            gv = {"groupVersion": "serving.knative.dev/v1", "version": "v1"}
            beta = {"groupVersion": "serving.knative.dev/v1beta1", "version": "v1beta1"}
            groups.append({"name": resources.KNATIVE_GROUP, "versions": [gv, beta], "preferredVersion": gv})
        if path == "/apis":
            return self._send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        if path == "/api/v1":
            return self._send_json(200, self._resource_list("v1", resources.CORE))
        segs = path.strip("/").split("/")
        if segs[0] == "apis" and len(segs) >= 2:
            grp = next((g for g in groups if g["name"] == segs[1]), None)
            if grp is None:
                raise NOT_FOUND_GENERIC
            if len(segs) == 2:
                return self._send_json(200, dict(grp, kind="APIGroup", apiVersion="v1"))
            if segs[2] in ("v1", "v1beta1"):
                return self._send_json(200, self._resource_list(f"serving.knative.dev/{segs[2]}",
                                                                [rt for rt in resources.KNATIVE
                                                                 if rt.version == segs[2]]))
        raise NOT_FOUND_GENERIC

    @staticmethod
    def _resource_list(gv, rts):
        out = []
        for rt in rts:
            out.append({"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
                        "kind": rt.kind, "verbs": list(rt.verbs), **({"shortNames": list(rt.short_names)}
                                                                    if rt.short_names else {}),
                        **({"categories": list(rt.categories)} if rt.categories else {})})
            for sub in rt.subresources:
                verbs = {"status": ["get", "patch", "update"], "log": ["get"], "exec": ["create", "get"]}[sub]
                kind = {"log": "Pod", "exec": "PodExecOptions"}.get(sub, rt.kind)
                out.append({"name": f"{rt.plural}/{sub}", "singularName": "", "namespaced": rt.namespaced,
                            "kind": kind, "verbs": verbs})
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}

    # ------------------------------------------------------------------ verbs
    def _parse_body(self, body: bytes, content_type: str = ""):
        if "yaml" in content_type:
            try:
                return yaml.safe_load(body.decode() or "null")
            except yaml.YAMLError as e:
                raise bad_request(f"error decoding YAML: {e}")
        try:
            return json.loads(body.decode() or "null")
        except (ValueError, UnicodeDecodeError) as e:
            raise bad_request(f"the body of the request was in an unknown format - accepted media types include: "
                              f"application/json, application/yaml, application/vnd.kubernetes.protobuf "
                              f"(couldn't get version/kind; json parse error: {e})")

    def _handle(self, method, route, body):
        c = self.cluster
        st = c.store
        rt, ns, name, sub = route.rt, route.ns, route.name, route.sub
        dry = self.q.get("dryRun") == "All"
        fv = self.q.get("fieldValidation")
        if sub == "log":
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                               "resource")
            return c.kubelet.serve_log(self, ns, name)
        if sub == "exec":
            return self._exec(ns, name)
        if method == "GET" and name is None:
            return self._list_or_watch(rt, ns)
        if method == "GET":
            obj = st.get(rt, ns, name)
            if True:
                return self._send_json(200, obj)
        if method == "POST":
            if name is not None:
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                               "resource")
            data = self._parse_body(body, self.headers.get("Content-Type", ""))
            if not isinstance(data, dict):
                raise bad_request("the body of the request was in an unknown format - accepted media types "
                                  "include: application/json, application/yaml")
            if not rt.namespaced:
                ns = None
            obj, warnings = st.create(rt, ns, data, dry_run=dry, field_validation=fv)
            return self._send_json(201, obj, warnings)
        if method == "PUT":
            if name is None:
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                               "resource")
            data = self._parse_body(body, self.headers.get("Content-Type", ""))
            obj, warnings = st.update(rt, ns, name, data, subresource=sub, field_validation=fv, dry_run=dry)
            return self._send_json(200, obj, warnings)
        if method == "PATCH":
            ct = self.headers.get("Content-Type", "")
            data = self._parse_body(body, ct)
            obj, warnings = st.patch(rt, ns, name, ct, data, subresource=sub, field_validation=fv, dry_run=dry,
                                     field_manager=self.q.get("fieldManager"), force=self.q.get("force") == "true")
            return self._send_json(200, obj, warnings)
        if method == "DELETE":
            opts = {}
            if body:
                try:
                    opts = json.loads(body.decode()) or {}
                except ValueError:
                    raise bad_request("the body of the request was in an unknown format")
            propagation = self.q.get("propagationPolicy") or opts.get("propagationPolicy")
            if propagation not in (None, "Orphan", "Background", "Foreground"):
                raise bad_request(f'propagationPolicy: Unsupported value: "{propagation}": supported values: '
                                  '"Foreground", "Background", "Orphan"')
            grace = self.q.get("gracePeriodSeconds", opts.get("gracePeriodSeconds"))
            grace = int(grace) if grace not in (None, "") else None
            if name is None:
                return self._delete_collection(rt, ns, propagation, grace)
            obj, _gone = st.delete(rt, ns, name, propagation=propagation, grace=grace,
                                   preconditions=opts.get("preconditions"), dry_run=dry)
            if rt.return_deleted:
                return self._send_json(200, obj)
            details = {"name": name, "kind": rt.plural, "uid": obj["metadata"]["uid"]}
            if rt.group:
                details["group"] = rt.group
            return self._send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                         "status": "Success", "details": details})
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _delete_collection(self, rt, ns, propagation, grace):
        st = self.cluster.store
        lp = parse_label_selector(self.q.get("labelSelector"))
        fp = parse_field_selector(self.q.get("fieldSelector"), rt)
        items, _ = st.list(rt, ns, lp, fp)
        out = []
        for it in items:
            try:
                obj, _ = st.delete(rt, it["metadata"].get("namespace"), it["metadata"]["name"],
                                   propagation=propagation, grace=grace)
                out.append(obj)
            except ApiError:
                pass
        return self._send_json(200, self._list_body(rt, out, str(st.rv)))

    @staticmethod
    def _list_body(rt, items, rv):
        if not rt.is_custom:
            for it in items:
                it.pop("kind", None)
                it.pop("apiVersion", None)
        return {"kind": rt.kind + "List", "apiVersion": rt.api_version, "metadata": {"resourceVersion": rv},
                "items": items}

    def _list_or_watch(self, rt, ns):
        st = self.cluster.store
        lp = parse_label_selector(self.q.get("labelSelector"))
        fp = parse_field_selector(self.q.get("fieldSelector"), rt)
        if self.q.get("watch") in ("true", "1"):
            return self._watch(rt, ns, lp, fp)
        rvq = self.q.get("resourceVersion")
        if rvq and rvq != "0":
            try:
                int(rvq)
            except ValueError:
                raise bad_request(f'resourceVersion: Invalid value: "{rvq}": must be an integer')
        items, rv = st.list(rt, ns, lp, fp)
        limit = self.q.get("limit")
        body = self._list_body(rt, items, rv)
        if limit and limit != "0":
            start = int(self.q.get("continue") or 0) if (self.q.get("continue") or "0").isdigit() else 0
            n = int(limit)
            body["items"] = items[start:start + n]
            if start + n < len(items):
                body["metadata"]["continue"] = str(start + n)
                body["metadata"]["remainingItemCount"] = len(items) - start - n
            self._list_body(rt, body["items"], rv)
        return self._send_json(200, body)

    def _watch(self, rt, ns, lp, fp):
        c = self.cluster
        st = c.store
        rvq = self.q.get("resourceVersion") or ""
        timeout = self.q.get("timeoutSeconds")
        deadline = time.monotonic() + (float(timeout) if timeout else 1800.0)
        bookmarks = self.q.get("allowWatchBookmarks") in ("true", "1")
        initial_events = self.q.get("sendInitialEvents") == "true"
        drop_after = c.watch_drop_after
        if rvq not in ("", "0"):
            try:
                int(rvq)
            except ValueError:
                raise bad_request(f'resourceVersion: Invalid value: "{rvq}": must be an integer')

        def sel(o):
            if o is None:
                return False
            md = o["metadata"]
            if rt.namespaced and ns and md.get("namespace") != ns:
                return False
            return lp(md.get("labels") or {}) and fp(o)

        self._start_stream("application/json")
        sent = 0

        def send(type_, obj):
            nonlocal sent
            self._chunk(json.dumps({"type": type_, "object": obj}).encode() + b"\n")
            if type_ != "BOOKMARK":
                sent += 1

        def dropped():
            return drop_after is not None and sent >= drop_after

        try:
            with st.lock:
                if rvq in ("", "0") or initial_events:
                    initial, last = st.list(rt, ns, lp, fp)
                    last = int(last)
                else:
                    initial, last = [], int(rvq)
                    try:
                        st.events_after(last)
                    except ApiError as e:
                        initial = None
                        gone = e
            if initial is None:
                send("ERROR", gone.status())
                return self._end_stream()
            for obj in initial:
                send("ADDED", obj)
                if dropped():
                    return self._end_stream()
            if initial_events and bookmarks:
                send("BOOKMARK", {"kind": rt.kind, "apiVersion": rt.api_version,
                                  "metadata": {"resourceVersion": str(last),
                                               "annotations": {"k8s.io/initial-events-end": "true"}}})
            last_activity = time.monotonic()
            while True:
                now = time.monotonic()
                if now >= deadline or c._stopping:
                    break
                with st.lock:
                    try:
                        evs = st.events_after(last)
                    except ApiError as e:
                        send("ERROR", e.status())
                        break
                    if not evs:
                        st.cond.wait(min(0.25, max(0.0, deadline - now)))
                        evs = st.events_after(last) if st.rv > last else []
                for ev in evs:
                    last = ev.rv
                    if ev.rt.key != rt.key:
                        continue
                    new_ok, old_ok = sel(ev.obj), sel(ev.old)
                    if ev.type == "ADDED":
                        typ = "ADDED" if new_ok else None
                    elif ev.type == "DELETED":
                        typ = "DELETED" if new_ok else None
                    else:
                        typ = ("MODIFIED" if old_ok else "ADDED") if new_ok else ("DELETED" if old_ok else None)
                    if typ:
                        send(typ, ev.obj)
                        last_activity = time.monotonic()
                        if dropped():
                            return self._end_stream()
                if bookmarks and time.monotonic() - last_activity >= c.bookmark_interval:
                    send("BOOKMARK", {"kind": rt.kind, "apiVersion": rt.api_version,
                                      "metadata": {"resourceVersion": str(max(last, st.rv))}})
                    last_activity = time.monotonic()
            self._end_stream()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    # ------------------------------------------------------------------ exec (WebSocket)
    def _exec(self, ns, name):
        c = self.cluster
        if self.headers.get("Upgrade", "").lower() != "websocket":
            raise bad_request("Upgrade request required")
        commands = self.qlist.get("command") or []
        if not commands:
            raise bad_request("you must specify at least 1 command")
        container = self.q.get("container")
        stdin = self.q.get("stdin") in ("true", "1")
        # validation like the API server + kubelet
        c.kubelet.check_exec(ns, name, container)
        offered = [p.strip() for p in self.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        allowed = [p for p in EXEC_PROTOCOLS if p in c.exec_protocols]
        proto = next((p for p in offered if p in allowed), None)
        if offered and proto is None:
            raise ApiError(400, "BadRequest", f"unable to upgrade connection: none of the requested subprotocols "
                           f"({', '.join(offered)}) are supported")
        key = self.headers.get("Sec-WebSocket-Key", "")
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept_key(key))
        if proto:
            self.send_header("Sec-WebSocket-Protocol", proto)
        self.end_headers()
        self.close_connection = True
        ws = WebSocket(self.rfile, self.wfile)
        v5 = proto == "v5.channel.k8s.io"
        # The process reads its stdin as the frames arrive (a kubelet exec is a pipe), so a command
        # that stops reading (head -c N) can end while the client still holds stdin open.
        stdin_stream = c.kubelet.exec_stdin(name, streaming=stdin)
        client_gone = threading.Event()

        def read_frames():
            try:
                while True:
                    op, data = ws.recv()
                    if op == OP_CLOSE:
                        client_gone.set()
                        return
                    if op == OP_PING:
                        ws.send(data, OP_PONG)
                        continue
                    if op not in (OP_BINARY, OP_TEXT) or not data:
                        continue
                    if proto in ("v2.channel.k8s.io", "channel.k8s.io") and op == OP_TEXT:
                        import base64
                        ch, payload = int(chr(data[0])), base64.b64decode(data[1:])
                    else:
                        ch, payload = data[0], data[1:]
                    if v5 and ch == 255:
                        if payload[:1] == b"\x00":
                            stdin_stream.end()
                        continue
                    if ch == 0 and stdin:
                        stdin_stream.feed(payload)
            except (EOFError, OSError, ValueError):
                client_gone.set()
            finally:
                stdin_stream.end()          # a hang-up ends stdin too

        reader = threading.Thread(target=read_frames, name=f"exec-{name}", daemon=True)
        reader.start()
        code, out, err = c.kubelet.run_exec(ns, name, container, commands, stdin_stream)
        if client_gone.is_set():
            return
        try:
            if out:
                ws.send(b"\x01" + out)
            if err:
                ws.send(b"\x02" + err)
            if c.exec_status == "none":            # the stream ends without a Status
                ws.close()
                reader.join(timeout=2)
                return
            if c.exec_status == "no-exit-code":
                status = {"metadata": {}, "status": "Failure", "reason": "InternalError",
                          "message": "Internal error occurred: error executing command in container: "
                                     "container is not running"}
            elif code == 0:
                status = {"metadata": {}, "status": "Success"}
            else:
                status = {"metadata": {}, "status": "Failure",
                          "message": f"command terminated with non-zero exit code: error executing command "
                                     f"{commands}, exit code {code}".replace("'", ""),
                          "reason": "NonZeroExitCode",
                          "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
            ws.send(b"\x03" + json.dumps(status).encode())
            ws.close()
            reader.join(timeout=2)      # the client's close frame, so it reads everything
        except OSError:
            pass
