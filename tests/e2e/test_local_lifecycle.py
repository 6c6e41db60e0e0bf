"""Redeploys without a dark moment, and Ctrl-C that leaves nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

import pytest

from tests.conftest import EXAMPLES, ROOT, fnctl, needs_docker

pytestmark = [pytest.mark.docker, needs_docker]




def test_redeploys_never_drop_a_request(service, tmp_path):
    src = tmp_path / "fn"
    shutil.copytree(EXAMPLES / "bash-echo", src)
    r = fnctl("deploy", "service", service, "-f", str(src), "--build-template", "bash", "--local", "-o", "json")
    assert r.code == 0, r
    url = json.loads(r.out)["url"]
    stop = threading.Event()
    answers: list[str] = []
    failures: list[str] = []

    def client():
        while not stop.is_set():
            try:
                with urllib.request.urlopen(urllib.request.Request(url, data=b"z"), timeout=10) as resp:
                    answers.append(resp.read().decode().split()[0])
            except Exception as e:           # any failure at all is what this test is about
                failures.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for word in ("Second", "Third"):
            (src / "function.sh").write_text((EXAMPLES / "bash-echo" / "function.sh").read_text()
                                             .replace("Echoing", word))
            r = fnctl("deploy", "service", service, "-f", str(src), "--build-template", "bash", "--local", "-q")
            assert r.code == 0, r
            time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert {"Echoing", "Second", "Third"} <= set(answers)
    assert answers[-1] == "Third"


def _interrupt_when(args, marker, env=None):
    """Run a deploy, send SIGINT once `marker` shows on stderr; (exit code, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "fnctl", "deploy", "service", *args, "--local"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if marker in line:
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    return proc.returncode, "".join(seen) + rest


def _leftovers(service):
    return subprocess.run(["docker", "ps", "-aq", "--filter", f"label=fnctl.dev/service={service}"],
                          capture_output=True, text=True).stdout.split()


def test_ctrl_c_during_build_leaves_nothing(service, tmp_path):
    # A template of the test's own whose build has a long step, so the interrupt lands in it.
    slow = tmp_path / "templates" / "slow"
    slow.mkdir(parents=True)
    (slow / "template.yaml").write_text(
        "name: slow\nparameters:\n  - {name: DIRECTORY, default: .}\n  - {name: NONCE}\ndockerfile: Dockerfile\n")
    (slow / "Dockerfile").write_text("FROM fnctl-local/debian:bookworm\nARG NONCE\n"
                                     "RUN echo slow-step-begins $NONCE && sleep 120\nCOPY src/ /app/\n")
    code, err = _interrupt_when([service, "-f", str(EXAMPLES / "bash-echo"), "--build-template", "slow",
                                 "--build-argument", f"NONCE={uuid.uuid4().hex}"], "slow-step-begins",
                                env={"FNCTL_TEMPLATES_DIR": str(tmp_path / "templates")})
    assert code == 130, err
    assert "interrupted during the build" in err and "Traceback" not in err
    assert _leftovers(service) == []
    images = subprocess.run(["docker", "images", "-q", f"fnctl/{service}"], capture_output=True, text=True)
    assert images.stdout.split() == []


def test_ctrl_c_while_waiting_removes_the_new_revision(service, tmp_path):
    src = tmp_path / "fn"
    src.mkdir()
    # Sourcing the handler file takes a minute, so the bridge is not ready when the interrupt comes.
    (src / "function.sh").write_text("sleep 60\nhandler () { echo hi; }\n")
    code, err = _interrupt_when([service, "-f", str(src), "--build-template", "bash"], "waiting for")
    assert code == 130, err
    assert f"interrupted: {service}-00001 was removed" in err and "Traceback" not in err
    assert _leftovers(service) == []
