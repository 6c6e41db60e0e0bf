"""Issue 11 on the cluster target's packers: symlinks (item 2) and the CA bundle and proxies (item 4)."""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import tarfile

import pytest

from fnctl import config, errors
from fnctl.app import cluster_target
from tests.cluster.conftest import BuildSnoop
from tests.cluster.test_cluster_fake import request
from tests.conftest import Recorder

pytest.importorskip("tests.fakekube")


def _function_context(fake) -> dict[str, tarfile.TarInfo]:
    """The members of the function's build context as kaniko received it (ConfigMap or upload)."""
    pod = next(name for name in reversed(list(fake.built_contexts)) if "-rt-" not in name)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(fake.built_contexts[pod]))) as tar:
        return {m.name: m for m in tar.getmembers()}


@pytest.mark.parametrize("large", [False, True], ids=["configmap", "upload"])
def test_links_inside_reach_kaniko_as_links(fake, function_dir, large):
    (function_dir / "lib").mkdir()
    (function_dir / "lib" / "data.txt").write_text("inside\n")
    os.symlink("lib/data.txt", function_dir / "data.txt")
    os.symlink("lib", function_dir / "libs")
    if large:
        (function_dir / "blob.bin").write_bytes(os.urandom(1200 * 1024))
    cluster_target(build_timeout=60).deploy(request(function_dir), Recorder())
    assert bool(fake.uploaded_contexts) == large
    members = _function_context(fake)
    assert members["src/data.txt"].issym() and members["src/data.txt"].linkname == "lib/data.txt"
    assert members["src/libs"].issym() and members["src/libs"].linkname == "lib"


def test_a_link_leading_outside_creates_nothing(fake, function_dir, tmp_path):
    (tmp_path / "outside.txt").write_text("SECRET\n")
    os.symlink("../outside.txt", function_dir / "rel.txt")
    with pytest.raises(errors.SourceError, match=r"rel.txt -> \.\./outside.txt"):
        cluster_target().deploy(request(function_dir), Recorder())
    assert not fake.built_contexts and not fake.list("pods")


@pytest.fixture
def machine(tmp_path, monkeypatch):
    bundle = tmp_path / "machine.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nMIIBcompany\n-----END CERTIFICATE-----\n")
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
    monkeypatch.setenv("no_proxy", ".corp.example,127.0.0.1")      # the fake API server is on loopback
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3128")       # this machine's: meaningless in a pod
    config.load.cache_clear()
    yield bundle
    config.load.cache_clear()


def test_the_machines_ca_bundle_and_proxy_reach_kaniko(fake, tmp_path, machine):
    src = tmp_path / "py"
    src.mkdir()
    (src / "handler.py").write_text("def handler(event, context):\n    return event\n")
    (src / "requirements.txt").write_text("six\n")
    snoop = BuildSnoop(fake)
    cluster_target().deploy(request(src, template="python"), snoop)
    pod, secret = next(v for k, v in snoop.seen.items() if "-rt-" not in k)
    assert base64.b64decode(secret["data"]["CA_BUNDLE"]) == machine.read_bytes()
    args = pod["spec"]["containers"][0]["args"]
    assert "HTTPS_PROXY=http://proxy.corp.example:3128" in args and "no_proxy=.corp.example,127.0.0.1" in args
    assert not [a for a in args if "127.0.0.1:3128" in a]
    assert "MIIBcompany" not in json.dumps(pod)
    assert b"MIIBcompany" not in gzip.decompress(list(fake.built_contexts.values())[-1])
    runtime_pod = next(v for k, v in snoop.seen.items() if "-rt-" in k)[0]          # a new cluster builds it
    assert "HTTPS_PROXY=http://proxy.corp.example:3128" in runtime_pod["spec"]["containers"][0]["args"]
