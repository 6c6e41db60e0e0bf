"""Shared helpers: run the real CLI, make git repositories, find free ports."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http import server as http_server
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


class Result:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def __repr__(self) -> str:
        return f"<exit {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}>"


class Recorder:
    """A Reporter that keeps what it was told."""

    def __init__(self, interrupt_on_log: bool = False):
        self.phases: list[str] = []
        self.details: list[str] = []                       # each phase's detail, in order
        self.logs: list[str] = []
        self.notes: list[str] = []
        self.interrupt_on_log = interrupt_on_log          # Ctrl-C at the first line of build output

    def phase(self, name: str, detail: str = "") -> None:
        self.phases.append(name)
        self.details.append(detail)

    def log(self, line: str) -> None:
        self.logs.append(line)
        if self.interrupt_on_log:
            raise KeyboardInterrupt

    def note(self, text: str) -> None:
        self.notes.append(text)


@pytest.fixture
def function_dir(tmp_path: Path) -> Path:
    """A bash function: function.sh with handler()."""
    src = tmp_path / "fn"
    src.mkdir()
    (src / "function.sh").write_text('handler() {\n  echo "hello $1"\n}\n')
    return src


def fnctl(*args: str, env: dict | None = None, timeout: float = 600, cwd: Path | None = None) -> Result:
    """Run the fnctl command line in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "fnctl", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=cwd or ROOT)
    return Result(proc)


def http(url: str, data: bytes | None = None, timeout: float = 10, headers: dict | None = None,
         method: str | None = None):
    """(status, body bytes, headers) of a request; HTTP errors are answers too."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def docker_ready() -> bool:
    if not shutil.which("docker"):
        return False
    proc = subprocess.run(["docker", "image", "inspect", "fnctl-local/debian:bookworm"], capture_output=True)
    return proc.returncode == 0


needs_docker = pytest.mark.skipif(not docker_ready(), reason="needs a Docker engine and the local base images "
                                                             "(run scripts/setup)")


class _QuietFiles(http_server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve_go_module_proxy(host: str, cache: Path, module_dir: Path):
    """A Go module proxy on HOST, standing in for a company's: the module cache download folder (the
    GOPROXY protocol's own layout) of MODULE_DIR's modules, fetched by this machine's `go` with its
    settings, served over plain HTTP. Yields its URL."""
    subprocess.run(["go", "mod", "download"], cwd=module_dir, check=True, capture_output=True,
                   env={**os.environ, "GOMODCACHE": str(cache), "GOFLAGS": "-modcacherw"}, timeout=300)
    handler = functools.partial(_QuietFiles, directory=str(cache / "cache" / "download"))
    server = http_server.ThreadingHTTPServer((host, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()


def build_ready_made_image(folder: Path, tag: str, marker: str) -> str:
    """An image made without fnctl (`docker build`): busybox httpd serving `marker` on $PORT, on the
    local base image, listening where fnctl's local target says (FNCTL_LISTEN_HOST). Returns `tag`."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(shutil.which("busybox") or "/bin/busybox", folder / "busybox")
    (folder / "index.html").write_text(marker + "\n")
    (folder / "Dockerfile").write_text(
        "FROM fnctl-local/debian:bookworm\n"
        "COPY busybox /usr/local/bin/busybox\n"
        "COPY index.html /www/index.html\n"
        'ENTRYPOINT ["/bin/sh", "-c", '
        '"exec busybox httpd -f -p ${FNCTL_LISTEN_HOST:-0.0.0.0}:${PORT:-8080} -h /www"]\n')
    subprocess.run(["docker", "build", "-q", "-t", tag, str(folder)], check=True, capture_output=True, timeout=300)
    return tag
