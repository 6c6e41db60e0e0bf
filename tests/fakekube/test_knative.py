"""Fake Knative controller: modes, revisions per generation, traffic, cascading delete."""
import time

from kubernetes import client, watch

G, V = "serving.knative.dev", "v1"


def ksvc(name="hello", image="registry.example.com/hello:1", **extra):
    return {"apiVersion": f"{G}/{V}", "kind": "Service", "metadata": {"name": name, **extra},
            "spec": {"template": {"spec": {"containers": [{"image": image}]}}}}


def wait_final(co, name, gen, timeout=5):
    """Wait (with a watch) until observedGeneration == gen and Ready is not Unknown."""
    seen = []
    w = watch.Watch()
    for ev in w.stream(co.list_namespaced_custom_object, G, V, "default", "services",
                       field_selector=f"metadata.name={name}", timeout_seconds=timeout):
        obj = ev["object"]
        st = obj.get("status") or {}
        ready = next((c for c in st.get("conditions") or [] if c["type"] == "Ready"), None)
        seen.append((st.get("observedGeneration"), (ready or {}).get("status"), (ready or {}).get("reason")))
        if st.get("observedGeneration") == gen == obj["metadata"]["generation"] and ready and \
                ready["status"] != "Unknown":
            w.stop()
            return obj, seen
    raise AssertionError(f"{name} never settled: {seen}")


def conds(obj):
    return {c["type"]: c for c in obj["status"]["conditions"]}


def test_ready_then_second_generation(cluster, api):
    co = client.CustomObjectsApi(api)
    co.create_namespaced_custom_object(G, V, "default", "services", ksvc())
    svc, seen = wait_final(co, "hello", 1)
    assert (1, "Unknown", "RevisionMissing") in seen  # the in-progress status came first
    st = svc["status"]
    assert st["url"] == "http://hello.default.example.com"
    assert st["address"]["url"] == "http://hello.default.svc.cluster.local"
    assert st["latestCreatedRevisionName"] == st["latestReadyRevisionName"] == "hello-00001"
    assert st["traffic"] == [{"latestRevision": True, "percent": 100, "revisionName": "hello-00001"}]
    assert {t: c["status"] for t, c in conds(svc).items()} == {"ConfigurationsReady": "True", "Ready": "True",
                                                                "RoutesReady": "True"}
    rev = cluster.get("revisions", "hello-00001")
    assert rev["metadata"]["labels"]["serving.knative.dev/service"] == "hello"
    assert rev["metadata"]["labels"]["serving.knative.dev/configuration"] == "hello"
    assert rev["metadata"]["labels"]["serving.knative.dev/configurationGeneration"] == "1"
    assert {c["type"]: c["status"] for c in rev["status"]["conditions"]}["Ready"] == "True"
    assert cluster.get("configurations", "hello") and cluster.get("routes", "hello")
    # metadata-only change: no new revision
    co.patch_namespaced_custom_object(G, V, "default", "services", "hello", {"metadata": {"labels": {"x": "y"}}})
    time.sleep(0.15)
    assert [r["metadata"]["name"] for r in cluster.list("revisions")] == ["hello-00001"]
    # new template: revision 00002 takes the traffic
    co.patch_namespaced_custom_object(G, V, "default", "services", "hello", {"spec": {"template": {"spec": {
        "containers": [{"image": "registry.example.com/hello:2"}]}}}})
    svc, _ = wait_final(co, "hello", 2)
    assert svc["status"]["latestReadyRevisionName"] == "hello-00002"
    assert svc["status"]["traffic"] == [{"latestRevision": True, "percent": 100, "revisionName": "hello-00002"}]
    assert sorted(r["metadata"]["name"] for r in cluster.list(
        "revisions", label_selector="serving.knative.dev/service=hello")) == ["hello-00001", "hello-00002"]
    # deleting the Service garbage-collects configuration, route and revisions
    co.delete_namespaced_custom_object(G, V, "default", "services", "hello")
    assert cluster.list("revisions") == [] and cluster.get("configurations", "hello") is None
    assert cluster.get("routes", "hello") is None


def test_failed_revision_keeps_old_one_serving(cluster, api):
    co = client.CustomObjectsApi(api)
    co.create_namespaced_custom_object(G, V, "default", "services", ksvc())
    wait_final(co, "hello", 1)
    cluster.knative.mode = "fail"
    co.patch_namespaced_custom_object(G, V, "default", "services", "hello", {"spec": {"template": {"spec": {
        "containers": [{"image": "registry.example.com/hello:broken"}]}}}})
    svc, _ = wait_final(co, "hello", 2)
    st = svc["status"]
    ready = conds(svc)["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "RevisionFailed"
    assert ready["message"] == 'Revision "hello-00002" failed with message: Container failed with: exit status 1.'
    assert conds(svc)["ConfigurationsReady"]["status"] == "False"
    assert st["latestCreatedRevisionName"] == "hello-00002" and st["latestReadyRevisionName"] == "hello-00001"
    assert st["traffic"] == [{"latestRevision": True, "percent": 100, "revisionName": "hello-00001"}]
    assert st["url"] == "http://hello.default.example.com"
    rev = cluster.get("revisions", "hello-00002")
    rready = next(c for c in rev["status"]["conditions"] if c["type"] == "Ready")
    assert rready["reason"] == "ExitCode1" and rready["message"] == "Container failed with: exit status 1"


def test_container_missing_and_never(cluster, api):
    co = client.CustomObjectsApi(api)
    cluster.knative.mode = "container-missing"
    co.create_namespaced_custom_object(G, V, "default", "services", ksvc("miss", "registry.example.com/nope:1"))
    svc, _ = wait_final(co, "miss", 1)
    ready = conds(svc)["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "RevisionFailed"
    assert 'Unable to fetch image "registry.example.com/nope:1": failed to resolve image to digest' in \
        ready["message"]
    assert conds(svc)["RoutesReady"]["status"] == "False" and "traffic" not in svc["status"]
    rev = cluster.get("revisions", "miss-00001")
    assert next(c for c in rev["status"]["conditions"] if c["type"] == "Ready")["reason"] == "ContainerMissing"
    cluster.knative.mode = "never"
    co.create_namespaced_custom_object(G, V, "default", "services", ksvc("stuck"))
    time.sleep(0.3)
    svc = co.get_namespaced_custom_object(G, V, "default", "services", "stuck")
    assert svc["status"]["observedGeneration"] == 1 and conds(svc)["Ready"]["status"] == "Unknown"
    assert conds(svc)["Ready"]["message"] == 'Configuration "stuck" is waiting for a Revision to become ready.'


def test_traffic_split_and_tags(cluster, api):
    co = client.CustomObjectsApi(api)
    co.create_namespaced_custom_object(G, V, "default", "services", ksvc())
    wait_final(co, "hello", 1)
    co.patch_namespaced_custom_object(G, V, "default", "services", "hello", {"spec": {
        "template": {"spec": {"containers": [{"image": "registry.example.com/hello:2"}]}},
        "traffic": [{"revisionName": "hello-00001", "percent": 90, "latestRevision": False},
                    {"latestRevision": True, "percent": 10, "tag": "canary"}]}})
    svc, _ = wait_final(co, "hello", 2)
    assert svc["status"]["traffic"] == [
        {"latestRevision": False, "percent": 90, "revisionName": "hello-00001"},
        {"tag": "canary", "url": "http://canary-hello.default.example.com", "latestRevision": True,
         "percent": 10, "revisionName": "hello-00002"}]


def test_autoscaling_annotations_are_refused_on_the_service_like_knatives_webhook(cluster, api):
    """knative/serving pkg/apis/serving/metadata_validation.go: ValidateHasNoAutoscalingAnnotation for
    Service and Configuration metadata; the revision template may carry them."""
    import json

    import pytest
    from kubernetes.client.exceptions import ApiException

    co = client.CustomObjectsApi(api)
    bad = ksvc(annotations={"autoscaling.knative.dev/min-scale": "1", "note": "fine"})
    with pytest.raises(ApiException) as e:
        co.create_namespaced_custom_object(G, V, "default", "services", bad)
    assert e.value.status == 400
    assert json.loads(e.value.body)["message"] == (
        'admission webhook "validation.webhook.serving.knative.dev" denied the request: validation failed: '
        'invalid key name "autoscaling.knative.dev/min-scale": metadata.annotations\n'
        'autoscaling annotations must be put under "spec.template.metadata.annotations" to work')
    good = ksvc()
    good["spec"]["template"]["metadata"] = {"annotations": {"autoscaling.knative.dev/min-scale": "1"}}
    co.create_namespaced_custom_object(G, V, "default", "services", good)
    svc, _ = wait_final(co, "hello", 1)
    assert svc["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"] == "1"
