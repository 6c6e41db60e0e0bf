"""5. Peers: the bridge against the runtime layers users could run the same Lambda code with.

Peers, each built from its own Go module at a pinned version through the Go module proxy by
benchmarks/peers/build (binaries cached outside the repository):
- AWS's Runtime Interface Emulator (RIE), as AWS ships it (one invocation at a time), and with
  AWS_LAMBDA_MAX_CONCURRENCY set to the bridge's invoker count (Lambda Managed Instances mode);
- TriggerMesh's aws-custom-runtime, if the proxy serves it (otherwise its exact build error).

Same function, same image: the function image fnctl builds (go: examples/go-lambda with
aws-lambda-go; bash: examples/bash-echo), and per peer an image FROM it that adds the peer's
binary as the entrypoint. All containers on the host network, listening on 127.0.0.1.
Interleaved runs: hey at c=1, 50, 1000; the `hey -c 1000 -z` demo; cold start to the first
good answer; idle memory (VmRSS of the layer process and of every process in the container).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import benchlib as b

BODY = '{"name":"netadmin","text":"netadmin"}'   # go-lambda reads "name"; bash-echo echoes it all
CONCURRENCY = (1, 50, 1000)
WORKERS = 4                  # the bridge's default invokers (buildtemplates/bridge/config.go)
RIE_PATH = "/2015-03-31/functions/function/invocations"
RIE_CMD = ["--runtime-interface-emulator-address", "127.0.0.1:{port}",
           "--runtime-api-address", "127.0.0.1:{api_port}", "/var/runtime/bootstrap"]


def _good(got: bytes) -> bool:
    return b"netadmin" in got


@dataclass
class Side:
    """One runtime layer serving one function image, as a container on the host network."""
    label: str
    image: str
    name: str
    path: str = "/"
    command: list[str] | None = None      # {port} and {api_port} are filled in per start
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    restarts: int = 0

    def _command(self, port: int) -> list[str] | None:
        if not self.command:
            return None
        return [c.format(port=port, api_port=b.free_port()) for c in self.command]

    def _env(self) -> dict[str, str]:
        if not self.label.startswith("tm"):
            return self.env
        # aws-custom-runtime's runtime API (default port 80) and metrics (9092) on free ports.
        return {**self.env, "INTERNAL_API_PORT": str(b.free_port()), "METRICS_PROMETHEUS_PORT": str(b.free_port())}

    def start(self) -> None:
        self.port = b.free_port()
        b.run_container(self.image, self.name, self.port, self._env(), command=self._command(self.port))
        b.wait_answer(self.port, BODY.encode(), _good, deadline_s=60, path=self.path)

    def running(self) -> bool:
        return b.docker("inspect", "-f", "{{.State.Running}}", self.name, check=False) == "true"

    def ensure(self) -> None:
        """Restart the container if an earlier run killed it (RIE panics on overlapping invokes)."""
        if not self.running():
            self.restarts += 1
            self.start()

    def hey(self, concurrency: int, duration: str, timeout: float = 120) -> dict:
        self.ensure()
        r = b.hey(self.port, concurrency, duration=duration, body=BODY, path=self.path, timeout=timeout)
        r["crashed"] = not self.running()
        return r

    def cold_start(self, api) -> float:
        return b.cold_start(api, self.image, self.name, BODY.encode(), _good, path=self.path,
                            command=[c.replace("{api_port}", str(b.free_port())) for c in self.command or []],
                            env=self._env())

    def idle_memory(self) -> dict:
        pids = b.container_pids(self.name)
        layer = b.vmrss_kib(b.container_pid(self.name))
        total = sum(b.vmrss_kib(p) for p in pids)
        return {"layer_mib": layer / 1024, "container_mib": total / 1024, "processes": len(pids)}


# -- build ----------------------------------------------------------------------------

def build_peers() -> tuple[Path, dict[str, str]]:
    """benchmarks/peers/build: the binaries' folder and, per peer that did not build, its error."""
    out = b.sh([str(b.BENCH / "peers/build")], timeout=1800, env=None).stdout.decode().strip()
    folder = Path(out.splitlines()[-1])
    failed = {p.name.removeprefix("FAILED-"): p.read_text().strip() for p in folder.glob("FAILED-*")}
    return folder, failed


def go_lambda_source() -> Path:
    """examples/go-lambda with its modules vendored by the host's go (through the module proxy):
    the build template then needs no download inside the build (-mod=vendor)."""
    dest = b.RESULTS / "peers-go-lambda"
    if not (dest / "vendor/modules.txt").exists():
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(b.ROOT / "examples/go-lambda", dest)
        b.sh(["go", "mod", "vendor"], cwd=dest, env=None, timeout=600)
    return dest


def peer_image(function_image: str, binary: Path, tag: str, extra: str = "") -> str:
    """FROM the function image fnctl built, plus the peer's binary as the entrypoint."""
    with tempfile.TemporaryDirectory() as ctx:
        shutil.copy2(binary, Path(ctx) / binary.name)
        (Path(ctx) / "Dockerfile").write_text(
            f"FROM {function_image}\nCOPY {binary.name} /opt/peers/{binary.name}\n{extra}"
            f'ENTRYPOINT ["/opt/peers/{binary.name}"]\n')
        b.build(Path(ctx), tag)
    return tag


def sides_for(fn: str, image: str, binaries: Path, failed: dict[str, str]) -> list[Side]:
    sides = [Side("fnctl", image, f"bench-peers-{fn}-fnctl")]
    if "aws-lambda-rie" not in failed:
        rie = peer_image(image, binaries / "aws-lambda-rie", f"{b.IMG}/peers-rie-{fn}:latest")
        sides.append(Side("rie", rie, f"bench-peers-{fn}-rie", RIE_PATH, RIE_CMD))
        sides.append(Side(f"rie MAX_CONCURRENCY={WORKERS}", rie, f"bench-peers-{fn}-rie-n", RIE_PATH, RIE_CMD,
                          {"AWS_LAMBDA_MAX_CONCURRENCY": str(WORKERS)}))
    if "aws-custom-runtime" not in failed:
        # It runs `sh -c $LAMBDA_TASK_ROOT/bootstrap` INVOKER_COUNT times (its main.go).
        tm = peer_image(image, binaries / "aws-custom-runtime", f"{b.IMG}/peers-tm-{fn}:latest",
                        "RUN ln -sf /var/runtime/bootstrap /var/task/bootstrap\n")
        sides.append(Side("tm aws-custom-runtime", tm, f"bench-peers-{fn}-tm", env={"INVOKER_COUNT": str(WORKERS)}))
    return sides


# -- measure --------------------------------------------------------------------------

def _rotate(xs: list, i: int) -> list:
    i %= len(xs)
    return xs[i:] + xs[:i]


def measure(sides: list[Side], api) -> dict:
    reps = b.reps(3, 1)
    seconds = "2s" if b.QUICK else "4s"
    demo = b.demo_duration()
    res: dict = {s.label: {"hey": {}, "runs": {}} for s in sides}
    try:
        for s in sides:
            s.start()
        time.sleep(1)
        for s in sides:
            res[s.label]["memory"] = s.idle_memory()
            s.hey(1, "1s")                              # warm-up; c=1 so that RIE stays up
        for c in CONCURRENCY:
            for i in range(reps):
                for s in _rotate(sides, i):
                    res[s.label]["runs"].setdefault(c, []).append(s.hey(c, seconds))
            for s in sides:
                res[s.label]["hey"][c] = _summary(res[s.label]["runs"][c])
                b.log(f"{s.name} c={c}: {res[s.label]['hey'][c]}")
        for i, s in enumerate(_rotate(sides, 1)):
            if i:
                time.sleep(2)                           # let the previous run's sockets drain
            res[s.label]["demo"] = _summary([s.hey(1000, demo, timeout=float(demo.rstrip("s")) + 150)])
            b.log(f"{s.name} hey -c 1000 -z {demo}: {res[s.label]['demo']}")
        for s in sides:
            res[s.label]["restarts"] = s.restarts
    finally:
        for s in sides:
            b.remove_container(s.name)
    cold: dict[str, list[float]] = {s.label: [] for s in sides}
    for i in range(b.reps(5, 2)):
        for s in _rotate(sides, i):
            cold[s.label].append(s.cold_start(api))
    for s in sides:
        res[s.label]["cold_start_s"] = {"median": b.median(cold[s.label]), "runs": cold[s.label]}
    return {"reps": reps, "duration": seconds, "demo": demo, "sides": res}


def _summary(runs: list[dict]) -> dict:
    def ok_rps(r: dict) -> float:
        sent = r["responses"] + r["failed"]
        return (r["rps"] or 0) * r["status"].get("200", 0) / sent if sent else 0.0

    return {
        "ok_rps": b.median([ok_rps(r) for r in runs]),
        "p50_ms": b.median([r["p50_ms"] for r in runs]),
        "p99_ms": b.median([r["p99_ms"] for r in runs]),
        "ok": sum(r["status"].get("200", 0) for r in runs),
        "non200": sum(n for r in runs for s, n in r["status"].items() if s != "200"),
        "failed": sum(r["failed"] for r in runs),
        "crashed": sum(r["crashed"] for r in runs),
        "errors": {k: v for r in runs for k, v in list(r["errors"].items())[:5]},
        "runs": [{k: r[k] for k in ("rps", "p50_ms", "p99_ms", "failed", "status", "crashed")} for r in runs],
    }


# -- report ---------------------------------------------------------------------------

def _errors(h: dict) -> str:
    text = f"{h['non200'] + h['failed']:,}"
    if h["non200"] or h["failed"]:
        text += f" ({h['non200']:,} non-200, {h['failed']:,} failed)"
    if h["crashed"]:
        text += f", crashed {h['crashed']}x"
    return text


def _lat(h: dict, key: str) -> str:
    # hey's percentiles cover every HTTP answer, error statuses included: mark them.
    return b.fmt(h[key], " ms") + (" *" if h["non200"] else "")


def rows_for(fn: str, s: dict, p: dict) -> list[list]:
    rows = []
    for c in CONCURRENCY:
        hs, hp = s["hey"][c], p["hey"][c]
        rows += [[f"{fn} c={c} requests/s (200s)", b.fmt(hs["ok_rps"]), b.fmt(hp["ok_rps"]),
                  b.ratio(hs["ok_rps"], hp["ok_rps"])],
                 [f"{fn} c={c} p50", _lat(hs, "p50_ms"), _lat(hp, "p50_ms"), b.ratio(hs["p50_ms"], hp["p50_ms"])],
                 [f"{fn} c={c} p99", _lat(hs, "p99_ms"), _lat(hp, "p99_ms"), b.ratio(hs["p99_ms"], hp["p99_ms"])],
                 [f"{fn} c={c} errors", _errors(hs), _errors(hp), ""]]
    ds, dp = s["demo"], p["demo"]
    rows += [[f"{fn} hey -c 1000 -z: 200 answers", f"{ds['ok']:,}", f"{dp['ok']:,}", b.ratio(ds["ok"], dp["ok"])],
             [f"{fn} hey -c 1000 -z: errors", _errors(ds), _errors(dp), ""],
             [f"{fn} hey -c 1000 -z: p99", _lat(ds, "p99_ms"), _lat(dp, "p99_ms"), b.ratio(ds["p99_ms"], dp["p99_ms"])]]
    cs, cp = s["cold_start_s"]["median"], p["cold_start_s"]["median"]
    rows.append([f"{fn} cold start to first answer", b.fmt(cs * 1000, " ms"), b.fmt(cp * 1000, " ms"), b.ratio(cs, cp)])
    ms, mp = s["memory"], p["memory"]
    rows.append([f"{fn} idle RSS, layer process", b.fmt(ms["layer_mib"], " MiB"), b.fmt(mp["layer_mib"], " MiB"),
                 b.ratio(ms["layer_mib"], mp["layer_mib"])])
    rows.append([f"{fn} idle RSS, whole container", f"{b.fmt(ms['container_mib'], ' MiB')} ({ms['processes']} proc)",
                 f"{b.fmt(mp['container_mib'], ' MiB')} ({mp['processes']} proc)",
                 b.ratio(ms["container_mib"], mp["container_mib"])])
    if p.get("restarts"):
        rows.append([f"{fn} peer restarted after a crash", "", f"{p['restarts']}x", ""])
    return rows


def report(results: dict) -> list[str]:
    tables = []
    any_fn = next(iter(results["functions"].values()))
    peers = [label for label in any_fn["sides"] if label != "fnctl"]
    for peer in peers:
        rows = []
        for fn, r in results["functions"].items():
            rows += rows_for(fn, r["sides"]["fnctl"], r["sides"][peer])
        tables.append(b.table(f"Peers: fnctl vs {peer} (hey -z {any_fn['duration']} median of {any_fn['reps']}; "
                              f"hey -c 1000 -z {any_fn['demo']}; cold start median of {b.reps(5, 2)}; "
                              "ratio = fnctl / peer; * = latency includes non-200 answers)",
                              ["metric", "fnctl", peer, "ratio"], rows))
    for peer, error in results["failed"].items():
        lines = [line for line in error.splitlines() if line.strip()][-3:]
        tables.append(b.table(f"Peers: fnctl vs {peer}: not built", ["peer", "error (benchmarks/peers/build)"],
                              [[peer, " / ".join(line.strip() for line in lines)]]))
    return tables


def run() -> dict:
    import docker

    api = docker.from_env().api
    binaries, failed = build_peers()
    results: dict = {"binaries": str(binaries), "failed": failed, "functions": {}}
    for fn, source, template in (("go", go_lambda_source(), "go"), ("bash", b.ROOT / "examples/bash-echo", "bash")):
        image = b.function_image(source, template, f"{b.IMG}/peers-{fn}")
        sides = sides_for(fn, image, binaries, failed)
        results["functions"][fn] = measure(sides, api)
    results["versions"] = subprocess.run(["grep", "-h", "_VERSION=", str(b.BENCH / "peers/build")],
                                         capture_output=True, text=True, check=False).stdout.split()
    results["tables"] = report(results)
    b.save("peers", results)
    return results
