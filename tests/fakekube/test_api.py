"""CRUD, errors, resourceVersion/generation, status subresource, patches, GC, auth."""
import json

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

G, V = "serving.knative.dev", "v1"


def ksvc(name="hello", image="registry.example.com/hello:1"):
    return {"apiVersion": f"{G}/{V}", "kind": "Service", "metadata": {"name": name},
            "spec": {"template": {"spec": {"containers": [{"image": image}]}}}}


def status_of(exc: ApiException) -> dict:
    body = json.loads(exc.body)
    assert body["kind"] == "Status" and body["status"] == "Failure" and body["code"] == exc.status
    return body


def test_discovery_and_kubeconfig(cluster, tmp_path):
    path = cluster.write_kubeconfig(tmp_path / "kc", context="fake", namespace="default")
    api_client = config.new_client_from_config(config_file=str(path), context="fake")
    assert client.VersionApi(api_client).get_code().git_version.startswith("v1.")
    groups = client.ApisApi(api_client).get_api_versions().groups
    assert [g.name for g in groups] == ["serving.knative.dev"]
    res = client.CustomObjectsApi(api_client).get_api_resources(G, V) if hasattr(
        client.CustomObjectsApi, "get_api_resources") else None
    names = {r["name"] if isinstance(r, dict) else r.name for r in (res.resources if res else [])}
    assert not res or {"services", "revisions", "configurations", "routes"} <= names
    core = client.CoreV1Api(api_client).get_api_resources()
    assert {"pods", "pods/log", "pods/exec", "configmaps", "secrets", "namespaces"} <= {r.name for r in core.resources}
    # the kubeconfig written on start works too
    config.load_kube_config(config_file=cluster.kubeconfig_path)
    assert client.CoreV1Api().read_namespace("default").status.phase == "Active"


def test_configmap_crud_and_errors(api):
    core = client.CoreV1Api(api)
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "cfg", "labels": {"a": "1"}},
                                                       "data": {"k": "v"}})
    assert cm.metadata.uid and cm.metadata.creation_timestamp and int(cm.metadata.resource_version) > 0
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("default", {"metadata": {"name": "cfg"}})
    assert e.value.status == 409 and status_of(e.value)["reason"] == "AlreadyExists"
    assert status_of(e.value)["message"] == 'configmaps "cfg" already exists'
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("default", {"metadata": {"name": "Bad_Name"}})
    assert e.value.status == 422 and status_of(e.value)["reason"] == "Invalid"
    assert 'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value' in status_of(e.value)["message"]
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("nope", {"metadata": {"name": "x"}})
    assert e.value.status == 404 and status_of(e.value)["message"] == 'namespaces "nope" not found'
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("missing", "default")
    assert e.value.status == 404 and status_of(e.value)["reason"] == "NotFound"
    # update: 200, rv changes; stale rv -> 409 Conflict
    cm.data = {"k": "v2"}
    cm2 = core.replace_namespaced_config_map("cfg", "default", cm)
    assert int(cm2.metadata.resource_version) > int(cm.metadata.resource_version)
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_config_map("cfg", "default", cm)  # still carries the old resourceVersion
    assert e.value.status == 409 and "the object has been modified" in status_of(e.value)["message"]
    # no-op update keeps the resourceVersion
    cm3 = core.replace_namespaced_config_map("cfg", "default", cm2)
    assert cm3.metadata.resource_version == cm2.metadata.resource_version
    # strategic merge (dict body) and json patch (list body)
    p = core.patch_namespaced_config_map("cfg", "default", {"data": {"x": "y"}})
    assert p.data == {"k": "v2", "x": "y"}
    p = core.patch_namespaced_config_map("cfg", "default", [{"op": "remove", "path": "/data/k"}])
    assert p.data == {"x": "y"}
    # generateName
    g = core.create_namespaced_config_map("default", {"metadata": {"generateName": "ctx-"}})
    assert g.metadata.name.startswith("ctx-") and len(g.metadata.name) == 9
    # delete: Status for configmaps; then 404
    st = core.delete_namespaced_config_map("cfg", "default", propagation_policy="Background")
    assert (st["status"] if isinstance(st, dict) else st.status) == "Success"
    with pytest.raises(ApiException) as e:
        core.delete_namespaced_config_map("cfg", "default")
    assert e.value.status == 404
    # label selectors
    for n, lb in (("a1", {"app": "fn", "tier": "x"}), ("a2", {"app": "fn"}), ("a3", {"app": "other"})):
        core.create_namespaced_config_map("default", {"metadata": {"name": n, "labels": lb}})

    def names(**kw):
        return sorted(i.metadata.name for i in core.list_namespaced_config_map("default", **kw).items)
    assert names(label_selector="app=fn") == ["a1", "a2"]
    assert names(label_selector="app!=fn,app") == ["a3"]
    assert names(label_selector="app in (fn, other),!tier") == ["a2", "a3"]
    assert names(label_selector="app notin (fn),app") == ["a3"]
    assert names(label_selector="tier") == ["a1"]
    assert names(field_selector="metadata.name=a2") == ["a2"]
    with pytest.raises(ApiException) as e:
        core.list_namespaced_config_map("default", field_selector="data.k=v")
    assert e.value.status == 400


def test_malformed_json_is_400(cluster, api):
    import urllib.request
    req = urllib.request.Request(cluster.url + "/api/v1/namespaces/default/configmaps", data=b"{not json",
                                 method="POST", headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert e.value.code == 400 and json.loads(e.value.read())["reason"] == "BadRequest"


def test_knative_generation_status_subresource_and_validation(cluster, api):
    co = client.CustomObjectsApi(api)
    created = co.create_namespaced_custom_object(G, V, "default", "services", ksvc())
    assert created["metadata"]["generation"] == 1
    assert created["spec"]["template"]["spec"]["containers"][0]["name"] == "user-container"  # webhook defaulting
    assert "status" not in created
    # metadata-only change: generation unchanged
    p = co.patch_namespaced_custom_object(G, V, "default", "services", "hello",
                                          {"metadata": {"labels": {"team": "a"}}})
    assert p["metadata"]["generation"] == 1
    # spec change: generation + 1
    p = co.patch_namespaced_custom_object(G, V, "default", "services", "hello", {
        "spec": {"template": {"spec": {"containers": [{"image": "registry.example.com/hello:2"}]}}}})
    assert p["metadata"]["generation"] == 2
    # status sent on the main resource is ignored (retry on 409: the fake Knative controller writes status too)
    def replace(fn, status=False):
        while True:
            cur = co.get_namespaced_custom_object(G, V, "default", "services", "hello")
            fn(cur)
            try:
                if status:
                    return co.replace_namespaced_custom_object_status(G, V, "default", "services", "hello", cur)
                return co.replace_namespaced_custom_object(G, V, "default", "services", "hello", cur)
            except ApiException as e:
                if e.status != 409:
                    raise

    def bump(cur):
        cur["status"] = {"observedGeneration": 99}
        cur["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example.com/hello:3"
    r = replace(bump)
    assert r["metadata"]["generation"] == 3 and r.get("status", {}).get("observedGeneration") != 99
    # the status subresource changes only status
    cluster.knative.mode = "never"

    def st(cur):
        cur["status"] = {"observedGeneration": 42}
        cur["spec"]["template"]["spec"]["containers"][0]["image"] = "ignored"
    s = replace(st, status=True)
    assert s["status"] == {"observedGeneration": 42}
    assert s["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example.com/hello:3"
    assert s["metadata"]["generation"] == 3
    # stale resourceVersion on a custom object -> 409
    with pytest.raises(ApiException) as e:
        co.replace_namespaced_custom_object(G, V, "default", "services", "hello", created)
    assert e.value.status == 409
    # CRD schema: wrong type -> 422; unknown fields are pruned
    bad = ksvc("typed")
    bad["spec"]["template"]["spec"]["containers"][0]["image"] = 5
    with pytest.raises(ApiException) as e:
        co.create_namespaced_custom_object(G, V, "default", "services", bad)
    body = status_of(e.value)
    # as the real API server answers (tests/apicontract): Knative's mutating webhook decodes first
    assert e.value.status == 400 and body["reason"] == "BadRequest"
    assert "cannot unmarshal number into Go struct field spec.template.spec.containers[0].image" in body["message"]
    extra = ksvc("pruned")
    extra["spec"]["template"]["spec"]["containers"][0]["bogus"] = True
    extra["spec"]["template"]["metadata"] = {"annotations": {"autoscaling.knative.dev/min-scale": "1"}}
    out = co.create_namespaced_custom_object(G, V, "default", "services", extra)
    assert "bogus" not in out["spec"]["template"]["spec"]["containers"][0]
    assert out["spec"]["template"]["metadata"]["annotations"] == {"autoscaling.knative.dev/min-scale": "1"}
    # names: API server 422 (subdomain), Knative webhook 400 (DNS-1035 label)
    with pytest.raises(ApiException) as e:
        co.create_namespaced_custom_object(G, V, "default", "services", ksvc("Hello"))
    assert e.value.status == 422
    with pytest.raises(ApiException) as e:
        co.create_namespaced_custom_object(G, V, "default", "services", ksvc("1hello"))
    assert e.value.status == 400 and "DNS-1035" in status_of(e.value)["message"]
    with pytest.raises(ApiException) as e:
        co.create_namespaced_custom_object(G, V, "default", "services", ksvc("a" * 64))
    assert e.value.status == 400 and "63 characters" in status_of(e.value)["message"]
    with pytest.raises(ApiException) as e:
        co.create_namespaced_custom_object(G, V, "default", "services", ksvc("noimage", image=""))
    assert e.value.status == 400 and "containers[0].image" in status_of(e.value)["message"]


def test_delete_cascades_by_owner_references(cluster, api):
    core = client.CoreV1Api(api)
    owner = core.create_namespaced_config_map("default", {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_secret("default", {"metadata": {"name": "dep", "ownerReferences": [ref]},
                                              "stringData": {}, "data": {"a": "Yg=="}})
    kept = core.create_namespaced_secret("default", {"metadata": {"name": "orphan", "ownerReferences": [ref]}})
    assert kept.metadata.owner_references[0].uid == owner.metadata.uid
    core.delete_namespaced_config_map("owner", "default")
    assert cluster.get("secrets", "dep") is None and cluster.get("secrets", "orphan") is None
    o2 = core.create_namespaced_config_map("default", {"metadata": {"name": "owner2"}})
    core.create_namespaced_secret("default", {"metadata": {"name": "keep", "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner2", "uid": o2.metadata.uid}]}})
    core.delete_namespaced_config_map("owner2", "default", propagation_policy="Orphan")
    assert cluster.get("secrets", "keep") is not None
    assert not cluster.get("secrets", "keep")["metadata"].get("ownerReferences")


def test_forbid_reject_tokens_and_missing_knative(cluster, api):
    core = client.CoreV1Api(api)
    co = client.CustomObjectsApi(api)
    cluster.forbid("create", "pods")
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod("default", {"metadata": {"name": "p"},
                                               "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    assert e.value.status == 403
    assert status_of(e.value)["message"] == ('pods is forbidden: User "fake" cannot create resource "pods" in API '
                                             'group "" in the namespace "default"')
    core.list_namespaced_pod("default")  # other verbs still allowed
    cluster.forbid("get", "ksvc")
    with pytest.raises(ApiException) as e:
        co.get_namespaced_custom_object(G, V, "default", "services", "x")
    assert e.value.status == 403 and 'cannot get resource "services" in API group "serving.knative.dev"' in \
        status_of(e.value)["message"]
    cluster.reject_tokens = True
    with pytest.raises(ApiException) as e:
        core.list_namespaced_config_map("default")
    assert e.value.status == 401 and status_of(e.value)["reason"] == "Unauthorized"
    cluster.reject_tokens = False
    cluster.knative_installed = False
    assert client.ApisApi(api).get_api_versions().groups == []
    with pytest.raises(ApiException) as e:
        co.list_namespaced_custom_object(G, V, "default", "services")
    assert e.value.status == 404 and status_of(e.value)["message"] == \
        "the server could not find the requested resource"


def test_seeding_and_state_access(cluster):
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
    cluster.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "regcred", "namespace": "team-a"},
                    "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "e30="}})
    seeded = cluster.create({**ksvc("old"), "status": {"observedGeneration": 1, "url": "http://old.default.x"}})
    assert seeded["status"]["url"] == "http://old.default.x"
    assert cluster.get("secrets", "regcred", namespace="team-a")["type"] == "kubernetes.io/dockerconfigjson"
    assert cluster.get("serviceaccounts", "default", namespace="team-a") is not None  # like the SA controller
    assert [s["metadata"]["name"] for s in cluster.list("Secret", namespace="team-a")] == ["regcred"]
    assert cluster.get("namespaces", "team-a", namespace=None)["status"]["phase"] == "Active"
