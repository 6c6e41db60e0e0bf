"""Bad input: a clear message, a documented exit code, never a traceback."""

from __future__ import annotations

import json

import pytest

from tests.conftest import EXAMPLES, fnctl

BASH = str(EXAMPLES / "bash-echo")


@pytest.mark.parametrize("args,code,message", [
    (["Bad_Name", "-f", BASH, "--build-template", "bash"], 2, "invalid service name 'Bad_Name'"),
    (["x" * 64, "-f", BASH, "--build-template", "bash"], 2, "longer than 63 characters"),
    (["ok", "-f", BASH, "--build-template", "cobol"], 2, "unknown build template 'cobol'"),
    (["ok", "-f", "/nonexistent/src", "--build-template", "bash"], 2, "source '/nonexistent/src' does not exist"),
    (["ok", "-f", BASH, "--build-template", "bash", "--build-argument", "HANDLER"], 2,
     "--build-argument 'HANDLER' is not of the form KEY=VALUE"),
    (["ok", "-f", BASH, "--build-template", "bash", "--env", "NOVALUE"], 2,
     "--env 'NOVALUE' is not of the form KEY=VALUE"),
    (["ok", "-f", BASH, "--build-template", "bash", "--build-argument", "NOPE=1"], 2,
     "build template 'bash' has no parameter 'NOPE'"),
    (["ok", "-f", "file:///nonexistent/repo.git", "--build-template", "bash"], 2, "cannot clone"),
    (["ok", "-f", BASH, "--build-template", "bash", "--timeout", "soon"], 2, "invalid duration 'soon'"),
    (["ok", "-f", BASH, "--build-template", "bash", "--revision", "main"], 2, "needs a git URL"),
    (["ok", "-f", "file:///nonexistent/repo.git", "--build-template", "bash", "--revision",
      "--upload-pack=touch /tmp/fnctl-pwned; git-upload-pack"], 2, "invalid --revision"),
    (["ok", "-f", BASH, "--build-template", "bash", "--build-argument", "DIRECTORY=nope"], 2,
     "DIRECTORY 'nope' does not exist"),
    (["ok", "-f", BASH, "--build-template", "bash", "--memory", "12XB"], 2, "--memory '12XB' is not a memory quantity"),
    (["ok", "-f", BASH, "--build-template", "bash", "--memory", "1Ki"], 2, "--memory '1Ki' is less than 6Mi"),
    (["ok", "-f", BASH, "--build-template", "bash", "--cpu", "half"], 2, "--cpu 'half' is not a CPU quantity"),
    (["ok", "-f", BASH, "--build-template", "bash", "--cpu", "0"], 2, "--cpu '0' is not a CPU quantity"),
])
def test_bad_deploy_input(args, code, message):
    r = fnctl("deploy", "service", *args, "--local")
    assert r.code == code, r
    assert message in r.err
    assert "Hint:" in r.err
    assert "Traceback" not in r.err + r.out


@pytest.mark.parametrize("command", ["delete", "describe", "logs", "get"])
def test_local_commands_refuse_dot_names(command):
    r = fnctl(command, "service", "..", "--local")
    assert r.code == 2, r
    assert "invalid service name '..'" in r.err


def test_errors_as_json_with_output_json():
    r = fnctl("deploy", "service", "Bad", "-f", BASH, "--build-template", "bash", "--local", "-o", "json")
    assert r.code == 2
    body = json.loads(r.out)
    assert body["error"] == "usage" and body["exitCode"] == 2 and "invalid service name" in body["message"]


def test_cluster_requested_without_kubeconfig(tmp_path):
    r = fnctl("get", "service", "--cluster", env={"KUBECONFIG": str(tmp_path / "none"), "HOME": str(tmp_path)})
    assert r.code == 4, r
    assert "no Kubernetes configuration found" in r.err and "--local" in r.err


def test_help_everywhere():
    for args in (["--help"], ["deploy", "service", "--help"], ["get", "buildtemplate", "--help"],
                 ["describe", "service", "--help"], ["delete", "service", "--help"]):
        r = fnctl(*args)
        assert r.code == 0 and "Usage:" in r.out


def test_get_buildtemplate_lists_bash_with_parameters():
    r = fnctl("get", "buildtemplate", "-o", "json")
    assert r.code == 0, r
    bash = next(t for t in json.loads(r.out) if t["name"] == "bash")
    assert bash["origin"] == "built-in" and "aws-custom-runtime" in bash["aliases"]
    assert {"name": "HANDLER", "default": "function.handler"}.items() <= bash["parameters"][1].items()
    human = fnctl("get", "buildtemplate")
    assert human.out.splitlines()[0].split() == ["NAME", "RUNTIME", "PARAMETERS", "SOURCE"]
