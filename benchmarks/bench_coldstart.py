"""4. Cold start and the bridge's memory.

Cold start: a container is created beforehand (`docker create`, host
network, loopback port); the clock starts at the Docker API's container
start call and stops at the first HTTP 200 whose body echoes the event,
polled in a tight loop (one attempt per millisecond) on 127.0.0.1. Baseline:
the plain Go net/http echo (benchmarks/functions/go-plain) on the same base
image: the floor a container start costs.

Memory: VmRSS of the bridge process (PID 1 of the container, read from
/proc on the host; the bootstraps are separate processes and not counted),
idle one second after it is ready and at its peak during `hey -c 50 -z 3s`.
"""

from __future__ import annotations

import threading
import time

import benchlib as b

BODY = b'{"text":"netadmin"}'
SUBJECTS = {
    "bash": (b.ROOT / "examples/bash-echo", "bash"),
    "node4": (b.FUNCTIONS / "node-echo", "node4"),
    "go": (b.FUNCTIONS / "go-echo", "go"),
    "python": (b.FUNCTIONS / "python-echo", "python"),
}


def _good(got: bytes) -> bool:
    return b"netadmin" in got


def images() -> dict[str, str]:
    found = {}
    for name, (source, template) in SUBJECTS.items():
        if (b.ROOT / "buildtemplates" / template / "template.yaml").exists():
            found[name] = b.function_image(source, template, f"{b.IMG}/cold-{name}")
    found["plain go"] = b.plain_image()
    return found


def memory(image: str, name: str) -> dict:
    port = b.free_port()
    b.run_container(image, name, port)
    try:
        b.wait_answer(port, BODY, _good, deadline_s=30)
        pid = b.container_pid(name)
        time.sleep(1)
        idle = b.vmrss_kib(pid)
        peak = [idle]
        done = threading.Event()

        def sample():
            while not done.is_set():
                try:
                    peak.append(b.vmrss_kib(pid))
                except (OSError, RuntimeError):
                    return
                done.wait(0.05)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        load = b.hey(port, 50, duration="3s")
        done.set()
        t.join(5)
        return {"idle_mib": idle / 1024, "load_mib": max(peak) / 1024, "load_rps": load["rps"]}
    finally:
        b.remove_container(name)


def run() -> dict:
    import docker

    api = docker.from_env().api
    imgs = images()
    n = b.reps(7, 2)
    times: dict[str, list[float]] = {k: [] for k in imgs}
    for i in range(n):
        order = list(imgs) if i % 2 == 0 else list(imgs)[::-1]
        for label in order:
            times[label].append(b.cold_start(api, imgs[label], f"bench-cold-{label.replace(' ', '-')}", BODY, _good))
    mem = {label: memory(image, f"bench-mem-{label.replace(' ', '-')}") for label, image in imgs.items()}
    base = b.median(times["plain go"])
    results = {"runs": n, "cold_start_s": {k: {"median": b.median(v), "runs": v} for k, v in times.items()},
               "memory": mem}
    rows = []
    for label, data in results["cold_start_s"].items():
        if label == "plain go":
            continue
        target = " (target < 300 ms)" if label in ("bash", "go") else ""
        rows.append([label, b.fmt(data["median"] * 1000, " ms"), b.fmt(base * 1000, " ms"),
                     b.ratio(data["median"], base) + target])
    tables = [b.table(f"Cold start: container start to first good answer (median of {n}, interleaved)",
                      ["runtime", "behind the bridge", "plain go net/http", "ratio"], rows)]
    rows = []
    pm = mem["plain go"]
    for label, m in mem.items():
        if label == "plain go":
            continue
        rows.append([label, b.fmt(m["idle_mib"], " MiB"), b.fmt(pm["idle_mib"], " MiB"),
                     b.ratio(m["idle_mib"], pm["idle_mib"]) + " (target < 15 MiB)",
                     b.fmt(m["load_mib"], " MiB"), b.fmt(pm["load_mib"], " MiB"),
                     b.ratio(m["load_mib"], pm["load_mib"])])
    tables.append(b.table("Memory: VmRSS of the bridge process vs the plain Go server (idle; peak under hey -c 50)",
                          ["runtime", "bridge idle", "plain idle", "ratio", "bridge under load", "plain under load",
                           "ratio"], rows))
    results["tables"] = tables
    b.save("coldstart", results)
    return results
