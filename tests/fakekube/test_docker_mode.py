"""Docker mode: kaniko pods really build and push to 127.0.0.1:5000; Knative revisions really run."""
import json
import subprocess
import time
import urllib.request
import uuid

import pytest
from kubernetes import client

from . import realdocker
from .test_pods import kaniko_pod, make_context, seed_context, wait_phase

_WHY = realdocker.unavailable()


def needs_docker(test):
    return pytest.mark.docker(pytest.mark.skipif(_WHY is not None, reason=f"docker mode: {_WHY}")(test))


BASE = "fnctl-local/debian:bookworm"


@pytest.fixture
def dcluster(cluster):
    cluster.kubelet.mode = "docker"
    cluster.knative.mode = "docker"
    cluster.knative.ready_timeout = 30
    return cluster


def _wait(fn, timeout=60, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = fn()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _containers(*labels):
    args = ["docker", "ps", "-aq"] + [a for label in labels for a in ("--filter", f"label={label}")]
    return subprocess.run(args, capture_output=True, text=True).stdout.split()


def _build(core, cluster, dockerfile: str, repo: str) -> str:
    """Build and push through a kaniko pod; returns repo@sha256:..."""
    name = f"b-{uuid.uuid4().hex[:8]}"
    seed_context(core, name, make_context({"Dockerfile": dockerfile.encode()}))
    dest = f"{realdocker.REGISTRY}/{repo}:1"
    core.create_namespaced_pod("default", kaniko_pod(name, dest=dest))
    pod = wait_phase(core, name, timeout=120)
    log = core.read_namespaced_pod_log(name, "default")
    assert pod.status.phase == "Succeeded", log
    digest = pod.status.container_statuses[0].state.terminated.message
    assert digest.startswith("sha256:") and len(digest) == 71
    assert cluster.pushed_images[name] == f"{realdocker.REGISTRY}/{repo}@{digest}"
    return f"{realdocker.REGISTRY}/{repo}@{digest}"


def _ksvc(name, image):
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"template": {"spec": {"containers": [{"image": image, "env": [{"name": "GREETING",
                                                                                     "value": "hi"}]}]}}}}


def _ready(cluster, name, gen):
    svc = cluster.get("services", name)
    st = (svc or {}).get("status") or {}
    if st.get("observedGeneration") != gen:
        return None
    cond = next((c for c in st.get("conditions") or [] if c["type"] == "Ready"), {})
    return svc if cond.get("status") in ("True", "False") else None


def test_follow_sends_each_line_once_when_lines_came_before(cluster, api):
    core = client.CoreV1Api(api)
    cluster.kubelet.mode = "slow"
    cluster.kubelet.log_lines = ["a", "b"]
    core.create_namespaced_pod("default", {"metadata": {"name": "s"}, "spec": {"containers": [
        {"name": "c", "image": "busybox"}]}})

    def log():
        try:
            return core.read_namespaced_pod_log("s", "default")
        except client.ApiException:  # not started yet
            return ""
    _wait(lambda: "still running (1)" in log(), 10, "log lines")
    resp = core.read_namespaced_pod_log("s", "default", follow=True, _preload_content=False)
    got = b""
    while got.count(b"\n") < 4:
        got += resp.read1(1024) if hasattr(resp, "read1") else resp.read(16)
    resp.release_conn()
    assert got.decode().splitlines()[:4] == ["a", "b", "still running (1)", "still running (2)"]


def test_docker_mode_refuses_a_destination_off_loopback(cluster, api):
    core = client.CoreV1Api(api)
    cluster.kubelet.mode = "docker"
    seed_context(core, "far", make_context({"Dockerfile": f"FROM {BASE}\n".encode()}))
    core.create_namespaced_pod("default", kaniko_pod("far", dest="registry.example.com/fn/x:1"))
    pod = wait_phase(core, "far")
    assert pod.status.phase == "Failed" and pod.status.container_statuses[0].state.terminated.exit_code == 1
    log = core.read_namespaced_pod_log("far", "default")
    assert "fakekube refuses to push registry.example.com/fn/x:1" in log and "127.0.0.1:5000 only" in log


@needs_docker
def test_docker_build_pushes_the_real_digest_and_a_failing_step_fails_with_its_log(dcluster, api):
    core = client.CoreV1Api(api)
    repo = f"fakekube-test/ok-{uuid.uuid4().hex[:8]}"
    ref = _build(core, dcluster, f"FROM {BASE}\nARG WORD\nRUN echo built-$WORD > /word\n", repo)
    req = urllib.request.Request(f"http://{realdocker.REGISTRY}/v2/{repo}/manifests/{ref.split('@')[1]}",
                                 headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200 and resp.headers["Docker-Content-Digest"] == ref.split("@")[1]
    # a failing RUN: exit 1, and the log is the real build output up to the failure
    seed_context(core, "bad", make_context({"Dockerfile": f"FROM {BASE}\nRUN echo boom-output && exit 3\n"
                                            .encode()}))
    core.create_namespaced_pod("default", kaniko_pod("bad", dest=f"{realdocker.REGISTRY}/fakekube-test/bad:1"))
    pod = wait_phase(core, "bad", timeout=120)
    assert pod.status.phase == "Failed" and pod.status.container_statuses[0].state.terminated.exit_code == 1
    log = core.read_namespaced_pod_log("bad", "default")
    assert "Step 2/2 : RUN echo boom-output && exit 3" in log and "\nboom-output\n" in log
    assert "returned a non-zero code: 3" in log and log.rstrip().endswith("docker build exited with status 3")
    assert "bad" not in dcluster.pushed_images


@needs_docker
def test_docker_revisions_run_take_traffic_fail_and_are_removed(dcluster, api):
    core = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)
    tag = uuid.uuid4().hex[:8]
    good = _build(core, dcluster, f'FROM {BASE}\nCMD echo "fnctl-bridge: ready on $PORT ($GREETING $K_REVISION)";'
                                  f" exec sleep infinity\n", f"fakekube-test/good-{tag}")
    bad = _build(core, dcluster, f'FROM {BASE}\nCMD echo "boom in $K_REVISION" >&2; exit 3\n',
                 f"fakekube-test/bad-{tag}")
    custom.create_namespaced_custom_object("serving.knative.dev", "v1", "default", "services", _ksvc("web", good))
    svc = _wait(lambda: _ready(dcluster, "web", 1), 60, "revision 1")
    assert svc["status"]["url"] == "http://web.default.example.com"
    assert {c["type"]: c["status"] for c in svc["status"]["conditions"]}["Ready"] == "True"
    first = dcluster.knative.endpoints[("default", "web")]
    assert first.startswith("http://127.0.0.1:")
    ids = _containers("fakekube=1", f"fakekube.cluster={dcluster.id}", "fakekube.revision=web-00001")
    assert len(ids) == 1
    env = json.loads(subprocess.run(["docker", "inspect", "--format", "{{json .Config.Env}}", ids[0]],
                                    capture_output=True, text=True).stdout)
    port = first.rsplit(":", 1)[1]
    for want in ("GREETING=hi", f"PORT={port}", "FNCTL_LISTEN_HOST=127.0.0.1", "K_SERVICE=web",
                 "K_REVISION=web-00001"):
        assert want in env
    # a revision whose container exits: RevisionFailed with the exit code and the log tail; 00001 keeps serving
    custom.patch_namespaced_custom_object("serving.knative.dev", "v1", "default", "services", "web",
                                          {"spec": {"template": {"spec": {"containers": [{"image": bad}]}}}})
    svc = _wait(lambda: _ready(dcluster, "web", 2), 60, "revision 2")
    ready = next(c for c in svc["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "RevisionFailed"
    assert ready["message"].startswith('Revision "web-00002" failed with message: Container failed with: '
                                       "exit status 3")
    assert "boom in web-00002" in ready["message"]
    rev = dcluster.get("revisions", "web-00002")
    assert next(c for c in rev["status"]["conditions"] if c["type"] == "Ready")["reason"] == "ExitCode3"
    assert svc["status"]["latestReadyRevisionName"] == "web-00001"
    assert svc["status"]["traffic"][0]["revisionName"] == "web-00001"
    assert dcluster.knative.endpoints[("default", "web")] == first
    assert _containers("fakekube.revision=web-00001", f"fakekube.cluster={dcluster.id}") == ids
    assert not _containers("fakekube.revision=web-00002", f"fakekube.cluster={dcluster.id}")
    # a good one again: it takes the traffic and the old container goes
    custom.patch_namespaced_custom_object("serving.knative.dev", "v1", "default", "services", "web",
                                          {"spec": {"template": {"spec": {"containers": [{"image": good,
                                           "env": [{"name": "GREETING", "value": "hello"}]}]}}}})
    svc = _wait(lambda: _ready(dcluster, "web", 3), 60, "revision 3")
    assert svc["status"]["latestReadyRevisionName"] == "web-00003"
    assert dcluster.knative.endpoints[("default", "web")] != first
    assert not _containers("fakekube.revision=web-00001", f"fakekube.cluster={dcluster.id}")
    assert len(_containers("fakekube.revision=web-00003", f"fakekube.cluster={dcluster.id}")) == 1
    # delete: its containers go
    custom.delete_namespaced_custom_object("serving.knative.dev", "v1", "default", "services", "web")
    _wait(lambda: not _containers(f"fakekube.cluster={dcluster.id}", "fakekube.service=web"), 30, "removal")
    assert ("default", "web") not in dcluster.knative.endpoints


@needs_docker
def test_stopping_the_cluster_removes_its_containers():
    from . import FakeCluster

    with FakeCluster() as c:
        c.kubelet.mode = c.knative.mode = "docker"
        core = client.CoreV1Api(c.api_client())
        ref = _build(core, c, f'FROM {BASE}\nCMD echo "fnctl-bridge: ready"; exec sleep infinity\n',
                     f"fakekube-test/stop-{uuid.uuid4().hex[:8]}")
        client.CustomObjectsApi(c.api_client()).create_namespaced_custom_object(
            "serving.knative.dev", "v1", "default", "services", _ksvc("s1", ref))
        _wait(lambda: _ready(c, "s1", 1), 60, "ready")
        assert len(_containers(f"fakekube.cluster={c.id}")) == 1
        cid = c.id
    assert not _containers(f"fakekube.cluster={cid}")


def test_image_map_is_read_from_the_config_file(tmp_path):
    f = tmp_path / "config.yaml"
    f.write_text('images:\n  "debian:bookworm-slim": "fnctl-local/debian:bookworm"\n')
    assert realdocker.image_map(str(f)) == {"debian:bookworm-slim": "fnctl-local/debian:bookworm"}
    assert realdocker.image_map(str(tmp_path / "missing.yaml")) == {}
