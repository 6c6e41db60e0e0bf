"""fnctl against the real control plane: the real kube-apiserver (RBAC, PodSecurity admission,
service-account tokens), the real Knative Serving controller, webhook and autoscaler, and kaniko's
real executor building in a pod on the node (scripts/test-cluster, docs/testing.md)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, serve_go_module_proxy

pytestmark = pytest.mark.realcluster


def test_the_servers_are_the_real_ones(real_cluster):
    version = json.loads(real_cluster.kubectl("version", "-o", "json").stdout)["serverVersion"]
    assert version["gitVersion"] == real_cluster.env["FNCTL_CLUSTER_KUBERNETES_VERSION"]
    crd = real_cluster.get("crd", "services.serving.knative.dev")
    assert crd["metadata"]["labels"]["app.kubernetes.io/version"]
    # Knative's own webhook answers: it alone rejects autoscaling annotations on a Service.
    probe = real_cluster.kubectl("-n", "default", "create", "--dry-run=server", "-f", "-", check=False, stdin=(
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: probe, annotations: "
        "{autoscaling.knative.dev/min-scale: '1'}}\nspec: {template: {spec: {containers: [{image: x.invalid/y}]}}}\n"))
    assert probe.returncode != 0
    assert 'admission webhook "validation.webhook.serving.knative.dev" denied the request' in probe.stderr
    assert "autoscaling annotations must be put under" in probe.stderr


def deploy(real_cluster, name: str, src: Path, *extra: str, template: str = "bash"):
    started = time.monotonic()
    r = real_cluster.fnctl("deploy", "service", name, "-f", str(src), "--build-template", template,
                           "--cluster", "-o", "json", *extra)
    return r, time.monotonic() - started


def test_deploy_redeploy_get_describe_delete(real_cluster, unique_name, bash_function):
    name = unique_name
    r, took = deploy(real_cluster, name, bash_function("hello"),
                     "--annotation", "autoscaling.knative.dev/min-scale=1")
    assert r.code == 0, r
    first = json.loads(r.out)
    assert first["ready"] is True and first["revision"] == f"{name}-00001"
    assert first["url"] == f"http://{name}.{real_cluster.namespace}.{real_cluster.env['FNCTL_CLUSTER_DOMAIN']}"
    status, body, _ = real_cluster.curl(first["url"], b'{"a":1}')
    assert status == 200 and body.decode().strip() == 'hello {"a":1}'

    ksvc = real_cluster.get("-n", real_cluster.namespace, "ksvc", name)
    # Knative's webhook refuses autoscaling annotations on the Service itself (bug 3).
    assert not any(k.startswith("autoscaling.knative.dev/") for k in ksvc["metadata"].get("annotations", {}))
    assert ksvc["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"] == "1"
    assert "@sha256:" in ksvc["spec"]["template"]["spec"]["containers"][0]["image"]

    r, _ = deploy(real_cluster, name, bash_function("bonjour"))
    assert r.code == 0, r
    second = json.loads(r.out)
    assert second["revision"] == f"{name}-00002" and second["image"] != first["image"]
    ksvc = real_cluster.get("-n", real_cluster.namespace, "ksvc", name)
    assert ksvc["metadata"]["generation"] == 2
    assert ksvc["spec"]["template"]["spec"]["containers"][0]["image"].split("@")[1] == second["image"].split("@")[1]
    status, body, _ = real_cluster.curl(second["url"], b"x")
    assert status == 200 and body.decode().strip() == "bonjour x"

    listed = json.loads(real_cluster.fnctl("get", "service", "--cluster", "-o", "json").out)
    assert name in [s["name"] for s in listed]
    described = json.loads(real_cluster.fnctl("describe", "service", name, "--cluster", "-o", "json").out)
    assert described["revision"] == f"{name}-00002" and described["ready"] is True
    assert real_cluster.fnctl("describe", "service", name, "--cluster", "-o", "url").out.strip() == second["url"]

    r = real_cluster.fnctl("delete", "service", name, "--cluster")
    assert r.code == 0, r
    gone = real_cluster.kubectl("-n", real_cluster.namespace, "get", "ksvc", name, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    assert real_cluster.fnctl("describe", "service", name, "--cluster").code == 3


def test_large_context_goes_through_exec_with_the_documented_role(real_cluster, unique_name, bash_function):
    src = bash_function("big")
    (src / "blob.bin").write_bytes(os.urandom(1_300_000))     # incompressible: > 900 KiB packed
    r, _ = deploy(real_cluster, unique_name, src)
    assert r.code == 0, r
    assert "into the build pod" in r.err
    status, body, _ = real_cluster.curl(json.loads(r.out)["url"], b"y")
    assert status == 200 and body.decode().strip() == "big y"
    real_cluster.fnctl("delete", "service", unique_name, "--cluster")


def test_a_crashing_revision_fails_fast_with_knatives_reason(real_cluster, unique_name, bash_function):
    src = bash_function("never")
    boot = src / "bootstrap"
    boot.write_text("#!/bin/sh\necho 'cannot start: missing config' >&2\nexit 3\n")
    boot.chmod(0o755)
    r, took = deploy(real_cluster, unique_name, src, "--timeout", "10m")
    assert r.code == 6, r
    assert took < 240, f"reported after {took:.0f}s"
    assert "exit" in r.err.lower() or "CrashLoopBackOff" in r.err, r.err
    real_cluster.fnctl("delete", "service", unique_name, "--cluster")


def test_an_image_the_nodes_cannot_pull_fails_fast(real_cluster, unique_name, bash_function):
    # The node trusts the in-cluster registry by its name only: pushed under another address, the
    # image builds and pushes but the node cannot pull it (docs/cluster.md: what nodes need).
    r, took = deploy(real_cluster, unique_name, bash_function("x"), "--registry-host", "10.244.0.1:80")
    assert r.code == 6, r
    assert took < 300, f"reported after {took:.0f}s"
    assert "ErrImagePull" in r.err or "ImagePullBackOff" in r.err, r.err
    real_cluster.fnctl("delete", "service", unique_name, "--cluster")


def test_build_templates_stored_in_the_namespace(real_cluster, tmp_path):
    tpl = tmp_path / "shout"
    tpl.mkdir()
    (tpl / "template.yaml").write_text(
        "name: shout\nruntime: bash\nparameters:\n  - name: BASE_IMAGE\n    default: debian:bookworm-slim\n"
        "    image: true\ndockerfileInline: |\n  ARG BASE_IMAGE\n  FROM ${BASE_IMAGE}\n")
    r = real_cluster.fnctl("deploy", "buildtemplate", "-f", str(tpl), "--cluster")
    assert r.code == 0, r
    listed = json.loads(real_cluster.fnctl("get", "buildtemplate", "--cluster", "-o", "json").out)
    mine = [t for t in listed if t["name"] == "shout"]
    assert mine and mine[0]["origin"] == f"cluster:{real_cluster.namespace}"
    assert real_cluster.get("-n", real_cluster.namespace, "configmap", "fnctl-buildtemplate-shout")
    assert real_cluster.fnctl("delete", "buildtemplate", "shout", "--cluster").code == 0


@pytest.fixture
def pod_network_go_proxy(real_cluster, tmp_path):
    """A Go module proxy standing in for a company's, on the pod network's gateway, where build pods
    reach it (this machine's egress intercepts TLS, so builds cannot verify proxy.golang.org): the
    module cache download folder of examples/go-lambda's modules, fetched by this machine's go."""
    with serve_go_module_proxy(real_cluster.env["FNCTL_CLUSTER_POD_GATEWAY"], tmp_path / "gomodcache",
                         EXAMPLES / "go-lambda") as url:
        yield url


def test_go_lambda_example(real_cluster, unique_name, pod_network_go_proxy, monkeypatch):
    # The go template takes the user's `go env` (GOPROXY from the environment here), on a cluster too.
    monkeypatch.setenv("GOPROXY", pod_network_go_proxy)
    monkeypatch.setenv("GOFLAGS", "-mod=mod")
    r, _ = deploy(real_cluster, unique_name, EXAMPLES / "go-lambda", template="go")
    assert r.code == 0, r
    first = json.loads(r.out)
    assert first["ready"] is True and first["revision"] == f"{unique_name}-00001"
    status, body, _ = real_cluster.curl(first["url"], b'{"name":"netadmin"}')
    assert status == 200 and json.loads(body) == "Hello netadmin!", body
    r, _ = deploy(real_cluster, unique_name, EXAMPLES / "go-lambda", "--env", "GREETING=hi", template="go")
    assert r.code == 0, r
    second = json.loads(r.out)
    assert second["revision"] == f"{unique_name}-00002" and second["image"] == first["image"]   # no rebuild
    status, body, _ = real_cluster.curl(second["url"], b'{"name":"again"}')
    assert status == 200 and json.loads(body) == "Hello again!", body
    real_cluster.fnctl("delete", "service", unique_name, "--cluster")


def test_a_restricted_namespace_builds_elsewhere_and_runs_the_function(real_cluster, unique_name, bash_function):
    src = bash_function("confined")
    r, _ = deploy(real_cluster, unique_name, src, "-n", "fnctl-restricted")
    assert r.code != 0, r
    assert "Pod Security admission refused the build pod" in r.err
    assert "enforces the 'restricted' level" in r.err and "--build-namespace" in r.err
    assert not real_cluster.get("-n", "fnctl-restricted", "pods")["items"]      # nothing half-made
    r, _ = deploy(real_cluster, unique_name, src, "-n", "fnctl-restricted", "--build-namespace", "fnctl-builds")
    assert r.code == 0, r
    status, body, _ = real_cluster.curl(json.loads(r.out)["url"], b"z")
    assert status == 200 and body.decode().strip() == "confined z"
    (pod,) = real_cluster.get("-n", "fnctl-restricted", "pods", "-l",
                              f"serving.knative.dev/service={unique_name}")["items"]
    user = next(c for c in pod["spec"]["containers"] if c["name"] == "user-container")
    assert user["securityContext"]["runAsNonRoot"] is True
    assert real_cluster.fnctl("delete", "service", unique_name, "--cluster", "-n", "fnctl-restricted").code == 0


def test_requirements_from_pypi_through_this_machines_egress_ca(real_cluster, unique_name, tmp_path):
    """Issue 11, item 4, on kaniko: the build pod reaches PyPI through this machine's TLS-intercepting
    egress and trusts it by the machine's CA bundle (the CA_BUNDLE build secret), with no flag."""
    import shutil
    import uuid

    src = tmp_path / "fn"
    shutil.copytree(EXAMPLES / "python-requirements", src)
    (src / "nonce.txt").write_text(uuid.uuid4().hex)             # no layer cache answers pip's step
    r, _ = deploy(real_cluster, unique_name, src, template="python")
    assert r.code == 0, r
    status, body, _ = real_cluster.curl(json.loads(r.out)["url"], b'{"text": "Hello"}')
    assert status == 200 and json.loads(body) == {"text": "Hello", "six": "1.17.0"}, body
    real_cluster.fnctl("delete", "service", unique_name, "--cluster")


def test_links_inside_the_source_are_links_in_kanikos_image(real_cluster, unique_name, bash_function):
    """Issue 11, item 2, on kaniko: the context's symlinks (a file and a folder) survive kaniko's COPY."""
    src = bash_function("x")
    (src / "lib").mkdir()
    (src / "lib" / "more.txt").write_text("through a folder link\n")
    os.symlink("lib/more.txt", src / "data.txt")
    os.symlink("lib", src / "libs")
    (src / "function.sh").write_text('handler() {\n  cat /var/task/data.txt /var/task/libs/more.txt\n'
                                     '  [ -L /var/task/data.txt ] && [ -L /var/task/libs ] && echo links\n}\n')
    r, _ = deploy(real_cluster, unique_name, src)
    assert r.code == 0, r
    status, body, _ = real_cluster.curl(json.loads(r.out)["url"], b"{}")
    assert status == 200 and body.decode().split() == ["through", "a", "folder", "link"] * 2 + ["links"], body
    real_cluster.fnctl("delete", "service", unique_name, "--cluster")
