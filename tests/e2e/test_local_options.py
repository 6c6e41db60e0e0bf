"""Cluster options with --local through the real CLI: applied where they mean something, else exit 2;
and the local dry run, which needs no engine."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import EXAMPLES, fnctl, http, needs_docker

BASH = str(EXAMPLES / "bash-echo")
NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


@pytest.mark.parametrize("option", [["--annotation", "a=b"], ["--concurrency-target", "5"],
                                    ["--kaniko-image", "k:1"], ["--registry-secret", "creds"],
                                    ["--insecure-registry"], ["--registry-host", "registry.example"],
                                    ["--min-scale", "3"], ["--concurrency", "0"]])
def test_a_cluster_option_that_cannot_apply_exits_2_naming_it(option):
    r = fnctl("deploy", "service", "opt", "-f", BASH, "--build-template", "bash", "--local", *option,
              env=NO_ENGINE)
    assert r.code == 2, r
    assert option[0] in r.err and "do not apply to the local target" in r.err and "Hint:" in r.err


def test_the_json_error_choice_comes_from_the_command_not_from_argv_guessing():
    r = fnctl("deploy", "service", "opt", "-o", "json", "-f", BASH, "--build-template", "bash", "--local",
              "--annotation", "a=b", env=NO_ENGINE)
    assert r.code == 2 and json.loads(r.out)["error"] == "usage"
    # Here "-o" is the value of --env-secret and "json" the service name: the output is human.
    r = fnctl("deploy", "service", "--env-secret", "-o", "json", "-f", BASH, "--build-template", "cobol",
              "--local", env=NO_ENGINE)
    assert r.code == 2 and r.out == "", r


def test_env_secret_names_a_file_on_the_local_target(tmp_path):
    r = fnctl("deploy", "service", "opt", "-f", BASH, "--build-template", "bash", "--local",
              "--env-secret", str(tmp_path / "missing.env"), env=NO_ENGINE)
    assert r.code == 2 and "no such file" in r.err and "KEY=VALUE" in r.err


def test_local_dry_run_shows_the_plan_without_an_engine(tmp_path):
    secrets = tmp_path / "s.env"
    secrets.write_text("TOKEN=abc\n")
    r = fnctl("deploy", "service", "plan", "-f", BASH, "--build-template", "bash", "--local", "--dry-run",
              "--concurrency", "2", "--env", "A=1", "--env-secret", str(secrets), "-o", "json", env=NO_ENGINE)
    assert r.code == 0, r
    objects = json.loads(r.out)
    assert [(o["kind"], o.get("role")) for o in objects] == [("Image", "runtime"), ("Image", "function"),
                                                             ("Container", None)]
    runtime, function, container = objects
    assert runtime["name"].startswith("fnctl-runtime/bash:") and "bridge/main.go" in runtime["context"]["files"]
    assert f'ARG RUNTIME_IMAGE="{runtime["name"]}"' in function["dockerfile"]
    assert container["name"] == "fnctl-plan-00001" and container["image"] == function["name"]
    assert container["env"]["INVOKER_COUNT"] == "2" and container["env"]["TOKEN"] == "abc"
    assert container["labels"]["fnctl.dev/env-names"] == '["A"]' and container["env"]["A"] == "1"
    assert [p for p in ("source", "runtime", "build", "deploy") if f"{p:>8}  " in r.err] == \
        ["source", "runtime", "build", "deploy"]


def test_local_dry_run_refuses_what_a_deploy_refuses():
    r = fnctl("deploy", "service", "plan", "-f", BASH, "--build-template", "bash", "--local", "--dry-run",
              "--kaniko-image", "k:1", env=NO_ENGINE)
    assert r.code == 2 and "--kaniko-image" in r.err


@needs_docker
def test_concurrency_and_env_file_reach_the_running_function(service, tmp_path):
    secrets = tmp_path / "s.env"
    secrets.write_text("GREETING=from-file\n")
    r = fnctl("deploy", "service", service, "-f", BASH, "--build-template", "bash", "--local",
              "--concurrency", "1", "--env-secret", str(secrets), "--label", "team=a", "-o", "json")
    assert r.code == 0, r
    result = json.loads(r.out)
    assert result["env"] == {} and list(result["phases"]) == ["source", "runtime", "build", "deploy", "wait"]
    status, body, _ = http(result["url"], data=b'{"text": "hi"}')
    assert status == 200, body
    inspect = json.loads(subprocess.run(["docker", "inspect", f"fnctl-{service}-00001"], capture_output=True,
                                        text=True, check=True).stdout)[0]
    env = dict(e.split("=", 1) for e in inspect["Config"]["Env"])
    assert env["INVOKER_COUNT"] == "1" and env["GREETING"] == "from-file"
    assert inspect["Config"]["Labels"]["team"] == "a"
    logs = fnctl("logs", "service", service, "--local")
    assert logs.code == 0 and "with 1 invokers" in logs.out, logs
