"""Asking the loopback registry (docker-registry on 127.0.0.1:5000, started by scripts/setup) for manifests."""

from __future__ import annotations

import hashlib
import json
import urllib.request

import pytest

from fnctl import registry

LOOPBACK = "127.0.0.1:5000"


def _push_tiny_image() -> str | None:
    """Push a minimal OCI image (an empty config, no layers) with the registry API; its repo@digest."""
    repo = "fnctl-test/registry-probe"
    config = b"{}"
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": config_digest, "size": len(config)},
                           "layers": []}).encode()
    try:
        start = urllib.request.Request(f"http://{LOOPBACK}/v2/{repo}/blobs/uploads/", method="POST", data=b"")
        with urllib.request.urlopen(start, timeout=3) as resp:
            location = resp.headers["Location"]
        if location.startswith("/"):
            location = f"http://{LOOPBACK}{location}"
        joiner = "&" if "?" in location else "?"
        put = urllib.request.Request(f"{location}{joiner}digest={config_digest}", method="PUT", data=config,
                                     headers={"Content-Type": "application/octet-stream"})
        urllib.request.urlopen(put, timeout=3).close()
        put = urllib.request.Request(f"http://{LOOPBACK}/v2/{repo}/manifests/probe", method="PUT", data=manifest,
                                     headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        with urllib.request.urlopen(put, timeout=3) as resp:
            return f"{LOOPBACK}/{repo}@{resp.headers['Docker-Content-Digest']}"
    except OSError:
        return None


def test_split():
    assert registry.split("r.io:5000/ns/fn@sha256:ab") == ("r.io:5000", "ns/fn", "sha256:ab")
    assert registry.split("localhost/fn:v1") == ("localhost", "fn", "v1")
    assert registry.split("busybox:1.36") is None


def test_cluster_internal_names_are_not_asked():
    assert registry.manifest_exists("knative.registry.svc.cluster.local/ns/fn@sha256:" + "0" * 64) is None


def test_an_unreachable_registry_cannot_tell():
    assert registry.manifest_exists("127.0.0.1:9/ns/fn@sha256:" + "0" * 64, insecure=True) is None


def test_the_loopback_registry_answers_present_and_gone():
    image = _push_tiny_image()
    if image is None:
        pytest.skip(f"no registry at {LOOPBACK} (scripts/setup starts one)")
    assert registry.manifest_exists(image, insecure=True) is True
    assert registry.manifest_exists(image.split("@")[0] + "@sha256:" + "0" * 64, insecure=True) is False
