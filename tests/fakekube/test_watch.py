"""Watch: selectors, resume from resourceVersion, 410 Gone, watch_drop_after, timeouts, bookmarks."""
import threading
import time

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

G, V = "serving.knative.dev", "v1"


def cm(name, **labels):
    return {"metadata": {"name": name, "labels": labels}}


def test_watch_initial_state_then_changes_with_label_selector(cluster, api):
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", cm("a", app="fn"))
    core.create_namespaced_config_map("default", cm("b", app="other"))
    seen = []

    def later():
        time.sleep(0.2)
        core.create_namespaced_config_map("default", cm("c", app="fn"))
        core.patch_namespaced_config_map("a", "default", {"data": {"k": "v"}})
        core.patch_namespaced_config_map("b", "default", {"metadata": {"labels": {"app": "fn"}}})  # enters
        core.patch_namespaced_config_map("c", "default", {"metadata": {"labels": {"app": "gone"}}})  # leaves
        core.delete_namespaced_config_map("a", "default")
    threading.Thread(target=later).start()
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_config_map, "default", label_selector="app=fn", timeout_seconds=3):
        seen.append((ev["type"], ev["object"].metadata.name))
        if len(seen) == 6:
            w.stop()
    assert seen == [("ADDED", "a"), ("ADDED", "c"), ("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "c"),
                    ("DELETED", "a")]
    watch_reqs = [q for m, p, q in cluster.requests if p.endswith("/configmaps") and q.get("watch") == "True"
                  or q.get("watch") == "true"]
    assert watch_reqs and watch_reqs[0]["labelSelector"] == "app=fn"


def test_watch_resumes_from_resource_version_and_field_selector(api):
    core = client.CoreV1Api(api)
    first = core.create_namespaced_config_map("default", cm("one"))
    core.create_namespaced_config_map("default", cm("two"))
    core.create_namespaced_config_map("default", cm("three"))
    w = watch.Watch()
    events = []
    for ev in w.stream(core.list_namespaced_config_map, "default",
                       resource_version=first.metadata.resource_version, timeout_seconds=1):
        events.append((ev["type"], ev["object"].metadata.name))
    assert events == [("ADDED", "two"), ("ADDED", "three")]
    events = [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(
        core.list_namespaced_config_map, "default", field_selector="metadata.name=two", timeout_seconds=1)]
    assert events == [("ADDED", "two")]


def test_410_gone_for_compacted_resource_version(cluster, api):
    core = client.CoreV1Api(api)
    old = core.create_namespaced_config_map("default", cm("x"))
    core.create_namespaced_config_map("default", cm("y"))
    cluster.compact()
    with pytest.raises(ApiException) as e:
        for _ in watch.Watch().stream(core.list_namespaced_config_map, "default",
                                      resource_version=old.metadata.resource_version, timeout_seconds=1):
            pass
    assert e.value.status == 410 and "too old resource version" in e.value.reason
    # raw stream: a single ERROR event carrying a 410 Status, like Kubernetes
    resp = core.list_namespaced_config_map("default", watch=True, resource_version=old.metadata.resource_version,
                                           _preload_content=False)
    import json
    lines = [json.loads(line) for line in resp.read().decode().splitlines() if line]
    assert lines == [{"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": lines[0]["object"]["message"], "reason": "Expired", "code": 410}}]


def test_watch_drop_after_forces_clients_to_resume(cluster, api):
    core = client.CoreV1Api(api)
    cluster.watch_drop_after = 2
    start = core.list_namespaced_config_map("default").metadata.resource_version

    def writer():
        for i in range(6):
            time.sleep(0.05)
            core.create_namespaced_config_map("default", cm(f"n{i}"))
    threading.Thread(target=writer).start()
    names = []
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_config_map, "default", resource_version=start):
        names.append(ev["object"].metadata.name)
        if len(names) == 6:
            w.stop()
    assert names == [f"n{i}" for i in range(6)]  # nothing lost, nothing duplicated
    watches = [q for m, p, q in cluster.requests if q.get("watch") in ("true", "True")]
    assert len(watches) >= 3  # the stream was closed every 2 events and resumed
    assert all(q.get("resourceVersion") for q in watches)


def test_custom_object_watch_sees_status_changes(cluster, api):
    co = client.CustomObjectsApi(api)
    co.create_namespaced_custom_object(G, V, "default", "services", {
        "apiVersion": f"{G}/{V}", "kind": "Service", "metadata": {"name": "w"},
        "spec": {"template": {"spec": {"containers": [{"image": "img:1"}]}}}})
    ready = False
    w = watch.Watch()
    for ev in w.stream(co.list_namespaced_custom_object, G, V, "default", "services",
                       field_selector="metadata.name=w", timeout_seconds=5):
        conds = {c["type"]: c["status"] for c in ev["object"].get("status", {}).get("conditions", [])}
        if conds.get("Ready") == "True":
            ready = True
            w.stop()
    assert ready


def test_timeout_and_bookmarks(cluster, api):
    import json
    core = client.CoreV1Api(api)
    cluster.bookmark_interval = 0.2
    t0 = time.monotonic()
    resp = core.list_namespaced_config_map("default", watch=True, timeout_seconds=1, allow_watch_bookmarks=True,
                                           resource_version="1", _preload_content=False)
    events = [json.loads(line) for line in resp.read().decode().splitlines() if line]
    assert 0.9 <= time.monotonic() - t0 < 3
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks and int(bookmarks[-1]["object"]["metadata"]["resourceVersion"]) > 1
