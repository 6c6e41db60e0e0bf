"""`fnctl set registry-auth`: the dockerconfigjson Secret, and the password nowhere else."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, Result, fnctl

pytest.importorskip("tests.fakekube")

PASSWORD = "s3cr3t-Pa55word"
AUTH = base64.b64encode(f"ci:{PASSWORD}".encode()).decode()


@pytest.fixture
def env(fake, tmp_path):
    return {"KUBECONFIG": str(tmp_path / "kubeconfig"), "HOME": str(tmp_path)}


def set_auth(env: dict, *args: str, password: str = PASSWORD, name: str = "regcred") -> Result:
    proc = subprocess.run([sys.executable, "-m", "fnctl", "set", "registry-auth", name, *args],
                          input=password + "\n", capture_output=True, text=True, env={**os.environ, **env},
                          timeout=60, cwd=ROOT)
    return Result(proc)


def docker_config(secret: dict) -> dict:
    return json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))


def leaked(*texts: str, password: str = PASSWORD) -> bool:
    encoded = base64.b64encode(f"ci:{password}".encode()).decode()
    return any(password in t or encoded in t for t in texts)


@pytest.mark.parametrize("output", ["human", "json", "yaml"])
def test_the_secret_holds_what_docker_and_kaniko_read(fake, env, output):
    r = set_auth(env, "--registry", "registry.example.com:5000", "--username", "ci", "--password-stdin",
                 "-o", output)
    assert r.code == 0, r
    assert not leaked(r.out, r.err), r
    secret = fake.get("secrets", "regcred")
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "fnctl"
    assert docker_config(secret) == {"auths": {"registry.example.com:5000": {
        "username": "ci", "password": PASSWORD, "auth": AUTH}}}
    if output == "json":
        assert json.loads(r.out) == {"name": "regcred", "namespace": "default", "registry": "registry.example.com:5000",
                                     "username": "ci", "type": "kubernetes.io/dockerconfigjson", "created": True}
    elif output == "human":
        assert r.out.startswith("Secret regcred created in namespace default")


def test_setting_it_again_replaces_the_password(fake, env):
    assert set_auth(env, "--registry", "reg.example", "--username", "ci", "--password-stdin").code == 0
    again = set_auth(env, "--registry", "reg.example", "--username", "ci", "--password-stdin", "-o", "json",
                     password="n3w-one-Pa55")
    assert again.code == 0, again
    assert json.loads(again.out)["created"] is False
    assert docker_config(fake.get("secrets", "regcred"))["auths"]["reg.example"]["password"] == "n3w-one-Pa55"
    assert not leaked(again.out, again.err, password="n3w-one-Pa55")
    # Secrets are never read back: create, then an unconditional update (the Role needs no `get`).
    secret_calls = [(m, p) for m, p, _ in fake.requests if "/secrets" in p]
    assert [m for m, _ in secret_calls] == ["POST", "POST", "PUT"]


def test_a_refused_request_does_not_show_the_password(fake, env):
    fake.forbid("create", "secrets")
    r = set_auth(env, "--registry", "reg.example", "--username", "ci", "--password-stdin", "-o", "json")
    assert r.code == 8, r
    assert "forbidden" in r.err.lower() and "secrets" in r.err
    assert not leaked(r.out, r.err)
    assert fake.get("secrets", "regcred") is None


@pytest.mark.parametrize("args,message", [
    (["--registry", "reg.example", "--username", "ci"], "--password-stdin"),       # no password on the command line
    (["--registry", "reg.example", "--username", "c:i", "--password-stdin"], "invalid --username"),
    (["--registry", "reg example", "--username", "ci", "--password-stdin"], "invalid --registry"),
])
def test_bad_input(fake, env, args, message):
    r = set_auth(env, *args)
    assert r.code == 2, r
    assert message in r.err and not leaked(r.out, r.err)
    assert fake.get("secrets", "regcred") is None


def test_there_is_no_password_option(fake, env):
    r = fnctl("set", "registry-auth", "regcred", "--registry", "r", "--username", "ci", "--password", PASSWORD,
              env=env)
    assert r.code == 2 and "No such option" in r.err


def test_empty_password_and_bad_name(fake, env):
    empty = set_auth(env, "--registry", "reg.example", "--username", "ci", "--password-stdin", password="")
    assert empty.code == 2 and "no password" in empty.err, empty
    bad = set_auth(env, "--registry", "r", "--username", "ci", "--password-stdin", name="Reg_Cred")
    assert bad.code == 2 and "invalid Secret name" in bad.err, bad


def test_on_the_local_target_it_points_at_docker_login(tmp_path):
    r = set_auth({"KUBECONFIG": str(tmp_path / "none"), "HOME": str(tmp_path)}, "--registry", "reg.example",
                 "--username", "ci", "--password-stdin")
    assert r.code == 2, r
    assert "docker login reg.example" in r.err and not leaked(r.out, r.err)


def test_deploys_push_and_pull_with_the_configured_secret(tmp_path, function_dir):
    """cluster.registry-secret in the config file: kaniko's pods mount it, the Service pulls with it."""
    (tmp_path / "config.yaml").write_text("cluster:\n  registry-secret: regcred\n")
    r = fnctl("deploy", "service", "hello", "-f", str(function_dir), "--build-template", "bash", "--dry-run",
              "-o", "json", env={"KUBECONFIG": str(tmp_path / "none"), "HOME": str(tmp_path),
                                 "FNCTL_CONFIG": str(tmp_path / "config.yaml")})
    assert r.code == 0, r
    objects = json.loads(r.out)
    pods = [o for o in objects if o["kind"] == "Pod"]
    assert pods and all({"name": "docker-config", "secret": {
        "secretName": "regcred", "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}}
        in p["spec"]["volumes"] for p in pods)
    service = next(o for o in objects if o["kind"] == "Service")
    assert service["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
