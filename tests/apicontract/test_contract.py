"""API behaviours fnctl relies on, asserted identically on the fake and the real API server."""

from __future__ import annotations

import json
import threading
import time

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

G, V = "serving.knative.dev", "v1"


def status_of(exc: ApiException) -> dict:
    body = json.loads(exc.body)
    assert body["kind"] == "Status" and body["status"] == "Failure" and body["code"] == exc.status
    return body


def ksvc(name="hello", image="registry.example.com/hello:1", **meta):
    return {"apiVersion": f"{G}/{V}", "kind": "Service", "metadata": {"name": name, **meta},
            "spec": {"template": {"spec": {"containers": [{"image": image}]}}}}


def test_configmap_errors_conflicts_and_selectors(api):
    core, ns = client.CoreV1Api(api.client), api.namespace
    cm = core.create_namespaced_config_map(ns, {"metadata": {"name": "cfg"}, "data": {"k": "v"}})
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "cfg"}})
    assert e.value.status == 409 and status_of(e.value)["reason"] == "AlreadyExists"
    assert status_of(e.value)["message"] == 'configmaps "cfg" already exists'
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "Bad_Name"}})
    assert e.value.status == 422 and status_of(e.value)["reason"] == "Invalid"
    assert 'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value' in status_of(e.value)["message"]
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("contract-nope", {"metadata": {"name": "x"}})
    assert e.value.status == 404 and status_of(e.value)["message"] == 'namespaces "contract-nope" not found'
    cm.data = {"k": "v2"}
    cm2 = core.replace_namespaced_config_map("cfg", ns, cm)
    assert cm2.metadata.resource_version != cm.metadata.resource_version
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_config_map("cfg", ns, cm)          # the old resourceVersion
    assert e.value.status == 409 and "the object has been modified" in status_of(e.value)["message"]
    assert core.replace_namespaced_config_map("cfg", ns, cm2).metadata.resource_version == \
        cm2.metadata.resource_version                                 # a no-op update
    assert core.patch_namespaced_config_map("cfg", ns, {"data": {"x": "y"}}).data == {"k": "v2", "x": "y"}
    for n, labels in (("a1", {"app": "fn", "tier": "x"}), ("a2", {"app": "fn"}), ("a3", {"app": "other"})):
        core.create_namespaced_config_map(ns, {"metadata": {"name": n, "labels": labels}})

    def names(**kw):
        return sorted(i.metadata.name for i in core.list_namespaced_config_map(ns, **kw).items)
    assert names(label_selector="app=fn") == ["a1", "a2"]
    assert names(label_selector="app in (fn, other),!tier") == ["a2", "a3"]
    assert names(field_selector="metadata.name=a2") == ["a2"]
    with pytest.raises(ApiException) as e:
        core.list_namespaced_config_map(ns, field_selector="data.k=v")
    assert e.value.status == 400


def test_watch_sees_changes_and_resumes(api):
    core, ns = client.CoreV1Api(api.client), api.namespace
    first = core.create_namespaced_config_map(ns, {"metadata": {"name": "one", "labels": {"app": "fn"}}})
    seen = []

    def later():
        time.sleep(0.5)
        core.create_namespaced_config_map(ns, {"metadata": {"name": "two", "labels": {"app": "fn"}}})
        core.patch_namespaced_config_map("one", ns, {"data": {"k": "v"}})
        core.delete_namespaced_config_map("one", ns)
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_config_map, ns, label_selector="app=fn", timeout_seconds=10):
        seen.append((ev["type"], ev["object"].metadata.name))
        if len(seen) == 1:      # the watch is established: only now change things (a slower server
            threading.Thread(target=later).start()     # could otherwise fold them into its first list)
        if len(seen) == 4:
            w.stop()
    assert seen == [("ADDED", "one"), ("ADDED", "two"), ("MODIFIED", "one"), ("DELETED", "one")]
    resumed = [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(
        core.list_namespaced_config_map, ns, resource_version=first.metadata.resource_version, timeout_seconds=2)]
    assert resumed == [("ADDED", "two"), ("MODIFIED", "one"), ("DELETED", "one")]


def test_knative_service_generation_defaulting_and_webhook_rules(api):
    co, ns = client.CustomObjectsApi(api.client), api.namespace
    created = co.create_namespaced_custom_object(G, V, ns, "services", ksvc())
    assert created["metadata"]["generation"] == 1
    assert created["spec"]["template"]["spec"]["containers"][0]["name"] == "user-container"
    p = co.patch_namespaced_custom_object(G, V, ns, "services", "hello", {"metadata": {"labels": {"team": "a"}}})
    assert p["metadata"]["generation"] == 1
    p = co.patch_namespaced_custom_object(G, V, ns, "services", "hello", {
        "spec": {"template": {"spec": {"containers": [{"image": "registry.example.com/hello:2"}]}}}})
    assert p["metadata"]["generation"] == 2
    with pytest.raises(ApiException) as e:
        co.replace_namespaced_custom_object(G, V, ns, "services", "hello", created)
    assert e.value.status == 409
    bad = ksvc("typed")
    bad["spec"]["template"]["spec"]["containers"][0]["image"] = 5
    with pytest.raises(ApiException) as e:
        co.create_namespaced_custom_object(G, V, ns, "services", bad)
    # Knative's mutating webhook decodes the object before the CRD schema is applied: 400, not 422.
    assert e.value.status == 400 and status_of(e.value)["reason"] == "BadRequest"
    assert status_of(e.value)["message"].startswith(
        'admission webhook "webhook.serving.knative.dev" denied the request: mutation failed: '
        "cannot decode incoming new object: json: cannot unmarshal number into Go struct field")
    with pytest.raises(ApiException) as e:
        co.create_namespaced_custom_object(G, V, ns, "services", ksvc("Hello"))
    assert e.value.status == 422 and status_of(e.value)["reason"] == "Invalid"
    assert 'Service.serving.knative.dev "Hello" is invalid: metadata.name: Invalid value' in \
        status_of(e.value)["message"]
    # Knative's webhook: names (DNS-1035 labels) and autoscaling annotations only on the template.
    with pytest.raises(ApiException) as e:
        co.create_namespaced_custom_object(G, V, ns, "services", ksvc("1hello"))
    assert e.value.status == 400 and "DNS-1035" in status_of(e.value)["message"]
    assert status_of(e.value)["message"].startswith(
        'admission webhook "validation.webhook.serving.knative.dev" denied the request: validation failed: ')
    with pytest.raises(ApiException) as e:
        co.create_namespaced_custom_object(G, V, ns, "services", ksvc(
            "annotated", annotations={"autoscaling.knative.dev/min-scale": "1"}))
    assert e.value.status == 400
    assert "autoscaling annotations must be put under" in status_of(e.value)["message"]
    on_template = ksvc("templated")
    on_template["spec"]["template"]["metadata"] = {"annotations": {"autoscaling.knative.dev/min-scale": "1"}}
    assert co.create_namespaced_custom_object(G, V, ns, "services", on_template)["metadata"]["generation"] == 1


def test_rbac_forbidden_message(api):
    api.deny_user("create", "pods")
    core = client.CoreV1Api(api.user_client)
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod(api.namespace, {"metadata": {"name": "p"},
                                                   "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    assert e.value.status == 403 and status_of(e.value)["reason"] == "Forbidden"
    assert status_of(e.value)["message"] == (
        f'pods is forbidden: User "{api.user}" cannot create resource "pods" in API group "" '
        f'in the namespace "{api.namespace}"')


def test_pod_security_restricted_refuses_a_root_pod(api):
    core = client.CoreV1Api(api.client)
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod(api.restricted, {"metadata": {"name": "root"}, "spec": {
            "containers": [{"name": "kaniko", "image": "example.invalid/kaniko"}]}})
    assert e.value.status == 403 and status_of(e.value)["reason"] == "Forbidden"
    message = status_of(e.value)["message"]
    assert message.startswith('pods "root" is forbidden: violates PodSecurity "restricted:latest": ')
    assert 'allowPrivilegeEscalation != false (container "kaniko" must set' in message
    assert "runAsNonRoot != true" in message


def test_fnctl_update_reads_again_after_a_conflict_or_a_delete(api):
    """fnctl.knative.apply updates with the resourceVersion it read: another writer between its read and
    its update gets a 409 Conflict (a delete a 404), and fnctl reads again instead of overwriting blindly."""
    from fnctl import knative
    from fnctl.kube.client import KSERVICES, Kube
    from fnctl.model import DeployRequest

    co, ns = client.CustomObjectsApi(api.client), api.namespace
    kube = Kube(api.client, "contract", None, ns)
    co.create_namespaced_custom_object(G, V, ns, "services", ksvc("race", "registry.example.com/race:1"))
    others = {"update": lambda: co.patch_namespaced_custom_object(G, V, ns, "services", "race", {
                  "spec": {"template": {"spec": {"containers": [{"image": "registry.example.com/race:2"}]}}}}),
              "delete": lambda: co.delete_namespaced_custom_object(G, V, ns, "services", "race")}
    read = kube.get
    for other in ("update", "delete"):
        pending = [others[other]]

        def read_then_race(res, name, pending=pending):
            obj = read(res, name)
            if pending:             # someone else writes between fnctl's read and its update
                pending.pop()()
            return obj
        kube.get = read_then_race
        notes: list[str] = []
        mine = knative.service_manifest(DeployRequest(name="race", source=".", template="bash"), ns,
                                        f"registry.example.com/race:{other}", template="bash", source=".")
        obj, before = knative.apply(kube, mine, on_conflict=notes.append)
        kube.get = read
        expected = {"update": "race was changed by someone else since fnctl read it",
                    "delete": "race was deleted by someone else since fnctl read it; creating it again"}[other]
        assert notes and notes[0].startswith(expected), notes
        image = obj["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == f"registry.example.com/race:{other}"
        stored = kube.get(KSERVICES, "race")
        assert stored["spec"]["template"]["spec"]["containers"][0]["image"] == image
        if other == "update":       # read again: it replaced the other writer's update, not the first version
            assert before["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example.com/race:2"
            assert obj["metadata"]["generation"] == 3
        else:
            assert before is None and obj["metadata"]["generation"] == 1
