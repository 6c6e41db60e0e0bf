"""Fake kubelet + kaniko: pod lifecycle, modes, logs (follow), exec upload through kubernetes.stream."""
import base64
import hashlib
import io
import json
import tarfile
import threading
import time

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

DOCKERFILE = b"""FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
CMD ["python", "main.py"]
"""


def make_context(files=None, gz=True) -> bytes:
    files = files if files is not None else {"Dockerfile": DOCKERFILE, "main.py": b"print('hi')\n",
                                             "requirements.txt": b""}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def kaniko_pod(name, context="tar:///workspace/context.tar.gz", volume=None, init=None, dockerfile="Dockerfile",
               dest="registry.example.com/fn/hello:1"):
    volume = volume or {"name": "workspace", "configMap": {"name": f"{name}-ctx",
                                                           "items": [{"key": "context.tar.gz",
                                                                      "path": "context.tar.gz"}]}}
    spec = {"restartPolicy": "Never",
            "containers": [{"name": "kaniko", "image": "gcr.io/kaniko-project/executor:v1.24.0",
                            "args": [f"--dockerfile={dockerfile}", f"--context={context}",
                                     f"--destination={dest}", "--digest-file=/dev/termination-log"],
                            "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}]}],
            "volumes": [volume]}
    if init:
        spec["initContainers"] = [init]
    return {"metadata": {"name": name, "labels": {"app": "fnctl-build"}}, "spec": spec}


def wait_phase(core, name, phases=("Succeeded", "Failed"), timeout=5):
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_pod, "default", field_selector=f"metadata.name={name}",
                       timeout_seconds=timeout):
        if ev["object"].status.phase in phases:
            w.stop()
            return ev["object"]
    raise AssertionError(f"pod {name} never reached {phases}")


def seed_context(core, name, data):
    core.create_namespaced_config_map("default", {"metadata": {"name": f"{name}-ctx"},
                                                  "binaryData": {"context.tar.gz": base64.b64encode(data).decode()}})


def test_kaniko_from_configmap_succeeds_with_digest_and_logs(cluster, api):
    core = client.CoreV1Api(api)
    ctx = make_context()
    seed_context(core, "build1", ctx)
    core.create_namespaced_pod("default", kaniko_pod("build1"))
    pod = wait_phase(core, "build1")
    assert pod.status.phase == "Succeeded"
    term = pod.status.container_statuses[0].state.terminated
    dest = "registry.example.com/fn/hello:1"
    digest = "sha256:" + hashlib.sha256(ctx + dest.encode()).hexdigest()
    assert term.exit_code == 0 and term.reason == "Completed" and term.message == digest
    assert term.started_at and term.finished_at
    assert cluster.built_contexts["build1"] == ctx
    conds = {c.type: c.status for c in pod.status.conditions}
    assert conds["PodScheduled"] == "True" and conds["Initialized"] == "True" and conds["Ready"] == "False"
    log = core.read_namespaced_pod_log("build1", "default", container="kaniko")
    assert "INFO[0000] Retrieving image manifest python:3.11-slim" in log
    assert "RUN pip install -r requirements.txt" in log and "COPY . ." in log
    assert f"Pushing image to {dest}" in log and f"Pushed registry.example.com/fn/hello@{digest}" in log
    assert core.read_namespaced_pod_log("build1", "default", tail_lines=1).strip().endswith(digest)


def test_pod_status_transitions_are_watch_events(cluster, api):
    core = client.CoreV1Api(api)
    cluster.kubelet.run_seconds = 0.2
    phases = []
    seed_context(core, "b2", make_context())

    def create():
        time.sleep(0.1)
        core.create_namespaced_pod("default", kaniko_pod("b2"))
    threading.Thread(target=create).start()
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_pod, "default", label_selector="app=fnctl-build", timeout_seconds=5):
        st = ev["object"].status
        cs = (st.container_statuses or [None])[0]
        state = None
        if cs is not None:
            state = "waiting" if cs.state.waiting else "running" if cs.state.running else "terminated"
        phases.append((ev["type"], st.phase, state))
        if st.phase in ("Succeeded", "Failed"):
            w.stop()
    assert phases[0][0] == "ADDED" and phases[0][1] == "Pending"
    assert ("MODIFIED", "Pending", "waiting") in phases
    assert ("MODIFIED", "Running", "running") in phases
    assert phases[-1] == ("MODIFIED", "Succeeded", "terminated")


@pytest.mark.parametrize("mode,reason,code", [("fail", "Error", 1), ("oom", "OOMKilled", 137)])
def test_kaniko_failure_modes(cluster, api, mode, reason, code):
    core = client.CoreV1Api(api)
    cluster.kubelet.mode = mode
    seed_context(core, "bf", make_context())
    core.create_namespaced_pod("default", kaniko_pod("bf"))
    pod = wait_phase(core, "bf")
    term = pod.status.container_statuses[0].state.terminated
    assert pod.status.phase == "Failed" and term.reason == reason and term.exit_code == code
    log = core.read_namespaced_pod_log("bf", "default")
    if mode == "fail":
        assert log.strip().endswith("error building image: error building stage: failed to execute command: "
                                    "waiting for process to exit: exit status 1")


def test_missing_dockerfile_and_missing_configmap(cluster, api):
    core = client.CoreV1Api(api)
    seed_context(core, "nodf", make_context({"main.py": b"x"}))
    core.create_namespaced_pod("default", kaniko_pod("nodf"))
    pod = wait_phase(core, "nodf")
    assert pod.status.phase == "Failed"
    assert "error resolving dockerfile path" in core.read_namespaced_pod_log("nodf", "default")
    # ConfigMap absent: like Kubernetes, the pod never starts (FailedMount) and logs are not available
    core.create_namespaced_pod("default", kaniko_pod("nocm"))
    time.sleep(0.3)
    pod = core.read_namespaced_pod("nocm", "default")
    assert pod.status.phase == "Pending"
    assert pod.status.container_statuses[0].state.waiting.reason == "ContainerCreating"
    with pytest.raises(ApiException) as e:
        core.read_namespaced_pod_log("nocm", "default", container="kaniko")
    assert e.value.status == 400 and json.loads(e.value.body)["message"] == \
        'container "kaniko" in pod "nocm" is waiting to start: ContainerCreating'
    evs = core.list_namespaced_event("default", field_selector="involvedObject.name=nocm").items
    assert any(ev.reason == "FailedMount" and 'configmap "nocm-ctx" not found' in ev.message for ev in evs)
    # the kubelet retries the mount: once the ConfigMap exists the pod starts (fnctl creates the pod first)
    seed_context(core, "nocm", make_context())
    assert wait_phase(core, "nocm").status.phase == "Succeeded"


def test_image_pull_and_unschedulable(cluster, api):
    core = client.CoreV1Api(api)
    cluster.kubelet.mode = "image-pull"
    seed_context(core, "ip", make_context())
    core.create_namespaced_pod("default", kaniko_pod("ip"))
    deadline = time.time() + 3
    while time.time() < deadline:
        cs = core.read_namespaced_pod("ip", "default").status.container_statuses
        if cs and cs[0].state.waiting and cs[0].state.waiting.reason == "ImagePullBackOff":
            break
        time.sleep(0.05)
    w = cs[0].state.waiting
    assert w.reason == "ImagePullBackOff" and w.message == \
        'Back-off pulling image "gcr.io/kaniko-project/executor:v1.24.0"'
    cluster.kubelet.mode = "unschedulable"
    core.create_namespaced_pod("default", kaniko_pod("us"))
    time.sleep(0.2)
    pod = core.read_namespaced_pod("us", "default")
    sched = next(c for c in pod.status.conditions if c.type == "PodScheduled")
    assert pod.status.phase == "Pending" and sched.status == "False" and sched.reason == "Unschedulable"
    assert sched.message == "0/3 nodes are available: 3 Insufficient memory."


def test_follow_logs_stream_until_termination(cluster, api):
    core = client.CoreV1Api(api)
    cluster.kubelet.run_seconds = 0.5
    seed_context(core, "fl", make_context())
    core.create_namespaced_pod("default", kaniko_pod("fl"))
    deadline = time.time() + 3
    while True:
        try:
            resp = core.read_namespaced_pod_log("fl", "default", container="kaniko", follow=True,
                                                _preload_content=False)
            break
        except ApiException as e:
            assert e.status == 400 and "is waiting to start" in json.loads(e.body)["message"]
            assert time.time() < deadline
            time.sleep(0.02)
    t0 = time.monotonic()
    lines = []
    for chunk in resp.stream(1024):
        lines.extend(chunk.decode().splitlines())
    elapsed = time.monotonic() - t0
    assert elapsed > 0.2  # it really streamed while the build ran
    assert lines[-1].startswith("INFO[0004] Pushed ")
    assert core.read_namespaced_pod("fl", "default").status.phase == "Succeeded"
    # Watch(...).stream over follow=True works too
    got = list(watch.Watch().stream(core.read_namespaced_pod_log, name="fl", namespace="default"))
    assert got[-1].startswith("INFO[0004] Pushed ")


def test_exec_upload_releases_init_container(cluster, api):
    core = client.CoreV1Api(api)
    init = {"name": "wait-upload", "image": "busybox:1.36",
            "command": ["sh", "-c", "until [ -f /workspace/.upload-done ]; do sleep 0.2; done"],
            "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}]}
    pod = kaniko_pod("up", context="dir:///workspace", volume={"name": "workspace", "emptyDir": {}}, init=init)
    core.create_namespaced_pod("default", pod)
    deadline = time.time() + 3
    while True:
        st = core.read_namespaced_pod("up", "default").status
        ics = st.init_container_statuses
        if ics and ics[0].state.running:
            break
        assert time.time() < deadline
        time.sleep(0.02)
    assert st.phase == "Pending"
    ctx = make_context(gz=False)
    resp = stream(core.connect_get_namespaced_pod_exec, "up", "default", container="wait-upload",
                  command=["tar", "-xf", "-", "-C", "/workspace"], stdin=True, stdout=True, stderr=True, tty=False,
                  _preload_content=False, binary=True)
    resp.write_stdin(ctx)
    resp.close_channel(0)  # v5: stdin EOF
    resp.run_forever(timeout=3)
    assert resp.returncode == 0
    resp.close()
    assert cluster.uploaded_contexts["up"] == ctx
    time.sleep(0.1)
    assert core.read_namespaced_pod("up", "default").status.init_container_statuses[0].state.running  # still waits
    out = stream(core.connect_get_namespaced_pod_exec, "up", "default", container="wait-upload",
                 command=["sh", "-c", "touch /workspace/.upload-done && ls /workspace"], stdin=False, stdout=True,
                 stderr=True, tty=False)
    assert "Dockerfile" in out and ".upload-done" in out
    pod = wait_phase(core, "up")
    assert pod.status.phase == "Succeeded"
    assert pod.status.init_container_statuses[0].state.terminated.reason == "Completed"
    assert cluster.built_contexts["up"] == ctx


def _tar_of(files: dict) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def _waiting_pod(cluster, core, name):
    init = {"name": "wait-upload", "image": "busybox:1.36",
            "command": ["sh", "-c", "until [ -e /workspace/.done ]; do sleep 1; done"],
            "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}]}
    core.create_namespaced_pod("default", kaniko_pod(name, context="dir:///workspace",
                                                     volume={"name": "workspace", "emptyDir": {}}, init=init))
    deadline = time.time() + 3
    while "running" not in (((cluster.get("pods", name).get("status") or {}).get("initContainerStatuses")
                             or [{}])[0].get("state") or {}):
        assert time.time() < deadline
        time.sleep(0.02)


def _exec_v4(core, name, command, data):
    resp = stream(core.connect_get_namespaced_pod_exec, name, "default", container="wait-upload", command=command,
                  stdin=True, stdout=True, stderr=True, tty=False, _preload_content=False, binary=True)
    assert resp.subprotocol == "v4.channel.k8s.io"
    resp.write_stdin(data)          # v4: no way to close stdin; the command must end by itself
    resp.run_forever(timeout=5)
    assert not resp.is_open(), "the exec did not end"
    status = json.loads(resp.read_channel(3))
    resp.close()
    return status


def test_exec_streams_stdin_and_dies_with_its_container(cluster, api):
    """busybox tar extracts each entry as it arrives and then reads on to the end of its input: with a marker
    inside the tar, the init container ends while tar still waits, and the exec dies with it (137).
    head -c N ends after N bytes, so the marker can be written after it."""
    core = client.CoreV1Api(api)
    cluster.exec_protocols = ["v4.channel.k8s.io"]
    _waiting_pod(cluster, core, "old")
    status = _exec_v4(core, "old", ["tar", "-xf", "-", "-C", "/workspace"],
                      _tar_of({"Dockerfile": b"FROM scratch\n", ".done": b""}))
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "137"}]
    _waiting_pod(cluster, core, "new")
    data = _tar_of({"Dockerfile": b"FROM scratch\n"})
    status = _exec_v4(core, "new", ["sh", "-c", f"head -c {len(data)} | tar -xf - -C /workspace && touch "
                                                "/workspace/.done"], data)
    assert status["status"] == "Success"
    assert wait_phase(core, "new").status.phase == "Succeeded"
    assert cluster.built_contexts["new"] == data


def test_exec_errors_and_failure_status(cluster, api):
    core = client.CoreV1Api(api)
    cluster.kubelet.mode = "slow"
    core.create_namespaced_pod("default", {"metadata": {"name": "sl"}, "spec": {
        "restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}})
    deadline = time.time() + 3
    while core.read_namespaced_pod("sl", "default").status.phase != "Running":
        assert time.time() < deadline
        time.sleep(0.02)
    resp = stream(core.connect_get_namespaced_pod_exec, "sl", "default", command=["sh", "-c", "exit 3"],
                  stdin=False, stdout=True, stderr=True, tty=False, _preload_content=False)
    resp.run_forever(timeout=3)
    assert resp.returncode == 3
    resp.close()
    # v4 protocol (no stdin close signal): upload then close the socket
    cluster.exec_protocols = ["v4.channel.k8s.io"]
    resp = stream(core.connect_get_namespaced_pod_exec, "sl", "default",
                  command=["sh", "-c", "cat > /tmp/context.tar.gz"], stdin=True, stdout=True, stderr=True,
                  tty=False, _preload_content=False, binary=True)
    assert resp.subprotocol == "v4.channel.k8s.io"
    resp.write_stdin(b"payload")
    resp.close()
    deadline = time.time() + 2
    while cluster.uploaded_contexts.get("sl") != b"payload":
        assert time.time() < deadline
        time.sleep(0.02)
    # a pod that is not running: the upgrade is refused
    cluster.kubelet.mode = "unschedulable"
    core.create_namespaced_pod("default", {"metadata": {"name": "pending"}, "spec": {
        "containers": [{"name": "main", "image": "busybox"}]}})
    with pytest.raises(ApiException) as e:
        stream(core.connect_get_namespaced_pod_exec, "pending", "default", command=["true"], stdin=False,
               stdout=True, stderr=True, tty=False)
    assert "400" in str(e.value.reason)
    # deleting a running pod: graceful (deletionTimestamp, MODIFIED) then gone
    core.delete_namespaced_pod("sl", "default")
    deadline = time.time() + 3
    while cluster.get("pods", "sl") is not None:
        assert time.time() < deadline
        time.sleep(0.02)


def test_forbidden_exec_and_service_account_admission(cluster, api):
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod("default", {"metadata": {"name": "sa"}, "spec": {
            "serviceAccountName": "builder", "containers": [{"name": "c", "image": "busybox"}]}})
    assert e.value.status == 403 and 'serviceaccount "builder" not found' in json.loads(e.value.body)["message"]
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod("default", {"metadata": {"name": "bad"}, "spec": {
            "containers": [{"name": "c", "image": "busybox", "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}]}})
    assert e.value.status == 422 and "volumeMounts[0].name: Not found" in json.loads(e.value.body)["message"]
    cluster.forbid("get", "pods/log")
    cluster.kubelet.mode = "succeed"
    core.create_namespaced_pod("default", {"metadata": {"name": "lg"}, "spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}})
    with pytest.raises(ApiException) as e:
        core.read_namespaced_pod_log("lg", "default")
    assert e.value.status == 403 and 'cannot get resource "pods/log"' in json.loads(e.value.body)["message"]


def test_pod_security_enforce_level_of_the_namespace(cluster, api):
    """PodSecurity admission's answer, as k8s.io/pod-security-admission words it (admission/admission.go,
    policy/check_*.go): baseline checks first, then the restricted ones, by check ID."""
    core = client.CoreV1Api(api)
    for name, level in (("strict", "restricted"), ("relaxed", "baseline")):
        core.create_namespace({"metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": level}}})
    root = {"metadata": {"name": "b"}, "spec": {"containers": [{"name": "kaniko", "image": "kaniko"}]}}
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod("strict", root)
    assert e.value.status == 403
    assert json.loads(e.value.body)["message"] == (
        'pods "b" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false '
        '(container "kaniko" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities '
        '(container "kaniko" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or '
        'container "kaniko" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "kaniko" '
        'must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")')
    core.create_namespaced_pod("relaxed", root)                 # baseline lets a root container run
    net_admin = {"metadata": {"name": "n"}, "spec": {"containers": [{"name": "c", "image": "x", "securityContext": {
        "capabilities": {"add": ["NET_ADMIN", "CHOWN"]}}}]}}
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod("relaxed", net_admin)
    assert json.loads(e.value.body)["message"] == (
        'pods "n" is forbidden: violates PodSecurity "baseline:latest": non-default capabilities (container "c" '
        'must not include "NET_ADMIN" in securityContext.capabilities.add)')
    core.create_namespaced_pod("default", net_admin)            # no label: privileged


def test_active_deadline_seconds_stops_the_pod(cluster, api):
    core = client.CoreV1Api(api)
    cluster.kubelet.mode = "slow"
    core.create_namespaced_pod("default", {"metadata": {"name": "late"}, "spec": {
        "restartPolicy": "Never", "activeDeadlineSeconds": 1, "containers": [{"name": "main", "image": "busybox"}]}})
    done = wait_phase(core, "late", timeout=8)
    assert done.status.phase == "Failed" and done.status.reason == "DeadlineExceeded"
    assert done.status.message == "Pod was active on the node longer than the specified deadline"
    assert done.status.container_statuses[0].state.terminated.exit_code == 137
