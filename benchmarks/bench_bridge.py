"""1. The runtime bridge: throughput and latency with hey on loopback.

Both sides run the way users run them: containers on the host network
(`docker run --network host`), built from the same Go image with the same
flags onto the same base image. Subject: benchmarks/functions/go-echo built
with the go build template (bridge + Runtime API bootstrap); baseline:
benchmarks/functions/go-plain, the same echo as a plain net/http server.
Then the bash runtime (examples/bash-echo deployed with fnctl), and the
Knative autoscaling demo's `hey -c 1000 -z 30s` against it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import benchlib as b

BODY = '{"text":"netadmin"}'
CONCURRENCY = (1, 50, 1000)


def _start(image: str, name: str, env: dict | None = None) -> int:
    port = b.free_port()
    b.run_container(image, name, port, env)
    b.wait_answer(port, BODY.encode(), lambda got: got.endswith(BODY.encode()), deadline_s=60)
    return port


def _start_any(image: str, name: str) -> int:
    port = b.free_port()
    b.run_container(image, name, port)
    b.wait_answer(port, BODY.encode(), lambda got: b"netadmin" in got, deadline_s=60)
    return port


def run() -> dict:
    reps = b.reps(3, 1)
    seconds = "2s" if b.QUICK else "4s"
    echo_image = b.function_image(b.FUNCTIONS / "go-echo", "go", f"{b.IMG}/go-echo")
    plain_image = b.plain_image()
    subject = _start(echo_image, "bench-bridge-go")
    baseline = _start(plain_image, "bench-bridge-plain")
    results: dict = {"mode": "containers, docker run --network host", "duration": seconds, "reps": reps,
                     "go": {}, "bash": {}}
    try:
        for port in (subject, baseline):        # warm-up: connections, page cache, Go heaps
            b.hey(port, 50, duration="1s")
        for c in CONCURRENCY:
            runs: dict[str, list[dict]] = {"bridge": [], "plain": []}
            for i in range(reps):
                order = [("bridge", subject), ("plain", baseline)]
                if i % 2:
                    order.reverse()               # interleaved, alternating who goes first
                for label, port in order:
                    runs[label].append(b.hey(port, c, duration=seconds))
            results["go"][c] = {label: _summary(rs) for label, rs in runs.items()}
            b.log(f"go c={c}: {json.dumps(results['go'][c])}")
        results["cpu"] = cpu_split(subject, baseline, seconds)
    finally:
        b.remove_container("bench-bridge-go")
        b.remove_container("bench-bridge-plain")
    # The same split with GOMAXPROCS=1 in the container (the bridge already defaults to half the
    # CPUs; this also reaches the bootstraps, which serve one invocation at a time).
    port = _start(echo_image, "bench-bridge-go-gmp1", {"GOMAXPROCS": "1"})
    try:
        b.hey(port, 50, duration="1s")
        results["cpu"]["bridge GOMAXPROCS=1"] = cpu_split(port, None, seconds)["bridge"]
    finally:
        b.remove_container("bench-bridge-go-gmp1")

    # The bash runtime, deployed with fnctl as a user would.
    name = b.track_service("bench-bash-echo")
    out = b.sh([*b.FNCTL, "deploy", "service", name, "-f", str(b.ROOT / "examples/bash-echo"),
                "--build-template", "bash", "--local", "--wait", "-o", "json"], timeout=600).stdout
    url = json.loads(out)["url"]
    port = int(url.rsplit(":", 1)[1].strip("/"))
    try:
        b.wait_answer(port, BODY.encode(), lambda got: b"netadmin" in got, deadline_s=60)
        b.hey(port, 10, duration="1s")
        for c in (1, 50):
            runs = [b.hey(port, c, duration=seconds) for _ in range(reps)]
            results["bash"][c] = _summary(runs)
            b.log(f"bash c={c}: {json.dumps(results['bash'][c])}")
        demo = b.demo_duration()
        time.sleep(1)
        results["bash_demo"] = {"duration": demo, **b.hey(port, 1000, duration=demo, timeout=180)}
        b.log(f"bash hey -c 1000 -z {demo}: {json.dumps(results['bash_demo'])}")
    finally:
        b.delete_service(name)
    results["tables"] = report(results)
    b.save("bridge", results)
    return results


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _port_pid(port: int) -> int:
    for name in b.docker("ps", "--format", "{{.Names}}").split():
        if name.startswith("bench-bridge-") and f"PORT={port}" in b.docker("inspect", "-f", "{{.Config.Env}}", name):
            return b.container_pid(name)
    raise RuntimeError(f"no bench container on port {port}")


def cpu_split(subject: int, baseline: int | None, seconds: str) -> dict:
    """CPU time per request (user+system, from /proc) of the server, its bootstraps and hey, at c=50."""
    out = {}
    for label, port in (("bridge", subject), ("plain", baseline)):
        if port is None:
            continue
        pid = _port_pid(port)
        kids = [int(x) for x in b.sh(["pgrep", "-P", str(pid)], check=False).stdout.split()]
        before = {p: _cpu_seconds(p) for p in [pid, *kids]}
        cmd = ["hey", "-c", "50", "-z", seconds, "-m", "POST", "-T", "application/json", "-d", BODY,
               f"http://127.0.0.1:{port}/"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        time.sleep(float(seconds.rstrip("s")) - 0.2)       # read hey's own CPU before it exits
        hey_cpu = _cpu_seconds(proc.pid)
        after = {p: _cpu_seconds(p) for p in before}
        res = b.parse_hey(proc.communicate(timeout=60)[0])
        n = res["rps"] * (float(seconds.rstrip("s")) - 0.2)
        out[label] = {"rps": res["rps"], "server_us": (after[pid] - before[pid]) / n * 1e6,
                      "bootstraps_us": sum(after[k] - before[k] for k in kids) / n * 1e6,
                      "hey_us": hey_cpu / n * 1e6}
    return out


def _summary(runs: list[dict]) -> dict:
    return {
        "rps": b.median([r["rps"] for r in runs]),
        "p50_ms": b.median([r["p50_ms"] for r in runs]),
        "p99_ms": b.median([r["p99_ms"] for r in runs]),
        "failed": sum(r["failed"] for r in runs),
        "non200": sum(n for r in runs for s, n in r["status"].items() if s != "200"),
        "runs": [{k: r[k] for k in ("rps", "p50_ms", "p99_ms", "failed", "status")} for r in runs],
    }


def report(res: dict) -> list[str]:
    rows = []
    for c, sides in res["go"].items():
        s, p = sides["bridge"], sides["plain"]
        rows.append([f"c={c} requests/s", b.fmt(s["rps"]), b.fmt(p["rps"]), b.ratio(s["rps"], p["rps"])])
        rows.append([f"c={c} p50", b.fmt(s["p50_ms"], " ms"), b.fmt(p["p50_ms"], " ms"),
                     b.ratio(s["p50_ms"], p["p50_ms"])])
        rows.append([f"c={c} p99", b.fmt(s["p99_ms"], " ms"), b.fmt(p["p99_ms"], " ms"),
                     b.ratio(s["p99_ms"], p["p99_ms"])])
        bad = s["failed"] + s["non200"] + p["failed"] + p["non200"]
        if bad:
            rows.append([f"c={c} failed/non-200", s["failed"] + s["non200"], p["failed"] + p["non200"], ""])
    one = res["go"].get(1) or res["go"].get("1")
    if one:
        rows.append(["c=1 added p50 (bridge - plain)", b.fmt(one["bridge"]["p50_ms"] - one["plain"]["p50_ms"], " ms"),
                     "", "target < 1 ms"])
    fifty = res["go"].get(50) or res["go"].get("50")
    if fifty:
        rows.append(["c=50 requests/s ratio", "", "", f"{fifty['bridge']['rps'] / fifty['plain']['rps']:.2f}x "
                     "(target >= 0.4x)"])
    tables = [b.table(f"Bridge: Go echo behind the bridge vs plain Go net/http (hey -z {res['duration']}, "
                      f"median of {res['reps']})", ["metric", "bridge + go", "plain go", "ratio"], rows)]
    if res.get("cpu"):
        rows = [[label, b.fmt(c["rps"]), b.fmt(c["server_us"], " µs"), b.fmt(c["bootstraps_us"], " µs"),
                 b.fmt(c["hey_us"], " µs"), b.fmt(c["server_us"] + c["bootstraps_us"] + c["hey_us"], " µs")]
                for label, c in res["cpu"].items()]
        tables.append(b.table("Bridge: CPU time per request at c=50 (one run each; /proc user+system)",
                              ["server", "requests/s", "server process", "bootstraps", "hey", "total"], rows))

    rows = []
    for c, s in res["bash"].items():
        p = res["go"][c]["plain"]
        rows.append([f"c={c} requests/s", b.fmt(s["rps"]), b.fmt(p["rps"]), b.ratio(s["rps"], p["rps"])])
        rows.append([f"c={c} p50", b.fmt(s["p50_ms"], " ms"), b.fmt(p["p50_ms"], " ms"),
                     b.ratio(s["p50_ms"], p["p50_ms"])])
        rows.append([f"c={c} p99", b.fmt(s["p99_ms"], " ms"), b.fmt(p["p99_ms"], " ms"),
                     b.ratio(s["p99_ms"], p["p99_ms"])])
    if res["bash"]:
        tables.append(b.table("Bridge: bash runtime (examples/bash-echo deployed with fnctl) vs plain Go",
                              ["metric", "bridge + bash", "plain go", "ratio"], rows))
    for key, label in (("bash_demo", "bash-echo"),):
        d = res.get(key)
        if not d:
            continue
        status = ", ".join(f"[{k}] {v}" for k, v in sorted(d["status"].items())) or "none"
        errors = "; ".join(f"{v}x {k}" for k, v in d["errors"].items()) or "none"
        rows = [["responses", d["responses"]], ["status codes", status],
                ["failed/dropped (hey errors)", f"{d['failed']} ({errors})"],
                ["requests/s", b.fmt(d["rps"])], ["p50", b.fmt(d["p50_ms"], " ms")],
                ["p99", b.fmt(d["p99_ms"], " ms")], ["slowest", b.fmt(d["slowest_ms"], " ms")],
                ["target", "zero failed or dropped: " + ("met" if d["failed"] == 0 and
                                                         set(d["status"]) <= {"200"} else "MISSED")]]
        tables.append(b.table(f"Bridge: hey -c 1000 -z {d['duration']} against bash (Knative autoscaling demo)",
                              ["", label], rows))
    return tables
