"""docs/tutorial.md as a test: every `sh local` block runs, in order, on the real Docker engine, and what it
prints (stdout and stderr together, as a terminal shows them) must match the `text output` block after it.

Matching is tolerant where runs differ: a line `…` stands for any number of lines, `…` inside a line for any
text, runs of spaces for any whitespace, and a loopback port or a timestamp for any other.

Substitutions, so that the test talks only to loopback and to what it made itself:
- tm's example repository (`https://github.com/serverless/examples`) becomes a local git repository with
  the same folder, `aws-node-serve-dynamic-html-via-http-endpoint`, holding this repository's
  examples/node4-landing/handler.js (the same `landingPage(event, context, callback)` kind of handler);
- the Go build's module proxy is one on 127.0.0.1 filled by this machine's `go` (GOPROXY in the
  environment, which the go template's `go env GOPROXY` reads), as in tests/runtimes/test_docker_e2e.py;
- `fnctl` is this checkout's (`python -m fnctl`), and no kubeconfig is found (KUBECONFIG names no file).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT, fnctl, git, needs_docker, serve_go_module_proxy

TUTORIAL = ROOT / "docs" / "tutorial.md"
SERVICES = ("echo", "landing", "go-lambda")           # the names the tutorial deploys
TM_REPOSITORY = "https://github.com/serverless/examples"
TM_FOLDER = "aws-node-serve-dynamic-html-via-http-endpoint"
ELLIPSIS = "…"


@dataclass
class Block:
    kind: str                  # "local", "cluster" or "output"
    text: str
    line: int                  # where it starts in the tutorial
    output: Block | None = field(default=None)


def blocks(markdown: str) -> list[Block]:
    """The fenced blocks with an info string the tutorial uses, each output block joined to the command
    block before it."""
    found: list[Block] = []
    fence = re.compile(r"^```(\S*)(?: (\S+))?\s*$")
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        m = fence.match(lines[i])
        if not m or not m[1]:
            i += 1
            continue
        start = i
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        body = "\n".join(lines[i + 1:end]) + "\n"
        lang, mark = m[1], m[2]
        if lang == "sh" and mark in ("local", "cluster"):
            found.append(Block(mark, body, start + 1))
        elif lang == "text" and mark == "output":
            assert found and found[-1].kind == "local" and found[-1].output is None, \
                f"tutorial line {start + 1}: an output block must follow a `sh local` block"
            found[-1].output = Block("output", body, start + 1)
        else:
            assert lang != "sh", f"tutorial line {start + 1}: mark shell blocks `sh local` or `sh cluster`"
        i = end + 1
    return found


def line_pattern(expected: str) -> re.Pattern:
    parts = re.split(r"(…|\s+|127\.0\.0\.1:\d+|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)", expected.strip())
    regex = ""
    for part in parts:
        if part == ELLIPSIS:
            regex += ".*"
        elif part.isspace():
            regex += r"\s+"
        elif part.startswith("127.0.0.1:"):
            regex += r"127\.0\.0\.1:\d+"
        elif re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", part):
            regex += r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
        else:
            regex += re.escape(part)
    return re.compile(regex)


def matches(expected: str, actual: str) -> bool:
    """EXPECTED's lines against ACTUAL's (blank lines and line ends ignored): consecutive lines must match
    consecutive lines; a line `…` skips any number of them."""
    want = [line for line in expected.splitlines() if line.strip()]
    got = [line.rstrip("\r ") for line in actual.splitlines() if line.strip()]
    segments: list[list[re.Pattern]] = [[]]
    for line in want:
        if line.strip() == ELLIPSIS:
            segments.append([])
        else:
            segments[-1].append(line_pattern(line))
    open_start, open_end = not segments[0], not segments[-1]
    segments = [s for s in segments if s]

    def fits(segment: list[re.Pattern], at: int) -> bool:
        return at + len(segment) <= len(got) and all(p.fullmatch(got[at + k].strip())
                                                      for k, p in enumerate(segment))

    at = 0
    for n, segment in enumerate(segments):
        if n == len(segments) - 1 and not open_end:         # the last one sits at the end
            end_at = len(got) - len(segment)
            return end_at >= at and fits(segment, end_at) and (open_start or n > 0 or end_at == 0)
        if n == 0 and not open_start:
            if not fits(segment, 0):
                return False
            at = len(segment)
            continue
        starts = [i for i in range(at, len(got)) if fits(segment, i)]
        if not starts:
            return False
        at = starts[0] + len(segment)
    return True


# -- the tutorial's shape and the matcher (no Docker) -----------------------------------------------------

def test_the_tutorial_covers_the_seed_flows_on_both_targets():
    found = blocks(TUTORIAL.read_text())
    local = "\n".join(b.text for b in found if b.kind == "local")
    cluster = "\n".join(b.text for b in found if b.kind == "cluster")
    for needle in ("examples/bash-echo", "DIRECTORY=", "HANDLER=", "examples/go-lambda", "--concurrency", "hey "):
        assert needle in local, needle
    for needle in ("--min-scale 0", "--max-scale", "--concurrency-target", "--domain", "hey "):
        assert needle in cluster, needle
    assert all(b.output for b in found if b.kind == "local" and "deploy service" in b.text)


def test_matching_is_tolerant_only_where_it_says():
    out = "note\n  deploy  starting echo-00001 on 127.0.0.1:31007\nService echo URL: http://127.0.0.1:31007\n"
    assert matches("…\nService echo URL: http://127.0.0.1:31000\n", out)
    assert matches("note\n  deploy  starting echo-00001 on 127.0.0.1:31000\n…\n", out)
    assert matches("note\n…\nService echo URL: http://127.0.0.1:1\n", out)
    assert not matches("Service echo URL: http://127.0.0.1:31000\n", out)                  # not at the start
    assert not matches("…\nService echo URL: http://localhost:31000\n", out)
    assert not matches("…\n  deploy  starting echo-00002 on 127.0.0.1:31000\n…\n", out)
    assert not matches("note\nService echo URL: …\n", out)                                  # a line skipped
    assert not matches("…\nService echo URL: …\nmore\n", out)
    assert matches('{"a":1,"body":"…<html>…</html>"}', '{"a":1,"body":"\\n <html><b>x</b></html>"}')


# -- the tutorial's local blocks, run ---------------------------------------------------------------------

@pytest.fixture
def tm_repository(tmp_path: Path) -> str:
    repo = tmp_path / "serverless-examples"
    (repo / TM_FOLDER).mkdir(parents=True)
    shutil.copy(EXAMPLES / "node4-landing" / "handler.js", repo / TM_FOLDER / "handler.js")
    git("init", "-q", "-b", "master", cwd=repo)
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "landing page", cwd=repo)
    return repo.as_uri()


@pytest.fixture
def tutorial_services():
    def delete_all():
        for name in SERVICES:
            fnctl("delete", "service", name, "--local")
    delete_all()
    yield
    delete_all()


@pytest.mark.docker
@needs_docker
def test_every_local_block_of_the_tutorial_prints_what_it_says(tmp_path, tm_repository, tutorial_services):
    for tool in ("curl", "hey", "go"):
        if shutil.which(tool) is None:
            pytest.skip(f"no {tool} on this machine (scripts/setup installs it)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "fnctl").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m fnctl "$@"\n')
    (bin_dir / "fnctl").chmod(0o755)
    local_blocks = [b for b in blocks(TUTORIAL.read_text()) if b.kind == "local"]
    with serve_go_module_proxy("127.0.0.1", tmp_path / "gomodcache", EXAMPLES / "go-lambda") as proxy:
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
               "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
               "GOPROXY": proxy, "GONOSUMDB": "", "GOFLAGS": "-mod=mod"}
        differ: list[str] = []          # every block whose output differs, not only the first
        for block in local_blocks:
            script = block.text.replace(TM_REPOSITORY, tm_repository)
            run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, timeout=900,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            where = f"docs/tutorial.md line {block.line}:\n{block.text}printed:\n{run.stdout.rstrip()}\n"
            assert run.returncode == 0, where + "\n" + "\n".join(differ)
            if block.output and not matches(block.output.text, run.stdout):
                differ.append(f"{where}not what the output block at line {block.output.line} says:\n"
                              f"{block.output.text}")
    assert not differ, "\n".join(differ)
