"""Issue 11, item 4: builds trust this machine's CA bundle and use its proxy, and neither stays in the image.

This machine reaches PyPI through a TLS-intercepting egress with its own CA (in the system store):
before, pip inside the build failed with CERTIFICATE_VERIFY_FAILED while pip on the host worked.
"""

from __future__ import annotations

import json
import select
import shutil
import socket
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, fnctl, http, needs_docker

pytestmark = [pytest.mark.docker, needs_docker]


def _fresh_source(tmp_path: Path) -> Path:
    """The example with a file of its own: the engine's layer cache cannot answer the pip step."""
    src = tmp_path / "fn"
    shutil.copytree(EXAMPLES / "python-requirements", src)
    (src / "nonce.txt").write_text(uuid.uuid4().hex)
    return src


def _image_of(service: str) -> str:
    out = subprocess.run(["docker", "ps", "--filter", f"label=fnctl.dev/service={service}", "--format",
                          "{{.Image}}"], capture_output=True, text=True, check=True).stdout.split()
    assert out, f"no container of {service}"
    return out[0]


def _kept_in(image: str) -> str:
    """Everything an image tells about its build: history (with the commands) and config."""
    history = subprocess.run(["docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", image],
                             capture_output=True, text=True, check=True).stdout
    inspect = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True, check=True).stdout
    return history + inspect


def test_requirements_from_pypi_install_with_no_extra_flags(service, tmp_path):
    r = fnctl("deploy", "service", service, "-f", str(_fresh_source(tmp_path)), "--build-template",
              "python", "--local", "-o", "json")
    assert r.code == 0, r
    status, body, _ = http(json.loads(r.out)["url"], data=b'{"text": "Hello"}')
    assert status == 200 and json.loads(body) == {"text": "Hello", "six": "1.17.0"}, body
    image = _image_of(service)
    assert "BEGIN CERTIFICATE" not in _kept_in(image)
    config = json.loads(subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True,
                                       check=True).stdout)[0]["Config"]
    assert not [e for e in config["Env"] if e.split("=")[0] in ("SSL_CERT_FILE", "PIP_CERT", "NODE_EXTRA_CA_CERTS")]


def test_a_bundle_without_the_ca_fails_naming_the_host_and_the_way_out(service, tmp_path):
    """Any one public root alone does not sign pypi.org's chain (nor the egress's): the TLS failure is
    reported as such, not as 'fix the function'."""
    system = Path("/etc/ssl/certs/ca-certificates.crt").read_text()
    first = system[:system.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")] + "\n"
    lonely = tmp_path / "one-root.pem"
    lonely.write_text(first)
    r = fnctl("deploy", "service", service, "-f", str(_fresh_source(tmp_path)), "--build-template",
              "python", "--local", "--ca-bundle", str(lonely))
    assert r.code == 5, r
    assert "could not verify the TLS certificate of pypi.org" in r.err, r.err
    assert "--ca-bundle FILE" in r.err and "fix the function" not in r.err


def test_a_ca_bundle_that_is_no_bundle_is_refused_before_anything(service, tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("hello\n")
    r = fnctl("deploy", "service", service, "-f", str(EXAMPLES / "python-requirements"), "--build-template",
              "python", "--local", "--ca-bundle", str(bad))
    assert r.code == 2 and "holds no PEM certificate" in r.err and "Step" not in r.err, r


class TunnelProxy:
    """An HTTP CONNECT proxy on loopback that records where it was asked to connect."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.asked: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            method, target = head.split(b" ", 2)[:2]
            self.asked.append(target.decode())
            if method != b"CONNECT":
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            host, _, port = target.decode().rpartition(":")
            with socket.create_connection((host, int(port)), timeout=30) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                peers = {client: upstream, upstream: client}
                while True:
                    ready, _, _ = select.select(list(peers), [], [], 60)
                    if not ready:
                        return
                    for sock in ready:
                        data = sock.recv(65536)
                        if not data:
                            return
                        peers[sock].sendall(data)

    def close(self) -> None:
        self.server.close()


def test_the_users_proxy_carries_the_builds_downloads_and_stays_out_of_the_image(service, tmp_path):
    src = _fresh_source(tmp_path)
    proxy = TunnelProxy()
    url = f"http://127.0.0.1:{proxy.port}"
    try:
        r = fnctl("deploy", "service", service, "-f", str(src), "--build-template", "python", "--local",
                  "-o", "json", env={"HTTPS_PROXY": url, "https_proxy": url})
    finally:
        proxy.close()
    assert r.code == 0, r
    assert "pypi.org:443" in proxy.asked, proxy.asked
    kept = _kept_in(_image_of(service))
    assert str(proxy.port) not in kept and "HTTPS_PROXY" not in kept


def test_npm_dependencies_install_through_the_egress_with_no_extra_flags(service, tmp_path):
    """node4: npm trusts the machine's CA bundle through NODE_EXTRA_CA_CERTS."""
    src = tmp_path / "fn"
    src.mkdir()
    (src / "package.json").write_text(json.dumps({"name": "fn", "version": "1.0.0",
                                                  "dependencies": {"is-number": "7.0.0"}}))
    (src / "handler.js").write_text("const isNumber = require('is-number');\n"
                                    "exports.handler = async (event) => ({ five: isNumber(5), nonce: '"
                                    + uuid.uuid4().hex + "' });\n")
    r = fnctl("deploy", "service", service, "-f", str(src), "--build-template", "node4", "--local", "-o", "json")
    assert r.code == 0, r
    status, body, _ = http(json.loads(r.out)["url"], data=b"{}")
    assert status == 200 and json.loads(body)["five"] is True, body
    assert "BEGIN CERTIFICATE" not in _kept_in(_image_of(service))
