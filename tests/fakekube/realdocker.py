"""The "docker" modes of the fake cluster: real builds, pushes and containers on the local Docker engine.

Only loopback is ever a network target: builds and containers use host networking, images are pushed to
and pulled from the registry on 127.0.0.1:5000 only (anything else is refused), and base images come from
the machine's image map (`/etc/fnctl/config.yaml`, `images:`), applied to the build args the way a
cluster's registry mirror would serve the public images from a local copy.

Standard library only: the `docker` command line does the work.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import threading
import urllib.request

REGISTRY = "127.0.0.1:5000"
LABEL = "fakekube"                    # every container started in docker mode carries fakekube=1
CLUSTER_LABEL = "fakekube.cluster"    # ... and the id of its FakeCluster, so clean-up is per cluster
IMAGE_MAP_FILE = "/etc/fnctl/config.yaml"
_BANNER = ("DEPRECATED: The legacy builder", "BuildKit is currently disabled", "environment-variable.",
           "Install the buildx component", "https://docs.docker.com/go/buildx")
_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


def unavailable(registry: str = REGISTRY) -> str | None:
    """Why docker mode cannot run here (None: it can)."""
    if not shutil.which("docker"):
        return "no docker command line"
    try:
        proc = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                              text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"the Docker engine does not answer ({e})"
    if proc.returncode != 0:
        return f"the Docker engine is not reachable: {proc.stderr.strip()[-200:]}"
    try:
        with urllib.request.urlopen(f"http://{registry}/v2/", timeout=5) as resp:
            if resp.status != 200:
                return f"the registry on {registry} answers {resp.status} to GET /v2/"
    except OSError as e:
        return f"no registry v2 on {registry} ({e}); start it as scripts/setup does"
    return None


def image_map(path: str = IMAGE_MAP_FILE) -> dict[str, str]:
    """The machine's `images:` map (public image -> local image); empty when there is none."""
    import yaml

    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError):
        return {}
    images = data.get("images") if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in (images or {}).items()}


def registry_of(image: str) -> str | None:
    """The registry host of an image reference (None for Docker Hub short names)."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def repository(image: str) -> str:
    """repo of repo[:tag][@digest]."""
    image = image.split("@", 1)[0]
    head, sep, last = image.rpartition("/")
    if ":" in last:
        last = last.split(":", 1)[0]
    return f"{head}{sep}{last}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def docker(*args: str, timeout: float = 120, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, timeout=timeout, input=input)


def stream(argv: list[str], on_line, stop: threading.Event | None = None, stdin: bytes | None = None,
           env: dict | None = None, timeout: float = 1800) -> int | None:
    """Run argv, calling on_line(text) for every line of stdout and stderr as it comes.

    Returns the exit status, or None when `stop` was set (the process is killed)."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
    lock = threading.Lock()

    def pump(pipe, is_err):
        for raw in iter(pipe.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if is_err and (not line.strip() or line.strip().startswith(_BANNER)):
                continue
            with lock:
                on_line(line)
        pipe.close()

    def feed():
        with contextlib.suppress(OSError):  # BrokenPipeError: docker stopped reading (it failed)
            proc.stdin.write(stdin)
        with contextlib.suppress(OSError):
            proc.stdin.close()

    threads = [threading.Thread(target=pump, args=(proc.stdout, False), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, True), daemon=True)]
    if stdin is not None:
        threads.append(threading.Thread(target=feed, daemon=True))
    for t in threads:
        t.start()
    waited = 0.0
    while True:
        try:
            proc.wait(timeout=0.1)
            break
        except subprocess.TimeoutExpired:
            waited += 0.1
            if (stop is not None and stop.is_set()) or waited > timeout:
                proc.kill()
                proc.wait()
                for t in threads:
                    t.join(timeout=2)
                return None
    for t in threads:
        t.join(timeout=5)
    return proc.returncode


def pushed_digest(lines: list[str], image: str) -> str | None:
    """The manifest digest `docker push` reported, else the image's RepoDigests entry for its repository."""
    for line in reversed(lines):
        m = _DIGEST.search(line)
        if m:
            return m.group(1)
    proc = docker("image", "inspect", "--format", "{{range .RepoDigests}}{{println .}}{{end}}", image)
    repo = repository(image)
    for ref in proc.stdout.decode().split():
        if ref.startswith(repo + "@sha256:"):
            return ref.split("@", 1)[1]
    return None


def remove_containers(*filters: str) -> None:
    """docker rm -f every container (running or not) matching all the label filters."""
    args = ["ps", "-aq"]
    for f in filters:
        args += ["--filter", f"label={f}"]
    try:
        ids = docker(*args, timeout=30).stdout.decode().split()
        if ids:
            docker("rm", "-f", *ids, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        pass
