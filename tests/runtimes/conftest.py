"""Shared helpers for the runtime tests: the real bridge binary, run on the host.

Host-level tests start `buildtemplates/bridge` (compiled once per session) with
one of our bootstraps and talk HTTP to it on 127.0.0.1, exactly as a
container's clients would, without Docker.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.runtimes.helpers import TEMPLATES, Reply, free_port, http


@pytest.fixture(scope="session")
def bridge_binary(tmp_path_factory) -> Path:
    if shutil.which("go") is None:
        pytest.skip("the `go` toolchain is not installed: the bridge cannot be compiled")
    out = tmp_path_factory.mktemp("bridge") / "bridge"
    build = subprocess.run(["go", "build", "-o", str(out), "."], cwd=TEMPLATES / "bridge",
                           capture_output=True, text=True, env={**os.environ, "CGO_ENABLED": "0"})
    if build.returncode != 0:
        pytest.fail(f"the bridge does not build:\n{build.stderr}")
    return out


class Bridge:
    """One running bridge; `url` is its HTTP address."""

    def __init__(self, binary: Path, bootstrap: str, task_root: Path, env: dict[str, str], log_dir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("AWS_", "LAMBDA_", "_HANDLER", "EVENT", "HANDLER"))}
        full_env.update({"BOOTSTRAP": bootstrap, "LAMBDA_TASK_ROOT": str(task_root), "PORT": str(self.port),
                         "FNCTL_LISTEN_HOST": "127.0.0.1", "INVOKER_COUNT": "1",
                         "PYTHONDONTWRITEBYTECODE": "1"})
        full_env.update(env)
        self.stdout_path = log_dir / f"bridge-{self.port}.out"
        self.stderr_path = log_dir / f"bridge-{self.port}.err"
        self._out = open(self.stdout_path, "wb")  # noqa: SIM115 (lives as long as the process)
        self._err = open(self.stderr_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([str(binary)], env=full_env, stdout=self._out, stderr=self._err,
                                     start_new_session=True)

    @property
    def stderr(self) -> str:
        self._err.flush()
        return self.stderr_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the bridge exited with {self.proc.returncode}:\n{self.stderr}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError(f"the bridge did not listen within {timeout}s:\n{self.stderr}")

    def wait_exit(self, timeout: float = 20) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"the bridge did not exit within {timeout}s:\n{self.stderr}") from e

    def invoke(self, data: bytes | str | None = b"", **kw) -> Reply:
        return http(self.url + kw.pop("path", "/"), data, **kw)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        self._err.close()


@pytest.fixture
def start_bridge(bridge_binary, tmp_path):
    """start_bridge(bootstrap, task_root, env={}, ready=True) -> Bridge; stopped after the test."""
    started: list[Bridge] = []

    def start(bootstrap: str | Path, task_root: Path, env: dict[str, str] | None = None,
              ready: bool = True) -> Bridge:
        b = Bridge(bridge_binary, str(bootstrap), task_root, env or {}, tmp_path)
        started.append(b)
        if ready:
            b.wait_ready()
        return b

    yield start
    for b in started:
        b.stop()


@pytest.fixture(scope="session")
def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("the `node` binary is not installed")
    return node


@pytest.fixture(scope="session")
def python_binary() -> str:
    return sys.executable
