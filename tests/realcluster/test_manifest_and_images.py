"""Ready-made images and serverless.yaml manifests on the real control plane (scripts/test-cluster)."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from tests.conftest import build_ready_made_image
from tests.manifest_project import drop_include, make_project

pytestmark = pytest.mark.realcluster
LOOPBACK_REGISTRY = "127.0.0.1:5000"


def test_a_ready_made_image_is_pinned_by_digest_and_answers(real_cluster, unique_name, tmp_path):
    tag = f"{LOOPBACK_REGISTRY}/fnctl-test/ready-cluster:{uuid.uuid4().hex[:8]}"
    build_ready_made_image(tmp_path / "img", tag, "ready-made on the cluster")
    try:
        subprocess.run(["docker", "push", tag], check=True, capture_output=True, timeout=300)
        digest = subprocess.run(["docker", "inspect", "--format", "{{index .RepoDigests 0}}", tag], check=True,
                                capture_output=True, text=True).stdout.strip().split("@")[1]
    finally:
        subprocess.run(["docker", "rmi", tag], capture_output=True)
    r = real_cluster.fnctl("deploy", "service", unique_name, "-f", tag, "--cluster", "-o", "json")
    assert r.code == 0, r
    result = json.loads(r.out)
    assert result["built"] is False and result["ready"] is True
    ksvc = real_cluster.get("-n", real_cluster.namespace, "ksvc", unique_name)
    container = ksvc["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"{tag.rsplit(':', 1)[0]}@{digest}"
    status, body, _ = real_cluster.curl(result["url"])
    assert (status, body.decode().strip()) == (200, "ready-made on the cluster")
    assert real_cluster.fnctl("delete", "service", unique_name, "--cluster").code == 0


def test_a_manifest_deploys_prunes_and_deletes(real_cluster, tmp_path):
    service = f"m{uuid.uuid4().hex[:6]}"
    project = make_project(tmp_path, service)
    manifest = str(project / "serverless.yaml")
    r = real_cluster.fnctl("deploy", "-f", manifest, "--cluster", "-o", "json")
    assert r.code == 0, r
    by_function = {f["function"]: f for f in json.loads(r.out)["functions"]}
    assert list(by_function) == ["echo", "landing", "extra"] and all(f["ok"] for f in by_function.values()), r
    ksvc = real_cluster.get("-n", real_cluster.namespace, "ksvc", f"{service}-echo")
    assert ksvc["metadata"]["labels"]["fnctl.dev/manifest-service"] == service

    def answers(function: str) -> str:
        status, body, _ = real_cluster.curl(by_function[function]["url"], b"{}")
        assert status == 200, body
        return body.decode()

    assert answers("echo").strip() == "main {}"
    assert "<h1>Hello, world!</h1>" in answers("landing")
    assert answers("extra").strip() == "included {}"

    drop_include(project)
    r = real_cluster.fnctl("deploy", "-f", manifest, "--cluster")
    assert r.code == 0, r
    assert f"{service}-extra  removed: no longer in {manifest}" in r.out.splitlines()
    gone = real_cluster.kubectl("-n", real_cluster.namespace, "get", "ksvc", f"{service}-extra", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr

    r = real_cluster.fnctl("delete", "-f", manifest, "--cluster")
    assert r.code == 0, r
    assert sorted(r.out.splitlines()) == [f"Service {service}-echo deleted", f"Service {service}-landing deleted"]
    listed = real_cluster.get("-n", real_cluster.namespace, "ksvc", "-l", f"fnctl.dev/manifest-service={service}")
    assert listed["items"] == []
