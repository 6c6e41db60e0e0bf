"""A small dict-in, dict-out client over the `kubernetes` package's transport.

Only this package imports `kubernetes`, and only when a `Kube` is made, so
`fnctl --help` stays fast. Every call names its RBAC verb and resource, so a
failure can say exactly what was refused and where.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

from fnctl.errors import EnvironmentProblem, FnctlError, UsageError
from fnctl.kube import config as kconf
from fnctl.kube import errors as kerr

# connect, read timeouts of ordinary requests (seconds)
REQUEST_TIMEOUT = (10.0, 60.0)


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str

    @property
    def name(self) -> str:
        """The RBAC / kubectl name: pods, services.serving.knative.dev."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
        # An empty name, '.' or '..' would turn an object's path into the collection's (or another
        # one's): `DELETE .../services/.` reaches the server as `DELETE .../services/`.
        for what, part in (("namespace", namespace), (self.kind, name)):
            if part in ("", ".", ".."):
                raise UsageError(f"invalid {what} name {part!r}", "give the object's real name")
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace is not None:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
        if sub:
            base += f"/{sub}"
        return base


PODS = Resource("", "v1", "pods", "Pod")
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
SECRETS = Resource("", "v1", "secrets", "Secret")
KSERVICES = Resource("serving.knative.dev", "v1", "services", "Service")
REVISIONS = Resource("serving.knative.dev", "v1", "revisions", "Revision")


class Kube:
    """One cluster connection: an API client, its server, context and namespace."""

    def __init__(self, api_client, server: str, context: str | None, namespace: str):
        self.api = api_client
        self.server = server
        self.context = context
        self.namespace = namespace

    def in_namespace(self, namespace: str) -> Kube:
        """The same connection acting in another namespace."""
        return self if namespace == self.namespace else Kube(self.api, self.server, self.context, namespace)

    # -- plumbing ---------------------------------------------------------

    def _fail(self, status, body, verb, resource, name) -> FnctlError:
        return kerr.from_status(status, body, verb=verb, resource=resource, name=name,
                                namespace=self.namespace, server=self.server, context=self.context)

    def request(self, method: str, path: str, *, verb: str, resource: str, name: str | None = None,
                query: dict | None = None, body=None, content_type: str | None = None,
                timeout=REQUEST_TIMEOUT, stream: bool = False, not_found_ok: bool = False,
                none_on: tuple[int, ...] = ()):
        """One API call. Returns the decoded JSON (or the raw urllib3 response when `stream`)."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        try:
            req = self.api.param_serialize(method, path, query_params=params, header_params=headers,
                                           body=body, auth_settings=["BearerToken"])
            resp = self.api.call_api(*req, _request_timeout=timeout)
        except ApiException as e:
            if e.status in (0, None):
                raise kerr.unreachable(self.server, _short(e.reason)) from None
            raise self._fail(e.status, e.body, verb, resource, name) from None
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise kerr.unreachable(self.server, _short(e)) from None
        if (resp.status == 404 and not_found_ok) or resp.status in none_on:
            with contextlib.suppress(urllib3.exceptions.HTTPError, OSError):
                resp.read()             # drain, so the pooled connection stays usable
            return None
        if not 200 <= resp.status <= 299:
            try:
                data = resp.read()
            except (urllib3.exceptions.HTTPError, OSError):
                data = b""
            raise self._fail(resp.status, data, verb, resource, name)
        if stream:
            return resp.response
        try:
            data = resp.read()
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise kerr.unreachable(self.server, _short(e)) from None
        return json.loads(data) if data else {}

    # -- objects ----------------------------------------------------------

    def get(self, res: Resource, name: str) -> dict | None:
        return self.request("GET", res.path(self.namespace, name), verb="get", resource=res.name,
                            name=name, not_found_ok=True)

    def list(self, res: Resource, label_selector: str | None = None, field_selector: str | None = None) -> dict:
        return self.request("GET", res.path(self.namespace), verb="list", resource=res.name,
                            query={"labelSelector": label_selector, "fieldSelector": field_selector})

    def create(self, res: Resource, body: dict) -> dict:
        return self.request("POST", res.path(self.namespace), verb="create", resource=res.name,
                            name=body.get("metadata", {}).get("name"), body=body)

    def replace(self, res: Resource, body: dict) -> dict:
        name = body["metadata"]["name"]
        return self.request("PUT", res.path(self.namespace, name), verb="update", resource=res.name,
                            name=name, body=body)

    def merge_patch(self, res: Resource, name: str, patch: dict) -> dict:
        return self.request("PATCH", res.path(self.namespace, name), verb="patch", resource=res.name,
                            name=name, body=patch, content_type="application/merge-patch+json")

    def delete(self, res: Resource, name: str, missing_ok: bool = True, uid: str | None = None) -> bool:
        """Delete in the background (owned objects follow); pods at once. False when it was not there.

        With `uid`, only that very object: one deleted and made again meanwhile is left alone (409).
        """
        query = {"propagationPolicy": "Background"}
        if res is PODS:
            query["gracePeriodSeconds"] = "0"
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}} if uid else None
        found = self.request("DELETE", res.path(self.namespace, name), verb="delete", resource=res.name,
                             name=name, query=query, body=body, not_found_ok=missing_ok)
        return found is not None

    def api_group_served(self, group: str, version: str) -> bool:
        """Is group/version served (discovery)? Used to tell 'Knative not installed'."""
        res = self.request("GET", f"/apis/{group}/{version}", verb="get", resource=f"{group}/{version}",
                           not_found_ok=True)
        return res is not None

    # -- watching ---------------------------------------------------------

    def watch(self, res: Resource, name: str, deadline: float) -> Iterator[dict]:
        """Yield the object's state now and after every change, until `deadline` (monotonic).

        Lists once for the current state and resourceVersion, then watches from
        there. A watch the server ends or drops is resumed from the last
        resourceVersion seen; 410 Gone (too old) lists again. A deleted object
        yields {} once.
        """
        for kind, obj in self.watch_events(res, deadline, field_selector=f"metadata.name={name}"):
            if kind == "LISTED":
                yield obj[0] if obj else {}
            else:
                yield {} if kind == "DELETED" else obj

    def watch_events(self, res: Resource, deadline: float, *, field_selector: str | None = None,
                     label_selector: str | None = None) -> Iterator[tuple[str, object]]:
        """("LISTED", [objects]) for the current state, then (ADDED|MODIFIED|DELETED, object) per change,
        until `deadline`; resumed and relisted as `watch` describes."""
        rv = None
        while time.monotonic() < deadline:
            if rv is None:
                listing = self.list(res, label_selector=label_selector, field_selector=field_selector)
                rv = listing.get("metadata", {}).get("resourceVersion")
                yield "LISTED", listing.get("items") or []
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            query = {"watch": "true", "fieldSelector": field_selector, "labelSelector": label_selector,
                     "resourceVersion": rv, "allowWatchBookmarks": "true",
                     "timeoutSeconds": str(max(1, min(300, int(remaining + 1))))}
            name = field_selector.partition("metadata.name=")[2] if field_selector else None
            resp = self.request("GET", res.path(self.namespace), verb="watch", resource=res.name,
                                name=name or None, query=query, stream=True, none_on=(410,),
                                timeout=(REQUEST_TIMEOUT[0], max(1.0, remaining) + 5))
            if resp is None:        # 410 Gone: our resourceVersion is too old
                rv = None
                continue
            gone = False
            try:
                for event in _events(resp):
                    kind = event.get("type")
                    obj = event.get("object") or {}
                    if kind == "ERROR":
                        if obj.get("code") == 410:
                            gone = True
                            break
                        raise self._fail(obj.get("code") or 500, json.dumps(obj), "watch", res.name, name)
                    new_rv = obj.get("metadata", {}).get("resourceVersion")
                    if new_rv:
                        rv = new_rv
                    if kind == "BOOKMARK":
                        continue
                    yield kind, obj
                    if time.monotonic() >= deadline:
                        return
            except _Dropped:
                pass            # resume from rv
            finally:
                _close(resp)
            if gone:
                rv = None

    # -- pods ---------------------------------------------------------------

    def follow_log(self, pod: str, container: str, deadline: float) -> Iterator[str]:
        """The container's log lines as they are written, until it ends or `deadline`."""
        remaining = max(1.0, deadline - time.monotonic())
        resp = self.request("GET", PODS.path(self.namespace, pod, "log"), verb="get", resource="pods/log",
                            name=pod, query={"container": container, "follow": "true"}, stream=True,
                            timeout=(REQUEST_TIMEOUT[0], remaining))
        try:
            for line in _lines(resp):
                yield line
                if time.monotonic() >= deadline:
                    return
        except _Dropped:
            return
        finally:
            _close(resp)

    def exec_upload(self, pod: str, container: str, command: list[str], data: bytes,
                    timeout: float = 300.0) -> tuple[int | None, str]:
        """Run `command` in the container with `data` on its stdin; (exit code, stderr)."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException
        from kubernetes.stream import stream

        core = client.CoreV1Api(self.api)
        try:
            ws = stream(core.connect_get_namespaced_pod_exec, pod, self.namespace, container=container,
                        command=command, stdin=True, stdout=True, stderr=True, tty=False,
                        _preload_content=False, binary=True)
        except ApiException as e:
            # The websocket layer reports HTTP failures as status 0 with the handshake text.
            text = str(e.reason or "")
            for code in (401, 403, 404):
                if f" {code} " in text or text.startswith(f"Handshake status {code}"):
                    # get (Kubernetes 1.29-1.34) and create as well (1.35+) authorize a WebSocket exec
                    raise self._fail(code, b"", "get, create", "pods/exec", pod) from None
            raise kerr.unreachable(self.server, _short(text)) from None
        err = b""
        try:
            step = 256 * 1024
            for i in range(0, len(data), step):
                ws.write_stdin(data[i:i + step])
                ws.update(timeout=0)
            ws.close_channel(0)     # v5.channel.k8s.io: end of stdin; the command reads a known size anyway
            end = time.monotonic() + timeout
            while ws.is_open() and time.monotonic() < end:
                ws.update(timeout=1)
                if ws.peek_stderr():
                    err += ws.read_stderr()
            if ws.is_open():
                return None, "the upload did not finish in time"
            code, status = exit_status(ws.read_channel(3))      # channel 3: the exec's Status
        finally:
            ws.close()
        if isinstance(err, bytes):
            err = err.decode("utf-8", "replace")
        return code, "\n".join(part for part in (err.strip(), status) if part)


def exit_status(text) -> tuple[int | None, str]:
    """(exit code, message) from an exec's Status (its channel 3); code None when it names none.

    Success is 0; a failure carries the code as an ExitCode cause. A missing or cut-off
    status, or a failure without that cause (the container went away, the API server
    broke off), has no exit code: it never raises, unlike the client's own `returncode`.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        status = json.loads(text) if text else None
    except ValueError:
        status = None
    if not isinstance(status, dict):
        return None, ""
    message = str(status.get("message") or "")
    if status.get("status") == "Success":
        return 0, ""
    for cause in (status.get("details") or {}).get("causes") or []:
        if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
            with contextlib.suppress(TypeError, ValueError):
                return int(cause.get("message")), message
    return None, message


def _close(resp) -> None:
    """Close a stream that may not be at its end: its connection must not go back to the pool as is."""
    try:
        resp.close()
        resp.release_conn()
    except Exception:           # noqa: BLE001 - closing is best effort
        pass


class _Dropped(Exception):
    """The server closed a stream early; the caller resumes."""


def _chunks(resp) -> Iterator[bytes]:
    import urllib3

    try:
        yield from resp.stream(amt=None, decode_content=False)
    except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError, OSError) as e:
        raise _Dropped(str(e)) from None


def _lines(resp) -> Iterator[str]:
    buffer = b""
    for chunk in _chunks(resp):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", "replace").rstrip("\r")
    if buffer:
        yield buffer.decode("utf-8", "replace")


def _events(resp) -> Iterator[dict]:
    for line in _lines(resp):
        if line.strip():
            try:
                yield json.loads(line)
            except ValueError:
                raise _Dropped("a watch event was cut off") from None


def _short(reason) -> str:
    text = str(reason or "connection failed")
    for marker in ("Connection refused", "Name or service not known", "timed out", "No route to host",
                   "Temporary failure in name resolution", "certificate verify failed", "Connection reset"):
        if marker in text:
            return marker.lower() if marker != "Connection refused" else "connection refused"
    return text.splitlines()[0][:200]


# -- connecting ------------------------------------------------------------

def connect(context: str | None = None, namespace: str | None = None) -> Kube:
    """Connect with the kubeconfig (KUBECONFIG, ~/.kube/config) or, in a pod, the service account.

    Nothing is sent to the server yet.
    """
    from kubernetes import client
    from kubernetes import config as kconfig
    from kubernetes.config.config_exception import ConfigException

    cfg = client.Configuration()
    path = kconf.kubeconfig_path()
    if path:
        try:
            contexts, current = kconfig.list_kube_config_contexts(config_file=path)
        except ConfigException as e:
            raise UsageError(f"cannot read the kubeconfig {path}: {e}",
                             "fix the file or point KUBECONFIG elsewhere") from None
        names = [c.get("name") for c in contexts or []]
        if context is not None and context not in names:
            raise UsageError(f"the kubeconfig has no context {context!r}",
                             "known contexts: " + (", ".join(n for n in names if n) or "none")
                             + " (`kubectl config get-contexts`)")
        chosen = context or (current or {}).get("name")
        if not chosen:
            raise UsageError(f"the kubeconfig {path} has no current context",
                             "pick one with --context, or `kubectl config use-context NAME`")
        try:
            kconfig.load_kube_config(config_file=path, context=chosen, client_configuration=cfg,
                                     persist_config=False)
        except ConfigException as e:
            raise EnvironmentProblem(f"cannot use kubeconfig context {chosen!r}: {e}",
                                     "check the context's cluster and user entries (`kubectl config view`)") from None
        _, ctx_ns = kconf.context_namespace(chosen)
        ns = namespace or ctx_ns or "default"
    elif kconf.in_cluster():
        try:
            kconfig.load_incluster_config(client_configuration=cfg)
        except ConfigException as e:
            raise EnvironmentProblem(f"cannot use the pod's service account: {e}",
                                     "mount a service-account token, or provide a kubeconfig") from None
        chosen = None
        try:
            sa_ns = (kconf.SERVICE_ACCOUNT_DIR / "namespace").read_text().strip()
        except OSError:
            sa_ns = ""
        ns = namespace or sa_ns or "default"
    else:
        raise EnvironmentProblem("no Kubernetes configuration found",
                                 "set KUBECONFIG or create ~/.kube/config; without one, fnctl deploys to "
                                 "the local Docker engine")
    cfg.retries = 1
    return Kube(client.ApiClient(cfg), cfg.host, chosen, ns)
