"""The Go settings of the user's machine (`go env`), for templates whose builds fetch Go modules.

The only module that runs the `go` command. A developer behind a company proxy has GOPROXY,
GOPRIVATE, GONOSUMDB, GOFLAGS set for their own builds (environment or `go env -w`); a build
template's `machine: go-env` parameters take those values unless given with --build-argument.
Without a `go` command, or when it fails, there is nothing to take: the template's defaults apply.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache

NAME = re.compile(r"^GO[A-Z0-9_]+$")


@cache
def _go_env(names: tuple[str, ...]) -> dict[str, str]:
    go = shutil.which("go")
    if not go or not names:
        return {}
    try:
        done = subprocess.run([go, "env", "-json", *names], capture_output=True, timeout=20, check=False)
        data = json.loads(done.stdout or b"{}") if done.returncode == 0 else {}
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return {}
    return {k: str(v) for k, v in data.items() if isinstance(k, str) and isinstance(v, str | int)}


def settings(names: list[str]) -> dict[str, str]:
    """`go env` of the given variables (GO…), the empty ones left out."""
    wanted = tuple(sorted(n for n in set(names) if NAME.match(n)))
    return {k: v for k, v in _go_env(wanted).items() if v}
