"""The output contract and the words of failures, on the real Docker engine (docs/cli.md): logs and
delete under -o json, `logs -f` ended by a real SIGINT, a stopped service's status, and failure hints
that point at a log that is really there, where they say."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import EXAMPLES, ROOT, fnctl, http, needs_docker

pytestmark = [pytest.mark.docker, needs_docker]


def deploy(name, *args):
    return fnctl("deploy", "service", name, "--local", "-o", "json", *args)


@pytest.fixture
def echo(service):
    r = deploy(service, "-f", str(EXAMPLES / "bash-echo"), "--build-template", "bash")
    assert r.code == 0, r
    return service, json.loads(r.out)["url"]


def test_logs_and_delete_speak_json(echo):
    service, url = echo
    assert http(url, b"hello")[0] == 200
    r = fnctl("logs", "service", service, "--local", "-o", "json")
    assert r.code == 0, r
    lines = [json.loads(line) for line in r.out.splitlines()]
    assert {entry["service"] for entry in lines} == {service}
    assert any(entry["line"].startswith("fnctl-bridge: ready") for entry in lines)
    r = fnctl("delete", "svc", service, "--local", "-o", "json")
    assert r.code == 0, r
    answer = json.loads(r.out)
    assert answer["target"] == "local" and [(d["kind"], d["name"]) for d in answer["deleted"]] == [("service", service)]
    assert f"container fnctl-{service}-00001" in answer["deleted"][0]["removed"]
    r = fnctl("describe", "ksvc", service, "--local", "-o", "json")
    assert r.code == 3 and json.loads(r.out)["error"] == "not-found"


def test_ctrl_c_ends_logs_follow_quietly_with_exit_0(echo):
    service, url = echo
    proc = subprocess.Popen([sys.executable, "-m", "fnctl", "logs", "service", service, "--local", "-f",
                             "-o", "json"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(proc.stdout.readline())          # it is following: the log has arrived
        assert first["service"] == service
        http(url, b"more")
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert err == ""                                       # no "interrupted", no traceback
    assert all(json.loads(line)["service"] == service for line in out.splitlines())


def test_a_stopped_service_does_not_show_its_old_readiness_message(echo):
    service, _ = echo
    subprocess.run(["docker", "stop", "-t", "2", f"fnctl-{service}-00001"], check=True, capture_output=True)
    info = json.loads(fnctl("describe", "service", service, "--local", "-o", "json").out)
    assert info["ready"] is False and info["reason"].startswith("Exited")
    assert "ready" not in (info["message"] or "")
    human = fnctl("describe", "service", service, "--local").out
    assert "fnctl-bridge: ready" not in human


def hint_follows_log(err: str) -> None:
    """The log tail (`  | ` lines) comes before the hint, and the hint says so."""
    lines = err.splitlines()
    hint = next(i for i, line in enumerate(lines) if line.startswith("  Hint: "))
    logged = [i for i, line in enumerate(lines) if line.startswith("  | ")]
    assert logged and max(logged) < hint, err
    assert "below" not in lines[hint] and "above" in lines[hint], err


def test_a_function_exiting_at_start_hints_at_the_log_above(service, tmp_path):
    src = tmp_path / "fn"
    src.mkdir()
    (src / "function.sh").write_text("echo 'about to fail' >&2\nexit 4\n")
    r = deploy(service, "-f", str(src), "--build-template", "bash")
    assert r.code == 6, r
    hint_follows_log(r.err)
    assert "about to fail" in json.loads(r.out)["details"]


def test_a_timeout_shows_the_log_it_promises(service, tmp_path):
    src = tmp_path / "fn"
    src.mkdir()
    (src / "function.sh").write_text("sleep 600\nhandler() { echo hi; }\n")    # never gets ready, silent
    r = deploy(service, "-f", str(src), "--build-template", "bash", "--timeout", "3s")
    assert r.code == 7, r
    hint_follows_log(r.err)
    assert json.loads(r.out)["details"] == "(the container printed nothing)"
