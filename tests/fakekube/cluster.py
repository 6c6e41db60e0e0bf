"""FakeCluster: the fake API server, its store, a fake kubelet and a fake Knative controller."""
from __future__ import annotations

import contextlib
import copy
import os
import shutil
import tempfile
import threading
import uuid

import yaml

from . import resources
from .errors import ApiError
from .knative import KnativeController
from .kubelet import Kubelet
from .server import EXEC_PROTOCOLS, FakeApiServer
from .store import Store

TOKEN = "fake-token"


class FakeCluster:
    """A Kubernetes API server (with Knative Serving) on 127.0.0.1, for the real kubernetes client.

    with FakeCluster(namespace="default", domain="example.com") as cluster:
        api = kubernetes.client.CoreV1Api(cluster.api_client())
    """

    user = "fake"

    def __init__(self, namespace: str = "default", domain: str = "example.com", *, history_limit: int = 5000):
        self.namespace = namespace
        self.domain = domain
        self.store = Store(history_limit=history_limit)
        self.requests: list[tuple[str, str, dict]] = []
        self.events: list[str] = []
        self.uploaded_contexts: dict[str, bytes] = {}
        self.built_contexts: dict[str, bytes] = {}
        self.registry_manifests: set[str] = set()  # repo@sha256:... fake kaniko pushed (clear() wipes the registry)
        self.pushed_images: dict[str, str] = {}  # docker mode: build pod -> repo@sha256:... really pushed
        self.id = uuid.uuid4().hex[:12]          # docker mode labels its containers with it
        self.watch_drop_after: int | None = None
        self.knative_installed = True
        self.reject_tokens = False
        self.bookmark_interval = 1.0
        self.exec_protocols = list(EXEC_PROTOCOLS)
        # "normal"; "none": an exec's stream ends without a Status; "no-exit-code": a Failure Status
        # with no ExitCode cause (as when the container is gone): a client must not take either as success
        self.exec_status = "normal"
        self._forbidden: list[tuple[str, object, str | None]] = []
        self._req_lock = threading.Lock()
        self._stopping = False
        self._server: FakeApiServer | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: str | None = None
        self.kubeconfig_path: str | None = None
        self.kubelet = Kubelet(self)
        self.knative = KnativeController(self)
        for ns in dict.fromkeys(["default", "kube-system", "kube-public", "knative-serving", namespace]):
            self.store.create(resources.resolve("namespaces"), None, {"metadata": {"name": ns}}, internal=True)
        self.store.create(resources.resolve("configmaps"), "knative-serving", {
            "metadata": {"name": "config-domain", "labels": {"app.kubernetes.io/name": "knative-serving",
                                                            "app.kubernetes.io/component": "controller"}},
            "data": {domain: ""}}, internal=True)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeCluster:
        if self._server is not None:
            return self
        self._server = FakeApiServer(self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="fakekube-server", daemon=True)
        self._thread.start()
        self.kubelet.start()
        self.knative.start()
        self._tmpdir = tempfile.mkdtemp(prefix="fakekube-")
        self.kubeconfig_path = os.path.join(self._tmpdir, "kubeconfig")
        self.write_kubeconfig(self.kubeconfig_path)
        return self

    def stop(self):
        if self._server is None:
            return
        self._stopping = True
        with self.store.lock:
            self.store.cond.notify_all()
        for rtm in list(self.kubelet.pods.values()):
            rtm.stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._server = None
        self.knative.shutdown()
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    close = stop

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------ client configuration
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeCluster is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def kubeconfig(self, context: str = "fake", namespace: str | None = None) -> dict:
        return {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {"token": TOKEN}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context,
                                                       "namespace": namespace or self.namespace}}],
            "current-context": context,
        }

    def write_kubeconfig(self, path, context: str = "fake", namespace: str | None = None) -> str:
        path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            yaml.safe_dump(self.kubeconfig(context, namespace), f)
        return path

    def api_client(self):
        import kubernetes.client
        cfg = kubernetes.client.Configuration()
        cfg.host = self.url
        cfg.api_key = {"authorization": TOKEN}
        cfg.api_key_prefix = {"authorization": "Bearer"}
        cfg.verify_ssl = False
        return kubernetes.client.ApiClient(cfg)

    # ------------------------------------------------------------------ state access
    def get(self, kind_or_plural: str, name: str, namespace: str | None = "default"):
        rt = resources.resolve(kind_or_plural)
        obj = self.store.raw_get(rt, namespace if rt.namespaced else "", name)
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, kind_or_plural: str, namespace: str | None = "default", label_selector: str | None = None):
        from .selectors import parse_label_selector
        rt = resources.resolve(kind_or_plural)
        items, _ = self.store.list(rt, namespace if rt.namespaced else None, parse_label_selector(label_selector))
        return items

    def create(self, obj: dict) -> dict:
        """Seed an object as if created through the API (admission and validation included).

        A `status` given for a resource with a status subresource is kept (the API would drop it).
        """
        api_version, kind = obj.get("apiVersion", "v1"), obj.get("kind")
        if not kind:
            raise ValueError("create() needs an object with a kind")
        group = api_version.split("/")[0] if "/" in api_version else ""
        rt = next((r for r in resources.ALL if r.kind == kind and r.group == group), None)
        if rt is None:
            raise ValueError(f"unknown kind {api_version}/{kind}")
        ns = (obj.get("metadata") or {}).get("namespace") or (self.namespace if rt.namespaced else None)
        status = copy.deepcopy(obj.get("status"))
        created, _ = self.store.create(rt, ns, obj)
        if status is not None and rt.status_subresource and rt.plural != "pods":
            def fn(o):
                o["status"] = status
                return o
            created = self.store.mutate(rt, created["metadata"].get("namespace"), created["metadata"]["name"], fn)
        return copy.deepcopy(created)

    def delete(self, kind_or_plural: str, name: str, namespace: str | None = "default"):
        rt = resources.resolve(kind_or_plural)
        with contextlib.suppress(ApiError):
            self.store.delete(rt, namespace if rt.namespaced else None, name)

    def compact(self):
        """Drop the watch history: watches from an older resourceVersion now get 410 Gone."""
        self.store.compact()

    # ------------------------------------------------------------------ behaviour switches
    def forbid(self, verb: str, resource: str, namespace: str | None = None):
        """RBAC-style 403 for verb ('get', 'list', 'watch', 'create', 'update', 'patch', 'delete', '*')
        on resource ('pods', 'pods/log', 'pods/exec', 'configmaps', 'services.serving.knative.dev', 'ksvc', '*')."""
        self._forbidden.append((verb, self._res_key(resource), namespace))

    def allow(self, verb: str, resource: str, namespace: str | None = None):
        """Undo forbid()."""
        key = (verb, self._res_key(resource), namespace)
        self._forbidden = [f for f in self._forbidden if f != key]

    @staticmethod
    def _res_key(resource: str):
        if resource == "*":
            return "*"
        base, _, sub = resource.partition("/")
        if "." in sub:  # pods/exec written as 'services/status.serving.knative.dev'
            sub, grp = sub.split(".", 1)
            base = f"{base}.{grp}"
        return (resources.resolve(base).key, sub or None)
