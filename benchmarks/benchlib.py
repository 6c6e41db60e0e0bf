"""Shared helpers of the benchmark suite: processes, images, containers, polling, hey, tables.

Everything here targets loopback only, and every loop is bounded in count and time.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import io
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
FUNCTIONS = BENCH / "functions"
RESULTS = BENCH / "results"
# The installed console script next to this interpreter (not a pyenv shim, which adds a bash start-up).
_SCRIPT = Path(sys.executable).parent / "fnctl"
FNCTL = [str(_SCRIPT)] if _SCRIPT.exists() else ["fnctl"]
IMG = "bench-img"                      # repository prefix of images the suite builds itself
DOCKER_ENV = {**os.environ, "DOCKER_BUILDKIT": "0"}   # fnctl uses the classic builder; so does the baseline

QUICK = False                          # set by `run --quick`
DEMO_DURATION: str | None = None       # set by `run --demo-duration`: the hey -c 1000 -z run's length


def demo_duration() -> str:
    """How long the `hey -c 1000 -z ...` runs last: --demo-duration, else 30s (10s with --quick)."""
    return DEMO_DURATION or ("10s" if QUICK else "30s")


def reps(full: int, quick: int = 1) -> int:
    return quick if QUICK else full


def log(*parts: object) -> None:
    print("  ·", *parts, file=sys.stderr, flush=True)


# -- processes ------------------------------------------------------------------

def sh(cmd: list[str], *, check: bool = True, timeout: float = 600, input: bytes | None = None,
       env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout, env=env or DOCKER_ENV, cwd=cwd)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n"
                           + p.stderr.decode(errors="replace")[-3000:] + p.stdout.decode(errors="replace")[-2000:])
    return p


def docker(*args: str, check: bool = True, timeout: float = 900, input: bytes | None = None) -> str:
    return sh(["docker", *args], check=check, timeout=timeout, input=input).stdout.decode().strip()


def median(xs: list[float]) -> float:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


# -- cleanup: every container named bench-*, every service deployed --------------

_containers: set[str] = set()
_services: set[str] = set()


def track_container(name: str) -> str:
    assert name.startswith("bench-"), name
    _containers.add(name)
    return name


def track_service(name: str) -> str:
    _services.add(name)
    return name


def remove_container(name: str) -> None:
    docker("rm", "-f", name, check=False, timeout=60)
    _containers.discard(name)


def delete_service(name: str) -> None:
    sh([*FNCTL, "delete", "service", name, "--local"], check=False, timeout=120)
    _services.discard(name)


def cleanup() -> None:
    for name in sorted(_containers):
        remove_container(name)
    for name in sorted(_services):
        delete_service(name)


atexit.register(cleanup)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


# -- contexts and images --------------------------------------------------------------

def _prepare(source: Path, template: str, build_args: dict | None = None):
    """fnctl's own first step of a deploy: SOURCE read and TEMPLATE's parameters resolved."""
    from fnctl import templates
    from fnctl.model import DeployRequest
    from fnctl.pipeline import prepare

    request = DeployRequest(name="bench", source=str(source), template=template, build_args=build_args or {})
    return prepare(request, templates.find(template))


def render(source: Path, template: str, runtime_image: str | None = None, build_args: dict | None = None):
    """The build contexts fnctl would send for SOURCE: (runtime context or None, function context)."""
    prepared = _prepare(source, template, build_args)
    return prepared.runtime_context, prepared.function_context(runtime_image)


def extract(context, dest: Path) -> Path:
    """Write a rendered context to a folder, as a hand-written project would hold it."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(context.data), mode="r:gz") as tar:
        tar.extractall(dest, filter="fully_trusted")
    return dest


def image_exists(ref: str) -> bool:
    return sh(["docker", "image", "inspect", ref], check=False, timeout=60).returncode == 0


def build(context_dir_or_bytes, tag: str, build_args: dict[str, str] | None = None) -> None:
    """`docker build` with the classic builder and host networking, as fnctl builds."""
    args = [a for k, v in (build_args or {}).items() for a in ("--build-arg", f"{k}={v}")]
    if isinstance(context_dir_or_bytes, bytes):
        docker("build", "--network", "host", "--force-rm", *args, "-t", tag, "-", input=context_dir_or_bytes)
    else:
        docker("build", "--network", "host", "--force-rm", *args, "-t", tag, str(context_dir_or_bytes))


def template_secrets(source: Path, template: str) -> dict[str, str]:
    """The values of TEMPLATE's secret parameters for SOURCE, as fnctl resolves them."""
    prepared = _prepare(source, template)
    return prepared.template.secrets(prepared.values) or {}


_SECRET_MOUNT = re.compile(r"--mount=type=secret,id=([A-Za-z_][A-Za-z0-9_]*)\s*")
# Secrets that are files, not values (the machine's CA bundle): a hand-written Dockerfile for the
# classic builder has no way to mount one, so the baseline goes without (the step reads no file).
_FILE_SECRETS = {"CA_BUNDLE"}


def classic_secrets(dockerfile: Path, secrets: dict[str, str]) -> dict[str, str]:
    """Rewrite DOCKERFILE's BuildKit secret mounts for the classic builder, as a hand-written
    Dockerfile without BuildKit would do it: each secret becomes an ARG declared before the step
    (the step's own `/run/secrets/NAME` read then finds no file and keeps the ARG's value).
    Returns the --build-arg values to pass."""
    lines: list[str] = []
    instruction: list[str] = []             # the physical lines of one instruction (continuations)
    for line in dockerfile.read_text().splitlines():
        instruction.append(line)
        if line.rstrip().endswith("\\"):
            continue
        text = "\n".join(instruction)
        names = _SECRET_MOUNT.findall(text)
        if names and text.lstrip().startswith("RUN"):
            lines += [f"ARG {n}" for n in names if n not in _FILE_SECRETS]
            text = _SECRET_MOUNT.sub("", text)
        lines.append(text)
        instruction = []
    lines += instruction
    dockerfile.write_text("\n".join(lines) + "\n")
    return {k: v for k, v in secrets.items() if v and k not in _FILE_SECRETS}


def runtime_tag(template: str, context) -> str:
    return f"{IMG}/runtime-{template}:{context.short_digest}"


def function_image(source: Path, template: str, tag: str) -> str:
    """Build SOURCE with TEMPLATE exactly as fnctl would (runtime image first if absent)."""
    prepared = _prepare(source, template)
    rt = None
    if prepared.runtime_context is not None:
        rt = runtime_tag(template, prepared.runtime_context)
        if not image_exists(rt):
            log(f"building {rt}")
            build(prepared.runtime_context.data, rt)
    fn_ctx = prepared.function_context(rt)
    full = f"{tag}-{fn_ctx.short_digest}"
    if not image_exists(full):
        log(f"building {full}")
        secrets = prepared.template.secrets(prepared.values)
        if secrets is None:
            build(fn_ctx.data, full)
        else:       # a template with secret parameters (go's GOPROXY & co.): fnctl builds it with BuildKit
            from fnctl.dockerengine import DockerEngine
            DockerEngine.connect().build(fn_ctx, full, _QuietReporter(), secrets=secrets)
    return full


class _QuietReporter:
    """fnctl's Reporter protocol, saying nothing (the suite logs its own progress)."""

    def phase(self, *_args, **_kwargs) -> None: ...

    def log(self, *_args, **_kwargs) -> None: ...

    def note(self, *_args, **_kwargs) -> None: ...


def plain_image() -> str:
    tag = f"{IMG}/go-plain:latest"
    build(FUNCTIONS / "go-plain", tag)     # cached after the first time
    return tag


# -- containers and loopback ------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_container(image: str, name: str, port: int, env: dict[str, str] | None = None,
                  create_only: bool = False, command: list[str] | None = None) -> str:
    track_container(name)
    docker("rm", "-f", name, check=False)
    args = ["create" if create_only else "run"] + ([] if create_only else ["-d"])
    args += ["--name", name, "--network", "host", "--log-opt", "max-size=10m",
             "-e", f"PORT={port}", "-e", "FNCTL_LISTEN_HOST=127.0.0.1"]
    for k, v in (env or {}).items():
        args += ["-e", f"{k}={v}"]
    return docker(*args, image, *(command or []))


def request(port: int, body: bytes, timeout: float = 5.0, path: str = "/") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_answer(port: int, body: bytes, good, deadline_s: float = 120.0, pause: float = 0.001,
                path: str = "/") -> float:
    """Poll 127.0.0.1:PORT(PATH) until a 200 whose body satisfies good(body); return the time it took."""
    start = time.monotonic()
    end = start + deadline_s
    last = None
    while time.monotonic() < end:
        try:
            status, got = request(port, body, timeout=min(5.0, max(0.05, end - time.monotonic())), path=path)
            if status == 200 and good(got):
                return time.monotonic() - start
            last = (status, got[:200])
        except (OSError, http.client.HTTPException) as e:
            last = e
        time.sleep(pause)
    raise TimeoutError(f"127.0.0.1:{port} gave no good answer in {deadline_s}s (last: {last!r})")


def cold_start(api, image: str, name: str, body: bytes, good, *, path: str = "/",
               command: list[str] | None = None, env: dict[str, str] | None = None) -> float:
    """Seconds from the Engine API's start call of a container created beforehand (host network,
    a free loopback port) to its first good answer, polled once a millisecond."""
    port = free_port()
    cmd = [c.format(port=port) for c in command] if command else None
    run_container(image, name, port, env, create_only=True, command=cmd)
    try:
        start = time.monotonic()
        api.start(name)
        wait_answer(port, body, good, deadline_s=30, pause=0.001, path=path)
        return time.monotonic() - start
    finally:
        remove_container(name)


def container_pid(name: str) -> int:
    return int(docker("inspect", "-f", "{{.State.Pid}}", name))


def container_pids(name: str) -> list[int]:
    """Host PIDs of every process in the container (its PID 1 and all it started)."""
    return [int(x) for x in docker("top", name, "-eo", "pid").split()[1:]]


def vmrss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


# -- hey ------------------------------------------------------------------------------------

def hey(port: int, concurrency: int, *, n: int | None = None, duration: str | None = None,
        body: str = '{"text":"netadmin"}', timeout: float = 120, path: str = "/") -> dict:
    cmd = ["hey", "-c", str(concurrency), "-m", "POST", "-T", "application/json", "-d", body, "-t", "20"]
    cmd += ["-z", duration] if duration else ["-n", str(n)]
    out = sh(cmd + [f"http://127.0.0.1:{port}{path}"], timeout=timeout, env=os.environ.copy()).stdout.decode()
    return parse_hey(out)


def parse_hey(out: str) -> dict:
    def num(pattern: str) -> float | None:
        m = re.search(pattern, out)
        return float(m.group(1)) if m else None

    status = {m.group(1): int(m.group(2)) for m in re.finditer(r"\[(\d{3})\]\s+(\d+) responses", out)}
    errors: dict[str, int] = {}
    if "Error distribution:" in out:
        for line in out.split("Error distribution:", 1)[1].splitlines():
            m = re.match(r"\s*\[(\d+)\]\s+(.*)", line)
            if m:
                errors[m.group(2).strip()] = errors.get(m.group(2).strip(), 0) + int(m.group(1))
    return {
        "rps": num(r"Requests/sec:\s+([\d.]+)"),
        "p50_ms": _ms(num(r"50% in ([\d.]+) secs")),
        "p99_ms": _ms(num(r"99% in ([\d.]+) secs")),
        "slowest_ms": _ms(num(r"Slowest:\s+([\d.]+) secs")),
        "status": status, "errors": errors,
        "responses": sum(status.values()), "failed": sum(errors.values()),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


# -- output -------------------------------------------------------------------------------

def fmt(v, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if isinstance(v, str):
        return v
    if abs(v) >= 100:
        text = f"{v:,.0f}"
    elif abs(v) >= 10:
        text = f"{v:.1f}"
    else:
        text = f"{v:.2f}" if abs(v) >= 1 else f"{v:.3f}"
    return text + unit


def ratio(subject, baseline) -> str:
    if not subject or not baseline or subject != subject or baseline != baseline:
        return "-"
    return f"{subject / baseline:.2f}x"


def table(title: str, header: list[str], rows: list[list]) -> str:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [f"\n## {title}", ""]
    lines.append("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    lines.append("| " + " | ".join("-" * w for w in widths) + " |")
    for row in cells[1:]:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def save(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


@contextlib.contextmanager
def timed(store: dict, key: str):
    t = time.monotonic()
    yield
    store[key] = time.monotonic() - t
