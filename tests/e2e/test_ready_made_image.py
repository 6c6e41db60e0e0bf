"""Ready-made images on the local target: `deploy service NAME -f IMAGE` builds nothing and runs the
image's own entrypoint with PORT set; the engine's copy is used, or the image is pulled."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from tests.conftest import build_ready_made_image, fnctl, http, needs_docker

pytestmark = [pytest.mark.docker, needs_docker]
LOOPBACK_REGISTRY = "127.0.0.1:5000"


def _docker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def image_tags():
    made: list[str] = []
    yield made
    for tag in made:
        _docker("rmi", "-f", tag)


def test_an_image_built_outside_fnctl_runs_and_stays_the_users(service, tmp_path, image_tags):
    repo = f"fnctl-test/ready-{uuid.uuid4().hex[:8]}"
    first = build_ready_made_image(tmp_path / "v1", f"{repo}:v1", "first image")
    second = build_ready_made_image(tmp_path / "v2", f"{repo}:v2", "second image")
    image_tags += [first, second]

    r = fnctl("deploy", "service", service, "-f", first, "--local", "-o", "json")
    assert r.code == 0, r
    result = json.loads(r.out)
    assert result["built"] is False and result["template"] == "image" and result["image"] == first
    assert "nothing to build" in r.err and "is on the engine" in r.err
    status, body, _ = http(result["url"] + "/index.html")
    assert (status, body.decode().strip()) == (200, "first image")

    # A redeploy to another tag keeps the URL; the user's first image is not fnctl's to remove.
    r = fnctl("deploy", "service", service, "-f", second, "--local", "-o", "json")
    assert r.code == 0, r
    again = json.loads(r.out)
    assert again["url"] == result["url"] and again["revision"] == f"{service}-00002"
    status, body, _ = http(again["url"] + "/index.html")
    assert (status, body.decode().strip()) == (200, "second image")
    assert _docker("image", "inspect", first).returncode == 0

    r = fnctl("deploy", "service", service, "-f", second, "--local", "-o", "json")
    assert r.code == 0 and json.loads(r.out)["unchanged"] is True, r

    assert fnctl("delete", "service", service, "--local").code == 0
    assert _docker("image", "inspect", second).returncode == 0


def test_an_image_the_engine_lacks_is_pulled(service, tmp_path, image_tags):
    tag = f"{LOOPBACK_REGISTRY}/fnctl-test/ready-pull:{uuid.uuid4().hex[:8]}"
    build_ready_made_image(tmp_path / "img", tag, "pulled image")
    image_tags.append(tag)
    if _docker("push", tag).returncode != 0:
        pytest.skip(f"no registry at {LOOPBACK_REGISTRY} (scripts/setup starts one)")
    assert _docker("rmi", tag).returncode == 0

    r = fnctl("deploy", "service", service, "-f", tag, "--local", "-o", "json")
    assert r.code == 0, r
    assert f"pulling {tag}" in r.err
    status, body, _ = http(json.loads(r.out)["url"] + "/index.html")
    assert (status, body.decode().strip()) == (200, "pulled image")


def test_an_image_that_exists_nowhere_exits_2_and_starts_nothing(service):
    missing = f"{LOOPBACK_REGISTRY}/fnctl-test/never-pushed:{uuid.uuid4().hex[:8]}"
    r = fnctl("deploy", "service", service, "-f", missing, "--local")
    assert r.code == 2, r
    assert f"image {missing} is not on the Docker engine and cannot be pulled" in r.err
    assert fnctl("describe", "service", service, "--local").code == 3
