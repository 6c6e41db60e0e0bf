"""3. CLI start-up: fnctl commands against `python3 -c "import click"`.

Both sides run with the interpreter fnctl is installed for (the console script
next to sys.executable, not a pyenv shim), stdout/stderr to /dev/null,
interleaved in a loop, median wall time of each. `python -X importtime`
shows where the time goes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import benchlib as b

COMMANDS = {
    "fnctl --help": ["--help"],
    "fnctl get buildtemplate": ["get", "buildtemplate"],
    "fnctl deploy service x ... --dry-run": ["deploy", "service", "x", "-f", "examples/bash-echo",
                                            "--build-template", "bash", "--dry-run"],
}
BASELINE = [sys.executable, "-c", "import click"]


def _once(cmd: list[str]) -> float:
    t = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=b.ROOT, timeout=60)
    took = time.monotonic() - t
    if p.returncode != 0:
        raise RuntimeError(f"{cmd} exited {p.returncode}")
    return took


def importtime(args: list[str], top: int = 8) -> list[tuple[str, float]]:
    """The slowest top-level imports (cumulative ms) of `fnctl ARGS`."""
    code = "import sys; from fnctl.cli import main; sys.argv[0] = 'fnctl'; sys.exit(main())"
    p = subprocess.run([sys.executable, "-X", "importtime", "-c", code, *args], capture_output=True, cwd=b.ROOT,
                       timeout=60, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    found = []
    for line in p.stderr.decode().splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m.group(2)) <= 1:             # top-level imports only
            found.append((m.group(3), int(m.group(1)) / 1000))
    return sorted(found, key=lambda x: -x[1])[:top]


def run() -> dict:
    n = b.reps(15, 5)
    for args in COMMANDS.values():                 # warm-up: page cache, .pyc files
        _once([*b.FNCTL, *args])
    _once(BASELINE)
    times: dict[str, list[float]] = {k: [] for k in COMMANDS}
    base: list[float] = []
    for _ in range(n):
        base.append(_once(BASELINE))
        for label, args in COMMANDS.items():
            times[label].append(_once([*b.FNCTL, *args]))
    base_med = b.median(base)
    results = {"runs": n, "baseline": {"median": base_med, "runs": base},
               "commands": {k: {"median": b.median(v), "runs": v} for k, v in times.items()},
               "importtime": {k: importtime(v) for k, v in COMMANDS.items()}}
    rows = []
    for label, data in results["commands"].items():
        target = " (target <= 2x)" if "dry-run" not in label else ""
        rows.append([label, b.fmt(data["median"] * 1000, " ms"), b.fmt(base_med * 1000, " ms"),
                     b.ratio(data["median"], base_med) + target])
    tables = [b.table(f"CLI start-up (median of {n}, interleaved)",
                      ["command", "fnctl", "python3 -c 'import click'", "ratio"], rows)]
    rows = [[label, ", ".join(f"{m} {ms:.0f}" for m, ms in imports)]
            for label, imports in results["importtime"].items()]
    tables.append(b.table("CLI start-up: slowest top-level imports (python -X importtime, cumulative ms)",
                          ["command", "imports"], rows))
    results["tables"] = tables
    b.save("cli", results)
    return results
