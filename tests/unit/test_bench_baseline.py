"""The deploy benchmark's hand-written baseline (benchmarks/benchlib.py): a template with secret
parameters is rewritten for the classic builder, secrets becoming ARGs declared before their step."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import benchlib  # noqa: E402


def test_go_baseline_has_no_secret_mounts_and_declares_each_secret(tmp_path: Path):
    source = ROOT / "benchmarks" / "functions" / "go-echo"
    _, function_context = benchlib.render(source, "go", "runtime:tag")
    folder = benchlib.extract(function_context, tmp_path)
    secrets = benchlib.template_secrets(source, "go")
    original = (folder / "Dockerfile").read_text()
    assert "--mount=type=secret" in original

    build_args = benchlib.classic_secrets(folder / "Dockerfile", {**secrets, "GOPRIVATE": ""})

    rewritten = (folder / "Dockerfile").read_text()
    assert "--mount=type=secret" not in rewritten
    run_at = rewritten.index("for name in GOPROXY")
    for name in ("GOPROXY", "GOPRIVATE", "GONOPROXY", "GONOSUMDB", "GOSUMDB", "GOFLAGS"):
        assert -1 < rewritten.index(f"\nARG {name}\n") < run_at, name
    assert build_args == {k: v for k, v in secrets.items() if v and k != "CA_BUNDLE"}
    assert "GOPRIVATE" not in build_args
    # The CA bundle is a file the classic builder cannot mount: no ARG, no --build-arg of a PEM.
    assert "ARG CA_BUNDLE" not in rewritten
    # Everything but the mounts is kept, line for line.
    assert len(rewritten.splitlines()) == len(original.splitlines()) + 6
