"""The cluster target (KanikoBuilder + KnativeDeployer) against tests.fakekube: the real kubernetes client."""

from __future__ import annotations

import base64
import gzip
import json
import os
import socket
import threading
import time

import pytest

from fnctl import errors
from fnctl.app import cluster_target, cluster_templates
from fnctl.model import PHASES, DeployRequest
from tests.cluster.conftest import BuildSnoop, validate_service
from tests.conftest import Recorder

pytest.importorskip("tests.fakekube")


def request(src, **over) -> DeployRequest:
    values = dict(name="hello", source=str(src), template="bash", timeout=30)
    values.update(over)
    return DeployRequest(**values)


def posts(cluster, plural: str) -> list:
    return [r for r in cluster.requests if r[0] == "POST" and r[1].endswith("/" + plural)]


def build_leftovers(cluster) -> list[str]:
    pods = [p["metadata"]["name"] for p in cluster.list("pods", label_selector="app.kubernetes.io/managed-by=fnctl")]
    cms = [c["metadata"]["name"] for c in cluster.list("configmaps", label_selector="fnctl.dev/build")]
    return pods + cms


def wait_gone(cluster, seconds=5.0) -> list[str]:
    end = time.monotonic() + seconds
    while build_leftovers(cluster) and time.monotonic() < end:
        time.sleep(0.05)
    return build_leftovers(cluster)


# -- deploy --------------------------------------------------------------------------------

def test_deploy_builds_creates_waits_and_returns_the_url(fake, function_dir):
    rec = Recorder()
    result = cluster_target().deploy(request(function_dir, env={"GREETING": "hi"}, min_scale=1), rec)
    info = result.service
    assert info.url == "http://hello.default.example.com"
    assert info.ready is True and info.revision == "hello-00001" and info.namespace == "default"
    assert info.image.startswith("knative.registry.svc.cluster.local/default/hello@sha256:")
    assert info.env == {"GREETING": "hi"} and info.template == "bash"
    assert result.built and not result.unchanged
    assert rec.phases == list(PHASES) and list(result.phases) == list(PHASES)
    # What kaniko does within its phases: the context's way into the pod, the push.
    assert any("the build context of the image of hello" in n and "in a ConfigMap" in n for n in rec.notes)
    assert any(n.startswith(("kaniko is pushing", "kaniko pushed")) for n in rec.notes)
    assert rec.logs, "kaniko's log is streamed to the reporter"
    ksvc = fake.get("services.serving.knative.dev", "hello")
    validate_service({k: ksvc[k] for k in ("apiVersion", "kind", "spec")}
                     | {"metadata": {k: ksvc["metadata"][k] for k in ("name", "namespace", "labels", "annotations")}})
    assert ksvc["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"] == "1"
    assert ksvc["metadata"]["annotations"]["fnctl.dev/template"] == "bash"
    assert wait_gone(fake) == [], "build pods and ConfigMaps are deleted after success"
    # waiting used a watch, not repeated GETs of the Service
    watches = [r for r in fake.requests if r[2].get("watch") == "true" and "services" in r[1]]
    assert watches


def test_autoscaling_annotations_go_on_the_revision_template_only(fake, function_dir):
    """Knative's webhook refuses autoscaling.knative.dev/* on the Service's own metadata (the fake enforces it
    as knative/serving pkg/apis/serving/metadata_validation.go does); other annotations go on both."""
    ann = {"autoscaling.knative.dev/window": "30s", "autoscaling.knative.dev/metric": "rps", "owner": "me"}
    cluster_target().deploy(request(function_dir, annotations=ann), Recorder())
    ksvc = fake.get("services.serving.knative.dev", "hello")
    template = ksvc["spec"]["template"]["metadata"]["annotations"]
    assert template["autoscaling.knative.dev/window"] == "30s" and template["autoscaling.knative.dev/metric"] == "rps"
    assert not [k for k in ksvc["metadata"]["annotations"] if k.startswith("autoscaling.knative.dev/")]
    assert ksvc["metadata"]["annotations"]["owner"] == template["owner"] == "me"


def test_redeploy_makes_a_new_revision_with_the_same_url(fake, function_dir):
    target = cluster_target()
    first = target.deploy(request(function_dir), Recorder())
    (function_dir / "function.sh").write_text('handler() {\n  echo "v2 $1"\n}\n')
    second = target.deploy(request(function_dir), Recorder())
    assert second.service.url == first.service.url
    assert second.service.revision == "hello-00002" and second.service.image != first.service.image
    ksvc = fake.get("services.serving.knative.dev", "hello")
    assert ksvc["metadata"]["generation"] == 2
    assert len(posts(fake, "services")) == 1, "the second deploy updates, it does not create"
    assert any(r[0] == "PUT" and r[1].endswith("/services/hello") for r in fake.requests)


def test_unchanged_redeploy_builds_nothing(fake, function_dir):
    target = cluster_target()
    target.deploy(request(function_dir), Recorder())
    pods_before = len(posts(fake, "pods"))
    again = target.deploy(request(function_dir), Recorder())
    assert again.unchanged and not again.built
    assert len(posts(fake, "pods")) == pods_before
    assert fake.get("services.serving.knative.dev", "hello")["metadata"]["generation"] == 1


def test_runtime_image_is_built_once(fake, function_dir, tmp_path):
    target = cluster_target()
    target.deploy(request(function_dir), Recorder())
    assert len(posts(fake, "pods")) == 2                  # runtime + function
    marker = fake.get("configmaps", "fnctl-runtime-images")
    (runtime_ref,) = marker["data"].values()
    assert runtime_ref.startswith("knative.registry.svc.cluster.local/fnctl-runtime/bash@sha256:")
    other = tmp_path / "other"
    other.mkdir()
    (other / "function.sh").write_text("handler() { echo other; }\n")
    rec = Recorder()
    target.deploy(request(other, name="other"), rec)
    assert len(posts(fake, "pods")) == 3, "the second deploy runs one kaniko pod only"
    assert any("already built" in d for d in rec.details)
    fn_pod_ctx = list(fake.built_contexts.values())[-1]
    import gzip
    assert runtime_ref.encode() in gzip.decompress(fn_pod_ctx), "the function builds FROM the runtime by digest"


def test_a_runtime_image_gone_from_the_registry_is_built_again_once(fake, function_dir, tmp_path):
    """The registry was wiped after fnctl-runtime-images recorded the runtime image: the function's build fails
    on FROM runtime@sha256 with kaniko's MANIFEST_UNKNOWN, so fnctl builds the runtime image again, once."""
    target = cluster_target()
    target.deploy(request(function_dir), Recorder())
    (old_ref,) = fake.get("configmaps", "fnctl-runtime-images")["data"].values()
    fake.registry_manifests.clear()                       # the registry lost everything
    other = tmp_path / "other"
    other.mkdir()
    (other / "function.sh").write_text("handler() { echo other; }\n")
    rec = Recorder()
    result = target.deploy(request(other, name="other"), rec)
    assert result.service.ready is True
    assert any("is gone from the registry (kaniko: manifest unknown)" in n for n in rec.notes)
    (new_ref,) = fake.get("configmaps", "fnctl-runtime-images")["data"].values()
    assert new_ref in fake.registry_manifests and new_ref.split("@")[0] == old_ref.split("@")[0]
    assert len(posts(fake, "pods")) == 2 + 3              # failed function build, runtime again, function
    assert wait_gone(fake) == []


def test_a_reused_function_image_gone_from_the_registry_is_built_again(fake, function_dir):
    """Asked of the real loopback registry: the fake kaniko's images were never pushed there, as if wiped."""
    from tests.unit.test_registry import LOOPBACK, _push_tiny_image

    if _push_tiny_image() is None:
        pytest.skip(f"no registry at {LOOPBACK} (scripts/setup starts one)")
    target = cluster_target()
    target.deploy(request(function_dir, registry_host=LOOPBACK, insecure_registry=True), Recorder())
    rec = Recorder()
    result = target.deploy(request(function_dir, registry_host=LOOPBACK, insecure_registry=True), rec)
    assert result.built, "the unchanged context's image is gone: it is built again, not reused"
    assert any("function's image" in n and "is gone from the registry" in n for n in rec.notes)
    assert any("recorded runtime image" in n and "is gone from the registry" in n for n in rec.notes)


def test_conflicting_update_is_read_again_and_retried(fake, function_dir, monkeypatch):
    from fnctl.kube.client import Kube

    target = cluster_target()
    target.deploy(request(function_dir), Recorder())
    real = Kube.replace
    calls = []

    def racing_replace(self, res, body):
        if not calls:       # someone else changes the Service between our read and our write
            obj = fake.get("services.serving.knative.dev", "hello")
            obj["metadata"]["labels"]["touched"] = "yes"
            fake.store.update(fake_rt(), "default", "hello", obj)
        calls.append(1)
        return real(self, res, body)

    monkeypatch.setattr(Kube, "replace", racing_replace)
    (function_dir / "function.sh").write_text("handler() { echo v3; }\n")
    result = target.deploy(request(function_dir), Recorder())
    assert len(calls) == 2 and result.service.revision == "hello-00002"
    assert fake.get("services.serving.knative.dev", "hello")["metadata"]["labels"]["touched"] == "yes"


def fake_rt():
    from tests.fakekube import resources

    return resources.resolve("services.serving.knative.dev")


# -- build failures and cleanup ----------------------------------------------------------

def test_failing_build_reports_the_log_tail_and_cleans_up(fake, function_dir):
    fake.kubelet.mode = "fail"
    with pytest.raises(errors.BuildError) as info:
        cluster_target().deploy(request(function_dir), Recorder())
    err = info.value
    assert "kaniko exited with code 1" in err.message
    assert err.details and "error building image" in err.details
    assert len(err.details.splitlines()) <= 20
    assert wait_gone(fake) == []


@pytest.mark.parametrize("mode, expected", [
    ("oom", "ran out of memory (kaniko was OOMKilled)"),
    ("image-pull", "cannot be pulled"),
    ("unschedulable", "cannot be scheduled (Unschedulable)"),
])
def test_build_pod_faults(fake, function_dir, mode, expected):
    fake.kubelet.mode = mode
    start = time.monotonic()
    with pytest.raises(errors.BuildError) as info:
        cluster_target().deploy(request(function_dir), Recorder())
    assert expected in info.value.message
    if mode == "image-pull":
        assert "gcr.io/kaniko-project/executor:v1.24.0" in info.value.message
    if mode == "unschedulable":
        assert "nodes are available" in info.value.message     # the scheduler's own words
    assert time.monotonic() - start < 15
    assert wait_gone(fake) == []


def test_interrupt_mid_build_deletes_pod_and_configmap(fake, function_dir):
    fake.kubelet.run_seconds = 2.0
    with pytest.raises(errors.Interrupted) as info:
        cluster_target().deploy(request(function_dir), Recorder(interrupt_on_log=True))
    assert "deleted" in info.value.message
    assert posts(fake, "pods") and posts(fake, "configmaps")
    assert wait_gone(fake) == []


def test_build_timeout_cleans_up(fake, function_dir):
    fake.kubelet.mode = "slow"
    fake.kubelet.run_seconds = 30
    with pytest.raises(errors.WaitTimeout) as info:
        cluster_target(build_timeout=1.5).deploy(request(function_dir), Recorder())
    assert "did not finish within 1.5s" in info.value.message
    assert wait_gone(fake) == []


# -- contexts ---------------------------------------------------------------------------------

def test_small_context_goes_in_a_configmap(fake, function_dir):
    cluster_target().deploy(request(function_dir), Recorder())
    assert fake.built_contexts and not fake.uploaded_contexts
    assert len(posts(fake, "configmaps")) >= 2       # one per build (plus the runtime marker)


@pytest.mark.parametrize("protocols", [None, ["v4.channel.k8s.io"]], ids=["v5", "v4-no-stdin-close"])
def test_large_context_is_uploaded_into_the_init_container(fake, function_dir, protocols):
    """Over WebSocket v4 (API servers before 1.30) stdin never closes: the upload must end by itself, and the
    init container must not see a done marker while the exec still runs (its end would kill the exec)."""
    if protocols:
        fake.exec_protocols = protocols
    (function_dir / "blob.bin").write_bytes(os.urandom(1200 * 1024))     # incompressible
    cluster_target(build_timeout=60).deploy(request(function_dir), Recorder())
    assert len(fake.uploaded_contexts) == 1
    (pod,) = fake.uploaded_contexts
    assert pod in fake.built_contexts and len(fake.built_contexts[pod]) > 1024 * 1024
    assert any(r[1].endswith(f"/pods/{pod}/exec") for r in fake.requests)
    assert wait_gone(fake) == []


@pytest.mark.parametrize("status", ["none", "no-exit-code"])
def test_an_upload_without_an_exit_status_is_a_failure(fake, function_dir, status):
    fake.exec_status = status
    (function_dir / "blob.bin").write_bytes(os.urandom(1000 * 1024))
    with pytest.raises(errors.BuildError) as info:
        cluster_target(build_timeout=60).deploy(request(function_dir), Recorder())
    assert "the exec ended without an exit status" in info.value.message
    assert wait_gone(fake) == []


# -- readiness ----------------------------------------------------------------------------------

def test_ready_false_fails_fast_and_the_previous_revision_keeps_serving(fake, function_dir):
    target = cluster_target()
    target.deploy(request(function_dir), Recorder())
    fake.knative.mode = "fail"
    (function_dir / "function.sh").write_text("handler() { exit 1; }\n")
    start = time.monotonic()
    with pytest.raises(errors.DeployError) as info:
        target.deploy(request(function_dir, timeout=60), Recorder())
    assert time.monotonic() - start < 15, "fails fast, well before the timeout"
    err = info.value
    assert not isinstance(err, errors.WaitTimeout)
    assert "ExitCode1" in err.message or "RevisionFailed" in err.message
    assert "hello-00002" in err.message and "hello-00001 keeps serving" in err.message
    traffic = fake.get("services.serving.knative.dev", "hello")["status"]["traffic"]
    assert [t["revisionName"] for t in traffic if t.get("percent")] == ["hello-00001"]


@pytest.mark.parametrize("state, says", [
    ("ErrImagePull", "failed to pull and unpack image"),
    ("ImagePullBackOff", "Back-off pulling image"),
    ("CrashLoopBackOff", "exited with code 1: handler not found"),
    ("CreateContainerConfigError", 'secret "missing" not found'),
])
def test_a_revision_pod_that_cannot_start_fails_within_seconds(fake, function_dir, state, says):
    """Knative reports these only after its progress deadline (600 s, fnctl's default --timeout): the wait
    watches the new revision's pods (label serving.knative.dev/revision) and stops on the pod's own state."""
    fake.knative.mode = state
    start = time.monotonic()
    with pytest.raises(errors.DeployError) as info:
        cluster_target().deploy(request(function_dir, timeout=20), Recorder())
    assert time.monotonic() - start < 10
    err = info.value
    assert not isinstance(err, errors.WaitTimeout)
    assert "(revision hello-00001): its pod hello-00001-deployment-" in err.message
    assert f"user-container: {state}: " in err.message and says in err.message
    assert "kubectl describe pod -n default hello-00001-deployment-" in err.hint


def test_without_the_right_to_watch_the_revisions_pods_the_service_still_decides(fake, function_dir, monkeypatch):
    from fnctl.kube.client import Kube

    original = Kube.watch_events

    def refused(self, res, deadline, *, field_selector=None, label_selector=None):
        if label_selector and "serving.knative.dev/revision=" in label_selector:       # a 403 on its first list
            raise errors.ClusterError("forbidden: you may not list pods")
        yield from original(self, res, deadline, field_selector=field_selector, label_selector=label_selector)

    monkeypatch.setattr(Kube, "watch_events", refused)
    assert cluster_target().deploy(request(function_dir), Recorder()).service.ready is True


def test_container_missing_is_reported(fake, function_dir):
    fake.knative.mode = "container-missing"
    with pytest.raises(errors.DeployError) as info:
        cluster_target().deploy(request(function_dir), Recorder())
    assert "ContainerMissing" in info.value.message


def test_wait_timeout_says_what_it_was_waiting_for(fake, function_dir):
    fake.knative.mode = "never"
    start = time.monotonic()
    with pytest.raises(errors.WaitTimeout) as info:
        cluster_target().deploy(request(function_dir, timeout=2), Recorder())
    assert 1.5 < time.monotonic() - start < 20
    assert "was not ready within 2s; still waiting for" in info.value.message


def update_while_watched(fake, change) -> threading.Thread:
    """Once the deploy watches the Service, apply `change` to it as someone else would (retrying
    when a status write lands first); the thread it runs in, started."""
    def update() -> None:
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if any(r[2].get("watch") == "true" and "/services" in r[1] for r in list(fake.requests)):
                obj = fake.get("services.serving.knative.dev", "hello")
                change(obj)
                try:
                    fake.store.update(fake_rt(), "default", "hello", obj)
                    return
                except Exception:      # noqa: BLE001 - a status write came first: read again
                    continue
            time.sleep(0.02)

    thread = threading.Thread(target=update, daemon=True)
    thread.start()
    return thread


def test_dropped_watch_is_resumed_from_the_last_resource_version(fake, function_dir):
    fake.watch_drop_after = 1
    fake.knative.delay = 1.5

    def touch(obj: dict) -> None:      # a label change: one more event, so the first watch drops before Ready
        obj["metadata"]["labels"]["touched"] = "yes"

    toucher = update_while_watched(fake, touch)
    result = cluster_target().deploy(request(function_dir), Recorder())
    toucher.join()
    assert result.service.ready
    watches = [r for r in fake.requests if r[2].get("watch") == "true" and "/services" in r[1]]
    assert len(watches) >= 2
    assert all(w[2].get("resourceVersion") for w in watches)
    gets = [r for r in fake.requests if r[0] == "GET" and r[1].endswith("/services/hello")]
    # No polling: the Service is read by name only before the update (its recorded settings,
    # the image it runs, the update's resourceVersion).
    assert len(gets) <= 3, gets


def test_watch_relists_after_410_gone(fake):
    from fnctl.kube import connect
    from fnctl.kube.client import CONFIGMAPS

    kube = connect()
    kube.create(CONFIGMAPS, {"metadata": {"name": "w"}, "data": {"v": "1"}})
    states = kube.watch(CONFIGMAPS, "w", time.monotonic() + 10)
    assert next(states)["data"] == {"v": "1"}
    kube.merge_patch(CONFIGMAPS, "w", {"data": {"v": "2"}})
    fake.compact()
    assert next(states)["data"] == {"v": "2"}
    states.close()
    lists = [r for r in fake.requests if r[2].get("fieldSelector") == "metadata.name=w" and not r[2].get("watch")]
    assert len(lists) == 2


def test_delete_by_uid_leaves_an_object_made_again_alone(fake):
    from fnctl.errors import ClusterError
    from fnctl.kube import connect
    from fnctl.kube.client import CONFIGMAPS

    kube = connect()
    first = kube.create(CONFIGMAPS, {"metadata": {"name": "d"}, "data": {"v": "1"}})
    kube.delete(CONFIGMAPS, "d")
    kube.create(CONFIGMAPS, {"metadata": {"name": "d"}, "data": {"v": "2"}})
    with pytest.raises(ClusterError) as refused:
        kube.delete(CONFIGMAPS, "d", uid=first["metadata"]["uid"])
    assert refused.value.status == 409
    assert fake.get("configmaps", "d")["data"] == {"v": "2"}
    again = kube.get(CONFIGMAPS, "d")
    assert kube.delete(CONFIGMAPS, "d", uid=again["metadata"]["uid"]) is True
    assert fake.get("configmaps", "d") is None


# -- faults ---------------------------------------------------------------------------------------

def test_unreachable_api_server(tmp_path, monkeypatch, function_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "kc"
    path.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "http://127.0.0.1:{port}"}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
""")
    monkeypatch.setenv("KUBECONFIG", str(path))
    with pytest.raises(errors.EnvironmentProblem) as info:
        cluster_target().list()
    assert f"http://127.0.0.1:{port}" in info.value.message and "connection refused" in info.value.message


def test_rejected_credentials(fake):
    fake.reject_tokens = True
    with pytest.raises(errors.ClusterError) as info:
        cluster_target().list()
    assert "401" in info.value.message and "fake" in info.value.message


def test_forbidden_names_verb_resource_and_namespace(fake, function_dir):
    fake.forbid("create", "pods")
    with pytest.raises(errors.ClusterError) as info:
        cluster_target().deploy(request(function_dir), Recorder())
    assert "may not create pods in namespace default" in info.value.message
    assert "kubectl auth can-i create pods -n default" in info.value.hint


def test_forbidden_list_of_services(fake):
    fake.forbid("list", "services.serving.knative.dev")
    with pytest.raises(errors.ClusterError) as info:
        cluster_target().list()
    assert "may not list services.serving.knative.dev in namespace default" in info.value.message


def test_missing_namespace(fake, function_dir):
    with pytest.raises(errors.EnvironmentProblem) as info:
        cluster_target(namespace="nope").deploy(request(function_dir), Recorder())
    assert "namespace 'nope' does not exist" in info.value.message


def test_knative_not_installed(fake, function_dir):
    fake.knative_installed = False
    for call in (lambda t: t.list(), lambda t: t.deploy(request(function_dir), Recorder())):
        with pytest.raises(errors.EnvironmentProblem) as info:
            call(cluster_target())
        assert info.value.message == ("Knative Serving is not installed in this cluster: "
                                      "serving.knative.dev/v1 is not served")


def test_unknown_context(fake):
    with pytest.raises(errors.UsageError) as info:
        cluster_target(context="nope").list()
    assert "no context 'nope'" in info.value.message and "fake" in info.value.hint


# -- get / describe / delete ---------------------------------------------------------------------

def test_list_describe_and_delete_with_leftovers(fake, function_dir):
    target = cluster_target()
    target.deploy(request(function_dir), Recorder())
    (info,) = target.list()
    assert (info.name, info.ready, info.revision) == ("hello", True, "hello-00001") and info.created
    assert target.describe("hello").url == "http://hello.default.example.com"
    with pytest.raises(errors.NotFoundError):
        target.describe("nothere")
    fake.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "fnctl-build-hello-left-context",
        "labels": {"app.kubernetes.io/managed-by": "fnctl", "fnctl.dev/service": "hello", "fnctl.dev/build": "x"}},
        "data": {"a": "b"}})
    target.delete("hello")
    assert fake.get("services.serving.knative.dev", "hello") is None
    assert fake.get("configmaps", "fnctl-build-hello-left-context") is None
    assert fake.get("configmaps", "fnctl-runtime-images") is not None
    with pytest.raises(errors.NotFoundError):
        target.delete("hello")


# -- build templates -------------------------------------------------------------------------------

TEMPLATE = """name: team-sh
runtime: team shell
parameters:
  - {name: HANDLER, default: function.handler}
dockerfileInline: |
  FROM busybox
  ARG HANDLER
  COPY src/ /var/task/
"""


def test_deploy_get_delete_buildtemplate(fake, tmp_path, function_dir):
    folder = tmp_path / "tpl"
    folder.mkdir()
    (folder / "template.yaml").write_text(TEMPLATE)
    store = cluster_templates()
    stored = store.store(str(folder))
    assert stored.name == "team-sh" and stored.origin == "cluster:default"
    cm = fake.get("configmaps", "fnctl-buildtemplate-team-sh")
    assert cm["metadata"]["labels"]["fnctl.dev/buildtemplate"] == "team-sh"
    assert set(store.list()) == {"team-sh"}
    store.store(str(folder / "template.yaml"))        # again: an update
    result = cluster_target().deploy(request(function_dir, template="team-sh"), Recorder())
    assert result.service.template == "team-sh" and len(posts(fake, "pods")) == 1   # no runtime image
    store.delete("team-sh")
    assert store.list() == {}
    with pytest.raises(errors.NotFoundError):
        store.delete("team-sh")


def _namespace(fake, name, level=None):
    labels = {"pod-security.kubernetes.io/enforce": level} if level else {}
    fake.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})


def test_a_restricted_namespace_refuses_the_build_pod_and_says_so(fake, function_dir):
    """PodSecurity admission, not RBAC: kaniko runs as root, which the restricted level refuses."""
    _namespace(fake, "locked", "restricted")
    with pytest.raises(errors.ClusterError) as info:
        cluster_target(namespace="locked").deploy(request(function_dir), Recorder())
    message, hint = info.value.message, info.value.hint
    assert "Pod Security" in message and "RBAC" not in message
    assert "namespace locked enforces the 'restricted' level" in message
    assert "pod-security.kubernetes.io/enforce=restricted" in message and "runAsNonRoot != true" in message
    assert "baseline" in hint and "--build-namespace" in hint
    assert fake.list("pods", namespace="locked") == []


def test_the_build_pods_pass_pod_security_baseline(fake, function_dir):
    _namespace(fake, "team", "baseline")
    (function_dir / "blob.bin").write_bytes(os.urandom(1000 * 1024))      # with the upload container
    assert cluster_target(namespace="team").deploy(request(function_dir), Recorder()).service.ready is True


def test_build_namespace_takes_the_build_pods_and_the_service_stays(fake, function_dir):
    _namespace(fake, "locked", "restricted")
    _namespace(fake, "builds", "baseline")
    (function_dir / "blob.bin").write_bytes(os.urandom(1000 * 1024))      # the upload exec too
    result = cluster_target(namespace="locked").deploy(request(function_dir, build_namespace="builds"), Recorder())
    assert result.service.ready is True and result.service.namespace == "locked"
    assert result.service.image.startswith("knative.registry.svc.cluster.local/locked/hello@sha256:")
    pod_posts = {r[1] for r in posts(fake, "pods")}
    assert pod_posts == {"/api/v1/namespaces/builds/pods"}
    assert {r[1] for r in posts(fake, "configmaps")} >= {"/api/v1/namespaces/builds/configmaps"}
    assert fake.get("services.serving.knative.dev", "hello", namespace="locked") is not None
    assert any(r[1].startswith("/api/v1/namespaces/builds/pods/") and r[1].endswith("/exec") for r in fake.requests)


@pytest.mark.parametrize("verb", ["get", "create"])
def test_forbidden_exec_for_a_large_context(fake, function_dir, verb):
    """A WebSocket exec is authorized as get on pods/exec (1.29-1.34), and as create as well from 1.35
    (AuthorizePodWebsocketUpgradeCreatePermission, kubernetes pkg/registry/core/pod/rest/subresources.go):
    a Role needs both, and the error says so whichever one is missing."""
    (function_dir / "blob.bin").write_bytes(os.urandom(1000 * 1024))
    fake.forbid(verb, "pods/exec")
    with pytest.raises(errors.ClusterError) as info:
        cluster_target().deploy(request(function_dir), Recorder())
    assert "may not get, create pods/exec in namespace default" in info.value.message
    assert "grants `get, create` on `pods/exec`" in info.value.hint
    assert "kubectl auth can-i get pods/exec -n default" in info.value.hint
    assert "kubectl auth can-i create pods/exec -n default" in info.value.hint
    assert wait_gone(fake) == []


def test_interrupt_while_waiting_is_reported_as_interrupted(fake, function_dir, monkeypatch):
    from fnctl import knative

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(knative, "wait_ready", interrupted)
    with pytest.raises(errors.Interrupted) as info:
        cluster_target().deploy(request(function_dir), Recorder())
    assert "hello" in info.value.message and info.value.exit_code == 130


def test_in_cluster_service_account(tmp_path, monkeypatch):
    from kubernetes.config import incluster_config

    from fnctl.kube import config as kconf
    from fnctl.kube import connect

    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("tok")
    (sa / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    (sa / "namespace").write_text("team-b\n")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(sa / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(sa / "ca.crt"))
    monkeypatch.setattr(kconf, "SERVICE_ACCOUNT_DIR", sa)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    assert kconf.has_cluster_config()
    kube = connect()
    assert kube.server == "https://10.96.0.1:443" and kube.namespace == "team-b" and kube.context is None
    assert connect(namespace="other").namespace == "other"
    assert kconf.context_namespace()[1] == "team-b"


def test_secret_parameters_reach_kaniko_as_a_mounted_secret_never_as_args(fake, tmp_path):
    """Issue 10: a credentialed PIP_INDEX_URL was a kaniko --build-arg (pod spec, ARG, history)."""
    src = tmp_path / "py"
    src.mkdir()
    (src / "handler.py").write_text("def handler(event, context):\n    return event\n")
    token = "tok3n-cluster-secret"
    snoop = BuildSnoop(fake)
    cluster_target().deploy(request(src, template="python",
                                   build_args={"PIP_INDEX_URL": f"https://ci:{token}@pypi.example/simple"}), snoop)
    function_pod, secret = next(v for k, v in snoop.seen.items() if "-rt-" not in k)
    assert token not in json.dumps(function_pod)
    kaniko = function_pod["spec"]["containers"][0]
    assert {"name": "build-secrets", "mountPath": "/run/secrets", "readOnly": True} in kaniko["volumeMounts"]
    assert base64.b64decode(secret["data"]["PIP_INDEX_URL"]).decode().endswith(f"{token}@pypi.example/simple")
    assert secret["metadata"]["ownerReferences"][0]["name"] == function_pod["metadata"]["name"]
    assert token not in gzip.decompress(list(fake.built_contexts.values())[-1]).decode(errors="replace")
    assert fake.list("secrets") == [s for s in fake.list("secrets") if "fnctl-build" not in s["metadata"]["name"]]
    ksvc = fake.get("services.serving.knative.dev", "hello")
    assert token not in json.dumps(ksvc)
