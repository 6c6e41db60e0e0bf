"""Telling a ready-made image apart from a source, and pinning it by the digest its registry gives."""

from __future__ import annotations

import json

import pytest

from fnctl import registry, validation
from fnctl.errors import UsageError
from tests.conftest import fnctl
from tests.unit.test_registry import _push_tiny_image


@pytest.mark.parametrize("spec", ["gcr.io/google-samples/hello-app:1.0", "127.0.0.1:5000/team/app",
                                  "localhost/app", "nginx:1.25", "team/app:v2",
                                  "r.io/app@sha256:" + "a" * 64])
def test_image_references(spec):
    assert validation.source_or_image(spec, None) == ("", "", spec)


@pytest.mark.parametrize("spec", ["nginx", "team/app", "https://github.com/me/fn.git", "git@github.com:me/fn.git",
                                  "file:///tmp/repo", "Upper/Case:1", "./fn:1"])
def test_not_image_references(spec):
    assert not registry.image_reference(spec)
    with pytest.raises(UsageError):
        validation.source_or_image(spec, None)


def test_an_existing_path_is_a_source_even_when_it_looks_like_an_image(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app:v1").mkdir()
    assert not registry.image_reference("app:v1")
    with pytest.raises(UsageError, match="no --build-template"):
        validation.source_or_image("app:v1", None)
    assert validation.source_or_image("app:v1", "bash") == ("app:v1", "bash", None)


def test_image_flag_forces_and_refuses_a_template():
    assert validation.source_or_image("nginx", None, image=True) == ("", "", "nginx")
    with pytest.raises(UsageError, match="cannot be combined"):
        validation.source_or_image("nginx", "bash", image=True)
    with pytest.raises(UsageError, match="not an image reference"):
        validation.source_or_image("No Such Image", None, image=True)


def test_pinned():
    assert registry.pinned("127.0.0.1:5000/a/b:v1", "sha256:ff") == "127.0.0.1:5000/a/b@sha256:ff"
    assert registry.pinned("r.io/a", "sha256:1") == "r.io/a@sha256:1"


def test_the_loopback_registry_gives_the_digest_of_a_tag():
    image = _push_tiny_image()
    if image is None:
        pytest.skip("no registry at 127.0.0.1:5000 (scripts/setup starts one)")
    repo, digest = image.split("@")
    # A loopback registry is asked over plain HTTP without --insecure-registry, as docker does.
    assert registry.digest(f"{repo}:probe") == (True, digest)
    assert registry.digest(f"{repo}:no-such-tag") == (False, None)


def test_a_cluster_dry_run_runs_the_image_as_its_own_user():
    r = fnctl("deploy", "service", "hello", "-f", "gcr.io/google-samples/hello-app:1.0", "--cluster", "--dry-run",
              "-o", "json", env={"KUBECONFIG": "/nonexistent"})
    assert r.code == 0, r
    (service,) = json.loads(r.out)
    container = service["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "gcr.io/google-samples/hello-app:1.0"
    assert not {"runAsUser", "runAsNonRoot", "runAsGroup"} & set(container["securityContext"])
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert service["metadata"]["annotations"]["fnctl.dev/template"] == "image"


def test_a_registry_that_wants_an_anonymous_token_is_asked_with_one():
    """The Docker token protocol public registries speak: 401 with a Bearer challenge, a token from its
    realm, then the manifest (a fake registry on loopback)."""
    import http.server
    import threading

    digest = "sha256:" + "c" * 64
    seen: list[str] = []

    class Registry(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):          # the token realm
            seen.append(self.path)
            body = b'{"token": "t0k"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_HEAD(self):
            if self.headers.get("Authorization") != "Bearer t0k":
                self.send_response(401)
                self.send_header("WWW-Authenticate", f'Bearer realm="http://127.0.0.1:{port}/token",'
                                                     'service="fake",scope="repository:team/app:pull"')
            elif self.path == "/v2/team/app/manifests/v1":
                self.send_response(200)
                self.send_header("Docker-Content-Digest", digest)
            else:
                self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert registry.digest(f"127.0.0.1:{port}/team/app:v1") == (True, digest)
        assert registry.digest(f"127.0.0.1:{port}/team/app:v2") == (False, None)
    finally:
        server.shutdown()
        server.server_close()
    assert seen[0] == "/token?service=fake&scope=repository%3Ateam%2Fapp%3Apull"
