"""The cluster path end to end with real components where they exist.

The real fnctl CLI deploys to the fake Kubernetes API server (tests.fakekube) in its docker mode: the kaniko
build pods really build (docker build of the context fnctl delivered) and push to the real registry on
127.0.0.1:5000, and each Knative revision really runs as a container on the loopback network. Only the API
server, the kubelet's bookkeeping and the Knative controller are fakes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
import urllib.request
import uuid

import pytest

from tests.conftest import EXAMPLES, fnctl, http
from tests.fakekube import FakeCluster, realdocker

_WHY = realdocker.unavailable()
pytestmark = [pytest.mark.docker,
              pytest.mark.skipif(_WHY is not None, reason=f"needs a Docker engine and the registry on "
                                                          f"{realdocker.REGISTRY}: {_WHY}")]
REGISTRY = realdocker.REGISTRY
MANIFEST_TYPES = ", ".join(["application/vnd.docker.distribution.manifest.v2+json",
                            "application/vnd.oci.image.manifest.v1+json",
                            "application/vnd.docker.distribution.manifest.list.v2+json",
                            "application/vnd.oci.image.index.v1+json"])


@pytest.fixture(scope="module")
def kube(tmp_path_factory):
    """A fake cluster in docker mode, and the environment that points fnctl at it."""
    with FakeCluster(namespace="default", domain="example.com") as cluster:
        cluster.kubelet.mode = "docker"
        cluster.knative.mode = "docker"
        path = tmp_path_factory.mktemp("kube") / "kubeconfig"
        cluster.write_kubeconfig(path, context="fake")
        cluster.env = {"KUBECONFIG": str(path)}
        yield cluster
    assert not _containers(f"fakekube.cluster={cluster.id}"), "containers left after the cluster stopped"


def deploy(kube, name, src):
    started = time.monotonic()
    r = fnctl("deploy", "service", name, "-f", str(src), "--build-template", "bash", "--cluster",
              "--registry-host", REGISTRY, "--insecure-registry", "-o", "json", env=kube.env, timeout=300)
    print(f"deploy {name}: exit {r.code} in {time.monotonic() - started:.1f}s")
    assert r.code == 0, r
    return json.loads(r.out), r.err


def build_pods(kube, name):
    """(function build pods, runtime build pods) of a service, in the order they ran."""
    pods = [p for p in kube.built_contexts if p.startswith(f"fnctl-build-{name}-")]
    return [p for p in pods if "-rt-" not in p], [p for p in pods if "-rt-" in p]


def runtime_pods(kube):
    return [p for p in kube.built_contexts if "-rt-" in p]


def registry_manifest(image):
    repo, digest = image.split("@")
    path = repo[len(REGISTRY) + 1:]
    req = urllib.request.Request(f"http://{REGISTRY}/v2/{path}/manifests/{digest}", method="GET",
                                 headers={"Accept": MANIFEST_TYPES})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, resp.headers.get("Docker-Content-Digest")


def _containers(*labels):
    args = ["docker", "ps", "-aq"] + [a for label in labels for a in ("--filter", f"label={label}")]
    return subprocess.run(args, capture_output=True, text=True).stdout.split()


def context_files(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_deploy_curl_edit_redeploy_delete(kube, tmp_path):
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    src = tmp_path / "fn"
    shutil.copytree(EXAMPLES / "bash-echo", src)
    runtimes_before = len(runtime_pods(kube))

    result, log = deploy(kube, name, src)
    assert result["revision"] == f"{name}-00001" and result["ready"] is True
    assert result["url"] == f"http://{name}.default.example.com"
    # the kaniko pod really built what fnctl delivered, and pushed it
    [pod], _ = build_pods(kube, name)
    files = context_files(kube.built_contexts[pod])
    assert files["src/function.sh"] == (src / "function.sh").read_bytes() and "Dockerfile" in files
    pushed = kube.pushed_images[pod]
    assert pushed.startswith(f"{REGISTRY}/default/{name}@sha256:")
    assert registry_manifest(pushed) == (200, pushed.split("@")[1])
    # the Service runs exactly that image, by digest
    ksvc = kube.get("services", name)
    assert ksvc["spec"]["template"]["spec"]["containers"][0]["image"] == pushed == result["image"]
    assert ksvc["status"]["url"] == result["url"]
    # fnctl showed the real build log (docker's classic builder steps, the push with its digest)
    assert "Step 1/" in log and "Successfully built" in log
    assert f"Pushed {pushed}" in log
    endpoint = kube.knative.endpoints[("default", name)]
    status, body, _ = http(endpoint, b'{"text":"netadmin"}')
    assert status == 200 and body.decode().strip() == "Echoing request: '{\"text\":\"netadmin\"}'"
    assert len(runtime_pods(kube)) <= runtimes_before + 1

    # edit and redeploy: generation 2, revision 00002, the new answer, only the function rebuilt
    runtimes = len(runtime_pods(kube))
    fn = src / "function.sh"
    fn.write_text(fn.read_text().replace("Echoing request:", "Echo v2:"))
    result2, _ = deploy(kube, name, src)
    assert result2["revision"] == f"{name}-00002" and result2["ready"] is True
    assert result2["url"] == result["url"] and result2["image"] != result["image"]
    ksvc = kube.get("services", name)
    assert ksvc["metadata"]["generation"] == 2
    assert ksvc["status"]["latestReadyRevisionName"] == f"{name}-00002"
    fn_pods, _ = build_pods(kube, name)
    assert len(fn_pods) == 2 and len(runtime_pods(kube)) == runtimes, "the runtime image was rebuilt"
    assert registry_manifest(kube.pushed_images[fn_pods[1]]) == (200, result2["image"].split("@")[1])
    endpoint2 = kube.knative.endpoints[("default", name)]
    assert endpoint2 != endpoint
    status, body, _ = http(endpoint2, b'{"text":"netadmin"}')
    assert status == 200 and body.decode().strip() == "Echo v2: '{\"text\":\"netadmin\"}'"
    # the old revision's container was stopped once the new one was ready
    assert not _containers(f"fakekube.cluster={kube.id}", f"fakekube.revision={name}-00001")
    assert len(_containers(f"fakekube.cluster={kube.id}", f"fakekube.revision={name}-00002")) == 1

    # delete: the Service's container goes too
    r = fnctl("delete", "service", name, "--cluster", env=kube.env)
    assert r.code == 0, r
    end = time.monotonic() + 30
    while _containers(f"fakekube.cluster={kube.id}", f"fakekube.service={name}") and time.monotonic() < end:
        time.sleep(0.2)
    assert not _containers(f"fakekube.cluster={kube.id}", f"fakekube.service={name}")


def test_large_context_is_uploaded_over_exec_and_serves(kube, tmp_path):
    name = f"e2e-big-{uuid.uuid4().hex[:8]}"
    src = tmp_path / "big"
    src.mkdir()
    blob = os.urandom(1024 * 1024)              # incompressible: the gzip context stays > 900 KiB
    (src / "blob.bin").write_bytes(blob)
    (src / "function.sh").write_text('function handler () {\n'
                                     '  echo "blob $(sha256sum /var/task/blob.bin | cut -d" " -f1)"\n'
                                     '}\n')
    result, log = deploy(kube, name, src)
    assert result["revision"] == f"{name}-00001" and result["ready"] is True
    [pod], _ = build_pods(kube, name)
    assert len(kube.built_contexts[pod]) > 900 * 1024
    assert pod in kube.uploaded_contexts, "the context did not travel over exec"
    assert "into the build pod" in log
    assert context_files(kube.built_contexts[pod])["src/blob.bin"] == blob
    assert registry_manifest(kube.pushed_images[pod]) == (200, result["image"].split("@")[1])
    status, body, _ = http(kube.knative.endpoints[("default", name)], b"{}")
    assert status == 200 and body.decode().strip() == f"blob {hashlib.sha256(blob).hexdigest()}"
