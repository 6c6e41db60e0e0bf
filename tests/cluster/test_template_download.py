"""`fnctl deploy buildtemplate -f URL`: https only, no downgrade on redirect, one deadline in all.

The servers run on 127.0.0.1 with a self-signed certificate that the client trusts through
SSL_CERT_FILE (OpenSSL's own variable, which urllib's default context honours).
"""

from __future__ import annotations

import http.server
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from fnctl import download
from fnctl.errors import UsageError
from tests.conftest import fnctl

pytest.importorskip("tests.fakekube")
pytestmark = pytest.mark.skipif(not shutil.which("openssl"), reason="needs openssl to make a certificate")

TEMPLATE = ("name: fetched\nruntime: fetched\nparameters:\n  - {name: DIRECTORY, default: .}\n"
            "dockerfileInline: |\n  FROM debian:bookworm-slim\n  COPY src/ /app/\n")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


class Handler(http.server.BaseHTTPRequestHandler):
    plain_port = 0

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/template.yaml":
            body = TEMPLATE.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.startswith("/to-"):
            self.send_response(302)
            where = {"/to-http": f"http://127.0.0.1:{self.plain_port}/template.yaml",
                     "/to-https": "/template.yaml"}[self.path]
            self.send_header("Location", where)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/slow":
            body = TEMPLATE.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.flush()
            for byte in body:            # one byte a second: each read is quick, the whole is not
                try:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(1)
        else:
            self.send_error(404)


def _serve(server: http.server.ThreadingHTTPServer):
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


@pytest.fixture
def servers(certificate):
    """(https base URL, plain http base URL); both serve the same paths."""
    cert, key = certificate
    plain = _serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler))
    Handler.plain_port = plain.server_address[1]
    tls = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    tls.socket = context.wrap_socket(tls.socket, server_side=True)
    _serve(tls)
    yield f"https://127.0.0.1:{tls.server_address[1]}", f"http://127.0.0.1:{plain.server_address[1]}"
    for server in (plain, tls):
        server.shutdown()
        server.server_close()


@pytest.fixture
def env(fake, tmp_path, certificate):
    return {"KUBECONFIG": str(tmp_path / "kubeconfig"), "HOME": str(tmp_path), "SSL_CERT_FILE": str(certificate[0])}


def test_https_template_is_stored(fake, env, servers):
    https, _ = servers
    r = fnctl("deploy", "buildtemplate", "-f", f"{https}/template.yaml", env=env)
    assert r.code == 0, r
    assert fake.get("configmaps", "fnctl-buildtemplate-fetched") is not None
    # Through an https redirect too.
    assert fnctl("deploy", "buildtemplate", "-f", f"{https}/to-https", env=env).code == 0


def test_untrusted_certificate_is_refused(fake, env, servers):
    https, _ = servers
    r = fnctl("deploy", "buildtemplate", "-f", f"{https}/template.yaml", env={**env, "SSL_CERT_FILE": "/dev/null"})
    assert r.code == 2, r
    assert "CERTIFICATE_VERIFY_FAILED" in r.err and "SSL_CERT_FILE" in r.err
    assert fake.get("configmaps", "fnctl-buildtemplate-fetched") is None


def test_plain_http_is_refused(fake, env, servers):
    _, plain = servers
    r = fnctl("deploy", "buildtemplate", "-f", f"{plain}/template.yaml", env=env)
    assert r.code == 2, r
    assert "only https" in r.err
    assert fake.get("configmaps", "fnctl-buildtemplate-fetched") is None


def test_redirect_to_http_is_not_followed(fake, env, servers):
    https, _ = servers
    r = fnctl("deploy", "buildtemplate", "-f", f"{https}/to-http", env=env)
    assert r.code == 2, r
    assert "not https" in r.err and "Traceback" not in r.err
    assert fake.get("configmaps", "fnctl-buildtemplate-fetched") is None


def test_a_slow_server_meets_one_deadline_for_the_whole_download(servers, certificate, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    https, _ = servers
    start = time.monotonic()
    with pytest.raises(UsageError, match="took longer than 2s"):
        download.fetch(f"{https}/slow", 1 << 20, deadline=2)
    assert time.monotonic() - start < 4


def test_a_silent_server_meets_the_deadline_too(certificate, monkeypatch):
    """Accepts, then says nothing (not even the TLS handshake)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        start = time.monotonic()
        with pytest.raises(UsageError, match="took longer than 1.5s"):
            download.fetch(f"https://127.0.0.1:{listener.getsockname()[1]}/t.yaml", 1024, deadline=1.5)
        assert time.monotonic() - start < 3
