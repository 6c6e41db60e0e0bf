"""Shell completion: the scripts, and the dynamic completion through click's env-var protocol."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, fnctl


def complete(words: str, env: dict | None = None, shell: str = "bash") -> list[str]:
    """What fnctl answers the shell for the command line `words` (the cursor after its last word)."""
    parts = words.split(" ")
    proc = subprocess.run([sys.executable, "-m", "fnctl"], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "_FNCTL_COMPLETE": f"{shell}_complete", "COMP_WORDS": words,
                               "COMP_CWORD": str(len(parts) - 1), **(env or {})})
    assert proc.returncode == 0 and proc.stderr == "", proc
    return [line.split(",", 1)[1] for line in proc.stdout.splitlines() if line]


@pytest.mark.parametrize("shell,marker", [("bash", "complete -o nosort -F _fnctl_completion fnctl"),
                                          ("zsh", "compdef _fnctl_completion fnctl"),
                                          ("fish", "complete --no-files --command fnctl")])
def test_completion_prints_the_script(shell, marker):
    r = fnctl("completion", shell)
    assert r.code == 0, r
    assert marker in r.out and "_FNCTL_COMPLETE" in r.out


def test_an_unknown_shell_is_refused():
    r = fnctl("completion", "tcsh")
    assert r.code == 2 and "tcsh" in r.err


def test_commands_and_template_names_complete():
    assert complete("fnctl ") == sorted(complete("fnctl ")) and {"deploy", "get", "completion", "set"} <= set(
        complete("fnctl "))
    assert complete("fnctl deploy service hello --build-template no") == ["node4"]
    assert complete("fnctl get buildtemplate p", env={"KUBECONFIG": "/nonexistent"}) == ["python"]


def test_build_arguments_complete_from_the_chosen_template():
    offered = complete("fnctl deploy service hello --build-template node4 --build-argument ")
    assert offered == ["DIRECTORY=", "HANDLER=", "EVENT=", "BASE_IMAGE=", "GO_IMAGE="]
    assert complete("fnctl deploy service hello --build-template node4 --build-argument HANDLER=x "
                    "--build-argument ha") == []       # given already
    assert complete("fnctl deploy service hello --build-template go --build-argument gop") == ["GOPROXY=", "GOPRIVATE="]
    assert complete("fnctl deploy service hello --build-template cobol --build-argument ") == []
    assert complete("fnctl deploy service hello --build-template bash --build-argument HANDLER=") == []


def test_the_source_completes_as_a_path(tmp_path: Path):
    """-f: the shell completes files and folders (click's `file` type)."""
    proc = subprocess.run([sys.executable, "-m", "fnctl"], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "_FNCTL_COMPLETE": "bash_complete",
                               "COMP_WORDS": "fnctl deploy service x -f exam", "COMP_CWORD": "5"})
    assert proc.stdout.splitlines() == ["file,exam"]


def test_service_names_complete_nothing_without_a_target():
    """No engine and no cluster: no names, no error on the shell's line."""
    assert complete("fnctl get service ", env={"KUBECONFIG": "/nonexistent",
                                                "DOCKER_HOST": "unix:///nonexistent.sock"}) == []
    assert complete("fnctl delete service x", env={"KUBECONFIG": "/nonexistent",
                                                    "DOCKER_HOST": "unix:///nonexistent.sock"}) == []


def test_the_bash_script_completes_in_bash(tmp_path: Path):
    """The printed script, sourced into a real bash, fills COMPREPLY through `fnctl` on PATH."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "fnctl").write_text(f'#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m fnctl "$@"\n')
    (bindir / "fnctl").chmod(0o755)
    script = fnctl("completion", "bash").out
    test = script + '\nCOMP_WORDS=(fnctl deploy service x --build-template bash --build-argument HA)\n' \
        'COMP_CWORD=7\n_fnctl_completion fnctl\nprintf "%s\\n" "${COMPREPLY[@]}"\n'
    proc = subprocess.run(["bash", "-c", test], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"})
    assert proc.returncode == 0, proc
    assert proc.stdout.split() == ["HANDLER="]
