"""A Go Runtime API program (the go-echo fixture) behind the real bridge, on the host."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.runtimes.helpers import FIXTURES


@pytest.fixture(scope="module")
def go_echo(tmp_path_factory, bridge_binary):
    out = tmp_path_factory.mktemp("go-echo") / "bootstrap"
    work = tmp_path_factory.mktemp("go-echo-src")
    shutil.copy(FIXTURES / "go-echo" / "main.go", work / "main.go")
    build = subprocess.run(["go", "build", "-o", str(out), "main.go"], cwd=work, capture_output=True, text=True,
                           env={**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOPROXY": "off"})
    assert build.returncode == 0, build.stderr
    return out


def test_echo(start_bridge, go_echo, tmp_path):
    b = start_bridge(go_echo, tmp_path, {"AWS_LAMBDA_FUNCTION_NAME": "go-fn"})
    r = b.invoke('{"name": "Gopher"}')
    assert r.status == 200
    body = r.json()
    assert body["greeting"] == "Hello Gopher!"
    assert body["arn"].endswith(":function:go-fn")
    assert int(body["deadline"]) > 0


def test_panic_is_an_error_and_the_runtime_goes_on(start_bridge, go_echo, tmp_path):
    b = start_bridge(go_echo, tmp_path)
    r = b.invoke('{"panic": "something broke"}')
    assert r.status == 500
    assert r.json()["errorType"] == "Runtime.Panic"
    assert r.json()["errorMessage"] == "something broke"
    assert any("main.handle" in line for line in r.json()["stackTrace"])
    assert b.invoke('{"name": "again"}').json()["greeting"] == "Hello again!"


def test_exiting_runtime_is_a_502_and_is_restarted(start_bridge, go_echo, tmp_path):
    b = start_bridge(go_echo, tmp_path)
    r = b.invoke('{"exit": 3}')
    assert r.status == 502
    assert b.invoke('{"name": "back"}').json()["greeting"] == "Hello back!"


def test_api_gateway_proxy_response_and_a_malformed_one(start_bridge, go_echo, tmp_path):
    b = start_bridge(go_echo, tmp_path, {"EVENT": "API_GATEWAY"})
    r = b.invoke(None, path="/hello?name=Gopher")
    assert r.status == 200
    assert r.headers["content-type"] == "text/plain"
    assert r.text == "Hello Gopher! (GET /hello)"
    bad = b.invoke(None, path="/hello?plain=1")          # not a proxy response: API Gateway's 502
    assert bad.status == 502
