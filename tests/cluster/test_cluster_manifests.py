"""Manifests, dry run and configuration: no cluster involved."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import jsonschema
import pytest
import yaml

from fnctl import app, knative
from fnctl.builders import buildpod
from fnctl.clustertemplates import read_template_source, template_configmap, template_from_configmap
from fnctl.errors import ClusterError, EnvironmentProblem, NotFoundError, TemplateError
from fnctl.kube import config as kconf
from fnctl.kube import errors as kerr
from fnctl.model import DeployRequest
from fnctl.source import ContextFile, make_context
from tests.cluster.conftest import KNATIVE, validate_service
from tests.conftest import Recorder

DIGEST = "sha256:" + "ab" * 32


def full_request(**over) -> DeployRequest:
    values = dict(name="hello", source="unused", template="bash", env={"GREETING": "hi", "B": "2"},
                  env_secrets=["db-creds", "api-keys"], labels={"team": "a"},
                  annotations={"owner": "me"}, concurrency=10, min_scale=1, max_scale=5,
                  concurrency_target=7, registry_secret="regcred")
    values.update(over)
    return DeployRequest(**values)


# -- the Knative Service ------------------------------------------------------

def test_full_service_manifest_validates_against_the_crd_schema():
    m = knative.service_manifest(full_request(), "dev", f"reg/dev/hello@{DIGEST}", template="bash",
                                 source="./fn", context_digest="c" * 64)
    validate_service(m)
    assert m["apiVersion"] == "serving.knative.dev/v1" and m["kind"] == "Service"
    rev = m["spec"]["template"]
    c = rev["spec"]["containers"][0]
    assert c["image"].endswith("@" + DIGEST)
    assert c["ports"] == [{"name": "http1", "containerPort": 8080}]
    assert c["env"] == [{"name": "GREETING", "value": "hi"}, {"name": "B", "value": "2"}]
    assert c["envFrom"] == [{"secretRef": {"name": "db-creds"}}, {"secretRef": {"name": "api-keys"}}]
    assert rev["spec"]["containerConcurrency"] == 10
    assert rev["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    ann = rev["metadata"]["annotations"]
    assert ann["autoscaling.knative.dev/min-scale"] == "1"
    assert ann["autoscaling.knative.dev/max-scale"] == "5"
    assert ann["autoscaling.knative.dev/target"] == "7"
    assert ann["owner"] == "me"
    meta = m["metadata"]
    assert meta["labels"] == {"team": "a", "app.kubernetes.io/managed-by": "fnctl", "fnctl.dev/service": "hello"}
    assert meta["annotations"]["fnctl.dev/template"] == "bash"
    assert meta["annotations"]["fnctl.dev/source"] == "./fn"


def test_minimal_service_manifest_validates_and_leaves_defaults_to_knative():
    m = knative.service_manifest(DeployRequest(name="x", source=".", template="bash"), "default",
                                 f"r/default/x@{DIGEST}", template="bash", source=".")
    validate_service(m)
    spec = m["spec"]["template"]["spec"]
    assert "containerConcurrency" not in spec and "env" not in spec["containers"][0]
    assert "annotations" not in m["spec"]["template"]["metadata"]


def test_memory_and_cpu_are_the_containers_requests_and_limits():
    m = knative.service_manifest(full_request(memory="256Mi", cpu="500m"), "dev", f"reg/dev/hello@{DIGEST}",
                                 template="bash", source="./fn")
    validate_service(m)
    assert m["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"memory": "256Mi", "cpu": "500m"}, "limits": {"memory": "256Mi", "cpu": "500m"}}
    only_memory = knative.service_manifest(full_request(memory="1Gi"), "dev", f"r@{DIGEST}", template="bash",
                                           source=".")
    validate_service(only_memory)
    assert only_memory["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"memory": "1Gi"}, "limits": {"memory": "1Gi"}}
    assert "resources" not in knative.service_manifest(full_request(), "dev", f"r@{DIGEST}", template="bash",
                                                       source=".")["spec"]["template"]["spec"]["containers"][0]


def test_the_strict_schema_catches_a_misspelt_field():
    m = knative.service_manifest(DeployRequest(name="x", source=".", template="bash"), "default",
                                 "r/x", template="bash", source=".")
    m["spec"]["template"]["spec"]["containerconcurrency"] = 3
    with pytest.raises(jsonschema.ValidationError):
        validate_service(m)


def test_autoscaling_settings_are_documented_by_the_autoscaler_configmap():
    # config-autoscaler documents the cluster-wide defaults our per-revision annotations override.
    data = yaml.safe_load((KNATIVE / "configmaps" / "autoscaler.yaml").read_text())["data"]["_example"]
    for key in ("min-scale", "max-scale", "container-concurrency-target-default"):
        assert key in data
    assert knative.MIN_SCALE.split("/")[1] == "min-scale"
    assert knative.MAX_SCALE.split("/")[1] == "max-scale"


def test_update_keeps_resource_version_and_drops_status_and_traffic():
    current = {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
               "metadata": {"name": "x", "resourceVersion": "42", "generation": 3,
                            "labels": {"other": "keep"}, "annotations": {"kept": "y"}},
               "spec": {"template": {"spec": {"containers": [{"image": "old"}]}},
                        "traffic": [{"revisionName": "x-00001", "percent": 100}]},
               "status": {"observedGeneration": 3}}
    new = knative.service_manifest(DeployRequest(name="x", source=".", template="bash"), "d", "new",
                                   template="bash", source=".")
    body = knative.updated(current, new)
    assert body["metadata"]["resourceVersion"] == "42"
    assert "status" not in body and "traffic" not in body["spec"]
    assert body["metadata"]["labels"]["other"] == "keep"
    assert body["metadata"]["annotations"]["kept"] == "y"
    assert body["spec"]["template"]["spec"]["containers"][0]["image"] == "new"


def test_failed_service_names_reason_and_the_revision_that_keeps_serving():
    obj = {"metadata": {"name": "x", "namespace": "d", "generation": 2},
           "status": {"observedGeneration": 2, "latestCreatedRevisionName": "x-00002",
                      "latestReadyRevisionName": "x-00001",
                      "conditions": [{"type": "Ready", "status": "False", "reason": "RevisionFailed",
                                      "message": "Revision x-00002 failed with message: exit 1"}]}}
    err = knative.failed(obj)
    assert "RevisionFailed" in err.message and "x-00001 keeps serving" in err.message
    info = knative.service_info(obj)
    assert info.ready is False and info.revision == "x-00001" and info.reason == "RevisionFailed"


# -- the kaniko build pod --------------------------------------------------------

def small_spec(**over) -> buildpod.BuildSpec:
    ctx = make_context([ContextFile("Dockerfile", b"FROM scratch\n"), ContextFile("src/a", b"a")])
    values = dict(service="hello", destination="reg.local/dev/hello:" + ctx.short_digest, context=ctx,
                  build_args={"HANDLER": "function.handler", "RUNTIME_IMAGE": f"reg.local/rt@{DIGEST}"})
    values.update(over)
    return buildpod.BuildSpec(**values)


def test_kaniko_pod_for_a_small_context_mounts_the_configmap():
    spec = small_spec()
    opts = buildpod.BuildOptions(registry_host="reg.local", registry_secret="regcred")
    pod = buildpod.pod_manifest(spec, "dev", opts)
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "fnctl", "fnctl.dev/service": "hello",
                                         "fnctl.dev/build": spec.build_id, "fnctl.dev/build-kind": "function"}
    assert "initContainers" not in pod["spec"]
    c = pod["spec"]["containers"][0]
    assert c["image"] == buildpod.DEFAULT_KANIKO_IMAGE == "gcr.io/kaniko-project/executor:v1.24.0"
    args = c["args"]
    pairs = dict(zip(args, args[1:], strict=False))
    assert pairs["--dockerfile"] == "Dockerfile"
    assert pairs["--context"] == "tar:///workspace-context/context.tar.gz"
    assert pairs["--destination"] == spec.destination
    assert pairs["--digest-file"] == "/dev/termination-log"
    assert "--cache=true" in args and pairs["--cache-repo"] == "reg.local/fnctl-cache"
    assert [args[i + 1] for i, a in enumerate(args) if a == "--build-arg"] == [
        "HANDLER=function.handler", f"RUNTIME_IMAGE=reg.local/rt@{DIGEST}"]
    assert not {"--insecure", "--skip-tls-verify", "--insecure-pull"} & set(args)
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["context"]["configMap"]["name"] == spec.configmap_name
    assert volumes["docker-config"]["secret"] == {"secretName": "regcred", "items": [
        {"key": ".dockerconfigjson", "path": "config.json"}]}
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts == {"context": "/workspace-context", "docker-config": "/kaniko/.docker"}
    cm = buildpod.configmap_manifest(spec, "dev", owner={"metadata": {"name": spec.pod_name, "uid": "u-1"}})
    assert base64.b64decode(cm["binaryData"]["context.tar.gz"]) == spec.context.data
    assert cm["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Pod", "name": spec.pod_name,
                                                  "uid": "u-1"}]
    assert len(spec.pod_name) <= 63


def test_insecure_registry_and_custom_kaniko_image():
    opts = buildpod.BuildOptions(insecure_registry=True, kaniko_image="cgr.dev/chainguard/kaniko:latest")
    pod = buildpod.pod_manifest(small_spec(), "dev", opts)
    c = pod["spec"]["containers"][0]
    assert c["image"] == "cgr.dev/chainguard/kaniko:latest"
    assert {"--insecure", "--skip-tls-verify", "--insecure-pull"} <= set(c["args"])


def test_large_context_uses_an_upload_init_container_and_an_empty_dir():
    big = make_context([ContextFile("Dockerfile", b"FROM scratch\n"), ContextFile("blob", os.urandom(1024 * 1024))])
    spec = small_spec(context=big)
    assert not spec.small
    pod = buildpod.pod_manifest(spec, "dev", buildpod.BuildOptions(init_image="busybox:1.37"))
    init = pod["spec"]["initContainers"][0]
    assert init["name"] == "upload" and init["image"] == "busybox:1.37"
    assert buildpod.DONE_MARKER in init["command"][-1]
    assert pod["spec"]["volumes"][0] == {"name": "context", "emptyDir": {}}
    with tarfile.open(fileobj=io.BytesIO(buildpod.upload_tar(big))) as tar:
        assert tar.getnames() == ["context.tar.gz"]        # the done marker comes after tar, outside it
        assert tar.extractfile("context.tar.gz").read() == big.data


def test_pod_problems_are_recognised():
    opts = buildpod.BuildOptions()
    unsched = {"status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/3 nodes are available: 3 Insufficient memory."}]}}
    assert "Insufficient memory" in buildpod.pod_problem(unsched, opts)[0]
    pull = {"status": {"containerStatuses": [{"name": "kaniko", "image": "gcr.io/x",
                                              "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}}
    assert "ImagePullBackOff" in buildpod.pod_problem(pull, opts)[0]
    assert buildpod.pod_problem({"status": {"phase": "Pending"}}, opts) is None
    # the kubelet stopped it at activeDeadlineSeconds (the fake kubelet's test shows that status)
    late = {"status": {"phase": "Failed", "reason": "DeadlineExceeded", "containerStatuses": [
        {"name": "kaniko", "state": {"terminated": {"exitCode": 137, "reason": "Error"}}}]}}
    assert "ran longer than its deadline" in buildpod.pod_problem(late, opts)[0]


# -- dry run ---------------------------------------------------------------------------

def dry_run(request: DeployRequest, **where) -> list[dict]:
    """The cluster's dry run: the deploy pipeline over the recording kaniko builder and Knative deployer."""
    return app.dry_run(request, Recorder(), cluster=True, **where)


def test_dry_run_lists_every_object_without_any_cluster(function_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setattr("fnctl.kube.client.connect", lambda *a, **k: pytest.fail("dry run connected"))
    objects = dry_run(full_request(source=str(function_dir)), namespace="dev")
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert [k for k, _ in kinds] == ["Pod", "ConfigMap", "ConfigMap", "Pod", "ConfigMap", "Service"]
    assert ("ConfigMap", "fnctl-runtime-images") in kinds
    service = objects[-1]
    validate_service(service)
    assert service["metadata"]["namespace"] == "dev"
    fn_pod = objects[3]
    args = fn_pod["spec"]["containers"][0]["args"]
    assert any(a.startswith("RUNTIME_IMAGE=knative.registry.svc.cluster.local/fnctl-runtime/bash:") for a in args)
    assert service["spec"]["template"]["spec"]["containers"][0]["image"] == \
        args[args.index("--destination") + 1]


def test_build_pods_are_confined_bounded_and_sized(function_dir, monkeypatch, tmp_path):
    """Issue 10: requests and limits from the config file, activeDeadlineSeconds from --timeout, kaniko as root
    with only the capabilities it uses (all in Pod Security's baseline set) and no privilege escalation."""
    from fnctl import config

    cfg = tmp_path / "fnctl.yaml"
    cfg.write_text(yaml.safe_dump({"cluster": {"build-resources": {
        "requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "3Gi"}}}}))
    monkeypatch.setenv("FNCTL_CONFIG", str(cfg))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    config.load.cache_clear()
    try:
        (function_dir / "blob.bin").write_bytes(os.urandom(1000 * 1024))      # an upload container as well
        objects = dry_run(full_request(source=str(function_dir), timeout=90.5), namespace="dev")
    finally:
        config.load.cache_clear()
    pods = [o for o in objects if o["kind"] == "Pod"]
    assert len(pods) == 2
    for pod in pods:
        spec = pod["spec"]
        assert spec["activeDeadlineSeconds"] == 91
        assert spec["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
        (kaniko_c,) = spec["containers"]
        assert kaniko_c["image"] == "gcr.io/kaniko-project/executor:v1.24.0"
        assert kaniko_c["resources"] == {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "3Gi"}}
        sc = kaniko_c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
        assert set(sc["capabilities"]["add"]) <= {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL",
                                                  "MKNOD", "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP",
                                                  "SETUID", "SYS_CHROOT"}   # baseline's allowed set
        assert "runAsNonRoot" not in sc and "runAsUser" not in sc            # kaniko must run as root
    (upload,) = pods[-1]["spec"]["initContainers"]
    assert upload["securityContext"]["runAsNonRoot"] is True and upload["securityContext"]["runAsUser"] == 65534
    assert upload["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert upload["resources"]["limits"]["memory"]


def test_default_build_resources_and_a_bad_resources_config(tmp_path, monkeypatch):
    from fnctl import config

    assert config.Config().cluster.build_resources == config.DEFAULT_BUILD_RESOURCES
    cfg = tmp_path / "fnctl.yaml"
    cfg.write_text("cluster: {build-resources: {request: {cpu: 1}}}\n")
    monkeypatch.setenv("FNCTL_CONFIG", str(cfg))
    config.load.cache_clear()
    try:
        with pytest.raises(config.UsageError) as info:
            config.load()
    finally:
        config.load.cache_clear()
    assert "cluster.build-resources" in info.value.message


def test_dry_run_namespace_comes_from_the_kubeconfig_context(function_dir, monkeypatch, tmp_path):
    cfg = tmp_path / "config"
    cfg.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "a",
                                   "contexts": [{"name": "a", "context": {"cluster": "c", "user": "u",
                                                                          "namespace": "team-a"}},
                                                {"name": "b", "context": {"cluster": "c", "user": "u"}}]}))
    monkeypatch.setenv("KUBECONFIG", str(cfg))
    req = DeployRequest(name="hello", source=str(function_dir), template="bash")
    assert dry_run(req)[-1]["metadata"]["namespace"] == "team-a"
    assert dry_run(req, context="b")[-1]["metadata"]["namespace"] == "default"


# -- configuration -----------------------------------------------------------------------

def test_has_cluster_config(monkeypatch, tmp_path):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert not kconf.has_cluster_config()
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text(yaml.safe_dump({"contexts": [{"name": "x", "context": {}}]}))
    assert kconf.has_cluster_config()
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope"))
    assert not kconf.has_cluster_config()
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    assert kconf.has_cluster_config()


def test_importing_the_cluster_target_does_not_import_kubernetes():
    code = ("import sys, fnctl.cluster, fnctl.kube; fnctl.kube.has_cluster_config(); "
            "print('kubernetes' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"


# -- error mapping -------------------------------------------------------------------------

def _status(code, reason, message, details=None):
    import json

    return json.dumps({"kind": "Status", "status": "Failure", "code": code, "reason": reason,
                       "message": message, "details": details or {}}).encode()


def test_error_mapping():
    kw = dict(namespace="dev", server="https://k:6443", context="ctx")
    e = kerr.from_status(403, _status(403, "Forbidden", 'pods is forbidden: User "u" cannot create ...'),
                         verb="create", resource="pods", name="p", **kw)
    assert isinstance(e, ClusterError) and "may not create pods in namespace dev" in e.message
    assert "kubectl auth can-i create pods -n dev" in e.hint
    e = kerr.from_status(401, _status(401, "Unauthorized", "Unauthorized"), verb="get", resource="pods",
                         name=None, **kw)
    assert "401" in e.message and "expired" in e.message and "ctx" in e.message
    e = kerr.from_status(404, _status(404, "NotFound", 'namespaces "dev" not found', {"kind": "namespaces"}),
                         verb="create", resource="pods", name="p", **kw)
    assert isinstance(e, EnvironmentProblem) and "namespace 'dev' does not exist" in e.message
    e = kerr.from_status(404, b"404 page not found", verb="list", resource="services.serving.knative.dev",
                         name=None, **kw)
    assert e.message == kerr.KNATIVE_MISSING
    e = kerr.from_status(404, _status(404, "NotFound", 'services.serving.knative.dev "x" not found'),
                         verb="get", resource="services.serving.knative.dev", name="x", **kw)
    assert isinstance(e, NotFoundError) and "'x'" in e.message
    e = kerr.from_status(422, _status(422, "Invalid", 'Service "x" is invalid: spec: bad'),
                         verb="create", resource="services.serving.knative.dev", name="x", **kw)
    assert "spec: bad" in e.message and e.status == 422


# -- build templates as ConfigMaps ----------------------------------------------------------

def test_template_configmap_round_trip_with_nested_and_binary_files(tmp_path):
    folder = tmp_path / "tpl"
    (folder / "lib").mkdir(parents=True)
    (folder / "template.yaml").write_text(
        "name: team-bash\nruntime: bash\nparameters:\n  - {name: HANDLER, default: f.h}\n"
        "runtimeImage:\n  dockerfile: runtime.Dockerfile\n  parameters: []\ndockerfile: Dockerfile\n")
    (folder / "Dockerfile").write_text("ARG RUNTIME_IMAGE\nFROM ${RUNTIME_IMAGE}\nCOPY src/ /var/task/\n")
    (folder / "runtime.Dockerfile").write_text("FROM debian\nCOPY lib/ /opt/lib/\n")
    (folder / "lib" / "helper.sh").write_text("echo help\n")
    (folder / "lib" / "blob.bin").write_bytes(b"\xff\x00\xfe")
    text, files = read_template_source(str(folder))
    cm = template_configmap(text, files, "dev")
    assert cm["metadata"]["labels"]["fnctl.dev/buildtemplate"] == "team-bash"
    assert cm["metadata"]["name"] == "fnctl-buildtemplate-team-bash"
    assert all("/" not in k for k in [*cm["data"], *cm.get("binaryData", {})])
    t = template_from_configmap(cm, "dev")
    assert t.origin == "cluster:dev" and t.name == "team-bash"
    assert t.runtime_image.files == {"lib/blob.bin": b"\xff\x00\xfe", "lib/helper.sh": b"echo help\n"}
    assert read_template_source(str(folder / "template.yaml")) == (text, files)


def test_template_without_its_dockerfile_is_refused(tmp_path):
    (tmp_path / "template.yaml").write_text("name: broken\ndockerfile: Dockerfile\n")
    text, files = read_template_source(str(tmp_path))
    with pytest.raises(TemplateError):
        template_configmap(text, files, "dev")
