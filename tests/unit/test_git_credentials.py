"""Private git sources: fnctl clones with the user's own git credentials, never prompts without a
terminal, and never shows a token (tests.gitserver: a 127.0.0.1 smart-HTTP server asking for Basic auth)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, Result, git
from tests.gitserver import GitHttpServer

TOKEN = "ghp_T0kenThatMustNeverShow"


@pytest.fixture
def server(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "function.sh").write_text('handler() {\n  echo "hi $1"\n}\n')
    git("init", "-q", "-b", "main", cwd=src)
    git("add", ".", cwd=src)
    git("commit", "-qm", "v1", cwd=src)
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(tmp_path / "repos" / "fn.git")], check=True)
    with GitHttpServer(tmp_path / "repos", "ci", TOKEN) as s:
        yield s


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A HOME of its own: only the git configuration a test writes there counts."""
    path = tmp_path / "home"
    path.mkdir()
    return path


def deploy_dry_run(url: str, home: Path, extra_env: dict | None = None) -> Result:
    """A local dry run: it clones and reads the source as a deploy does, and needs no engine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "SSH_"))}
    env.update({"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "GIT_CONFIG_NOSYSTEM": "1",
                **(extra_env or {})})
    proc = subprocess.run([sys.executable, "-m", "fnctl", "deploy", "service", "private", "-f", url,
                           "--build-template", "bash", "--local", "--dry-run", "-o", "json"],
                          capture_output=True, text=True, env=env, timeout=60, cwd=ROOT, stdin=subprocess.DEVNULL)
    return Result(proc)


def shown(r: Result) -> str:
    return r.out + r.err


def test_a_credential_helper_answers(server, home):
    (home / ".git-credentials").write_text(server.url("fn").replace("http://", f"http://ci:{TOKEN}@") + "\n")
    (home / ".gitconfig").write_text("[credential]\n\thelper = store\n")
    r = deploy_dry_run(server.url("fn"), home)
    assert r.code == 0, r
    assert TOKEN not in shown(r)
    assert True in server.authorized
    objects = json.loads(r.out)
    assert "Container" in [o["kind"] for o in objects] and TOKEN not in json.dumps(objects)


def test_a_token_from_an_environment_variable_through_askpass(server, home):
    askpass = home / "askpass.sh"
    askpass.write_text('#!/bin/sh\ncase "$1" in Username*) echo ci ;; *) echo "$FNCTL_TEST_TOKEN" ;; esac\n')
    askpass.chmod(0o755)
    r = deploy_dry_run(server.url("fn"), home, {"GIT_ASKPASS": str(askpass), "FNCTL_TEST_TOKEN": TOKEN})
    assert r.code == 0, r
    assert TOKEN not in shown(r)


def test_without_credentials_it_fails_at_once_instead_of_prompting(server, home):
    started = time.monotonic()
    r = deploy_dry_run(server.url("fn"), home)
    assert r.code == 2, r
    assert time.monotonic() - started < 30
    assert f"cannot clone {server.url('fn')}" in r.err and "terminal prompts disabled" in r.err
    assert "Hint:" in r.err and "Traceback" not in r.err


@pytest.mark.parametrize("output", ["human", "json"])
def test_a_wrong_token_in_the_url_is_redacted_from_the_error(server, home, output):
    url = server.url("fn").replace("http://", "http://ci:wr0ng-S3cret-Token@")
    r = deploy_dry_run(url, home)
    assert r.code == 2, r
    assert "wr0ng-S3cret-Token" not in shown(r)
    assert "cannot clone http://127.0.0.1:" in r.err
    assert server.authorized and not any(server.authorized)


def test_a_right_token_in_the_url_is_redacted_from_the_output(server, home):
    url = server.url("fn").replace("http://", f"http://ci:{TOKEN}@")
    r = deploy_dry_run(url, home)
    assert r.code == 0, r
    assert TOKEN not in shown(r)


def _recording_ssh(home: Path, name: str) -> Path:
    """An ssh stand-in that records its arguments and fails as an unreachable host would."""
    path = home / name
    path.write_text(f'#!/bin/sh\necho "$@" > "{home}/{name}.args"\necho "ssh: connect to host: refused" >&2\n'
                    "exit 255\n")
    path.chmod(0o755)
    return path


def test_ssh_runs_in_batch_mode_without_a_terminal(home):
    bindir = home / "bin"
    bindir.mkdir()
    _recording_ssh(bindir, "ssh")
    r = deploy_dry_run("ssh://git@127.0.0.1:1/team/fn.git", home, {"PATH": f"{bindir}:{os.environ['PATH']}"})
    assert r.code == 2, r
    assert "-o BatchMode=yes" in (bindir / "ssh.args").read_text()


def test_the_users_core_ssh_command_wins(home):
    mine = _recording_ssh(home, "my-ssh")
    (home / ".gitconfig").write_text(f"[core]\n\tsshCommand = {mine} -i /keys/deploy\n")
    r = deploy_dry_run("git@127.0.0.1:team/fn.git", home)
    assert r.code == 2, r
    assert "-i /keys/deploy" in (home / "my-ssh.args").read_text()
