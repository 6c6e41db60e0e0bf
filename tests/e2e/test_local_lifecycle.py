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


@pytest.fixture
def service():
    name = f"t-{uuid.uuid4().hex[:8]}"
    yield name
    fnctl("delete", "service", name, "--local")


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


def test_ctrl_c_during_build_leaves_nothing(service):
    gid = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", "fnctl-local/golang:bookworm"],
                         capture_output=True, text=True, check=True).stdout.strip()
    # A GO_IMAGE spelt by id is a new runtime image: its build compiles the bridge, which takes a while.
    proc = subprocess.Popen(
        [sys.executable, "-m", "fnctl", "deploy", "service", service, "-f", str(EXAMPLES / "bash-echo"),
         "--build-template", "bash", "--local", "--build-argument", f"GO_IMAGE={gid}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "go build" in line:
            break
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(seen) + err
    assert "interrupted" in err and "Traceback" not in err
    left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=fnctl.dev/service={service}"],
                          capture_output=True, text=True).stdout.split()
    assert left == []
    assert fnctl("describe", "service", service, "--local").code == 3
