"""The real command line against the fake cluster: options, output contract, exit codes."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.cluster.conftest import validate_service
from tests.conftest import fnctl

pytest.importorskip("tests.fakekube")


@pytest.fixture
def env(fake, tmp_path):
    return {"KUBECONFIG": str(tmp_path / "kubeconfig"), "HOME": str(tmp_path)}


def deploy(env, *args):
    return fnctl("deploy", "service", *args, env=env, timeout=120)


def test_deploy_uses_the_cluster_when_a_kubeconfig_exists(fake, env, function_dir):
    r = deploy(env, "hello", "-f", str(function_dir), "--build-template", "bash", "--timeout", "60s",
               "--env", "GREETING=hi", "--label", "team=a", "--annotation", "note=x",
               "--min-scale", "1", "--max-scale", "3", "--concurrency-target", "5", "--concurrency", "10")
    assert r.code == 0, r
    assert r.out.strip() == "Service hello URL: http://hello.default.example.com"
    for phase in ("source", "build", "deploy", "wait"):
        assert f"{phase:>8}" in r.err
    assert "using the local Docker engine" not in r.err
    ksvc = fake.get("services.serving.knative.dev", "hello")
    validate_service({k: ksvc[k] for k in ("apiVersion", "kind", "metadata", "spec")})
    template = ksvc["spec"]["template"]
    assert template["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"] == "1"
    assert template["metadata"]["annotations"]["autoscaling.knative.dev/max-scale"] == "3"
    assert template["metadata"]["annotations"]["autoscaling.knative.dev/target"] == "5"
    assert template["spec"]["containerConcurrency"] == 10
    container = template["spec"]["containers"][0]
    assert {"name": "GREETING", "value": "hi"} in container["env"]
    assert "@sha256:" in container["image"]
    assert ksvc["metadata"]["labels"]["team"] == "a"

    url = fnctl("describe", "service", "hello", "-o", "url", env=env)
    assert url.code == 0 and url.out.strip() == "http://hello.default.example.com"
    listed = json.loads(fnctl("get", "service", "-o", "json", env=env).out)
    assert [(s["name"], s["ready"], s["revision"], s["target"]) for s in listed] == \
        [("hello", True, "hello-00001", "cluster")]
    table = fnctl("get", "service", env=env).out.splitlines()
    assert table[0].split() == ["NAME", "URL", "REVISION", "AGE", "READY", "REASON"]
    assert table[1].split()[:3] == ["hello", "http://hello.default.example.com", "hello-00001"]
    assert table[1].split()[4] == "True" and table[1].split()[3][-1] in "smhdy"

    again = deploy(env, "hello", "-f", str(function_dir), "--build-template", "bash", "-o", "json")
    assert again.code == 0, again

    assert fnctl("delete", "service", "hello", env=env).code == 0
    assert fake.get("services.serving.knative.dev", "hello") is None
    gone = fnctl("describe", "service", "hello", env=env)
    assert gone.code == 3 and "hello" in gone.err


def test_local_flag_ignores_the_kubeconfig(fake, env):
    r = fnctl("get", "service", "--local", "-o", "json", env={**env, "DOCKER_HOST": "unix:///nonexistent.sock"})
    assert r.code == 4 and "Docker engine" in r.err      # it went to Docker, not to the cluster


@pytest.mark.parametrize("mode,code,message", [
    ("fail", 6, "RevisionFailed"),
    ("never", 7, "was not ready within 3s; still waiting for Ready"),
])
def test_knative_failures_exit_codes(fake, env, function_dir, mode, code, message):
    fake.knative.mode = mode
    r = deploy(env, "hello", "-f", str(function_dir), "--build-template", "bash", "--timeout", "3s", "-o", "json")
    assert r.code == code, r
    assert message in r.err
    assert json.loads(r.out)["exitCode"] == code


def test_build_failure_shows_the_log_tail(fake, env, function_dir):
    fake.kubelet.mode = "fail"
    r = deploy(env, "hello", "-f", str(function_dir), "--build-template", "bash")
    assert r.code == 5, r
    assert "error building image" in r.err and "  | " in r.err and "Traceback" not in r.err


def test_forbidden_and_missing_knative(fake, env, function_dir):
    fake.forbid("create", "pods")
    r = deploy(env, "hello", "-f", str(function_dir), "--build-template", "bash")
    assert r.code == 8, r
    assert "create" in r.err and "pods" in r.err and "default" in r.err
    fake.knative_installed = False
    r = fnctl("get", "service", env=env)
    assert r.code == 4 and "Knative Serving is not installed" in r.err


def test_buildtemplates_on_the_cluster(fake, env, tmp_path):
    folder = tmp_path / "team"
    folder.mkdir()
    (folder / "template.yaml").write_text(
        "name: team-bash\nruntime: team bash\nparameters:\n  - {name: DIRECTORY, default: .}\n"
        "dockerfileInline: |\n  FROM debian:bookworm-slim\n  COPY src/ /app/\n")
    r = fnctl("deploy", "buildtemplate", "-f", str(folder), env=env)
    assert r.code == 0, r
    listed = {t["name"]: t["origin"] for t in json.loads(fnctl("get", "buildtemplate", "-o", "json", env=env).out)}
    assert listed["team-bash"] == "cluster:default" and listed["bash"] == "built-in"
    assert fnctl("delete", "buildtemplate", "team-bash", env=env).code == 0
    listed = {t["name"] for t in json.loads(fnctl("get", "buildtemplate", "-o", "json", env=env).out)}
    assert "team-bash" not in listed
    missing = fnctl("delete", "buildtemplate", "team-bash", env=env)
    assert missing.code == 3


def test_dry_run_needs_no_cluster_and_validates(tmp_path, function_dir):
    r = fnctl("deploy", "service", "hello", "-f", str(function_dir), "--build-template", "bash", "--dry-run",
              "-o", "json", env={"KUBECONFIG": str(tmp_path / "none"), "HOME": str(tmp_path)})
    assert r.code == 0, r
    objects = json.loads(r.out)
    kinds = [o["kind"] for o in objects]
    assert kinds.count("Pod") == 2 and "Service" in kinds and "ConfigMap" in kinds
    validate_service(next(o for o in objects if o["kind"] == "Service"))


def test_logs_on_the_cluster_points_at_kubectl(fake, env):
    r = fnctl("logs", "service", "hello", "-f", env=env)
    assert r.code == 2, r
    assert "kubectl logs -n default -l serving.knative.dev/service=hello -c user-container -f" in r.err


def _ksvc(name: str, labels: dict) -> dict:
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"template": {"spec": {"containers": [{"image": "example.com/app@sha256:" + "a" * 64}]}}}}


@pytest.mark.parametrize("args", [
    ["delete", "service", "."], ["delete", "service", ".."], ["delete", "service", ""],
    ["describe", "service", "."], ["get", "service", ".."], ["get", "service", ""], ["logs", "service", "."],
    ["delete", "buildtemplate", "."], ["delete", "buildtemplate", ".."], ["get", "buildtemplate", ".."],
    ["get", "service", "-n", ".."], ["delete", "service", "other", "-n", "."],
])
def test_dot_names_never_reach_the_api(fake, env, args):
    """Issue 10: `fnctl delete service . --cluster` sent DELETE to the collection path."""
    fake.create(_ksvc("other", {"team": "a"}))
    fake.requests.clear()
    r = fnctl(*args, "--cluster", env=env)
    assert r.code == 2, r
    assert "invalid" in r.err and "Traceback" not in r.err
    assert [req for req in fake.requests if req[0] != "GET" or "/services" in req[1]] == []
    assert fake.get("services.serving.knative.dev", "other") is not None


def test_cluster_delete_touches_only_what_fnctl_made(fake, env):
    fake.create(_ksvc("other", {"team": "a"}))
    fake.create(_ksvc("mine", {"app.kubernetes.io/managed-by": "fnctl", "fnctl.dev/service": "mine"}))
    refused = fnctl("delete", "service", "other", env=env)
    assert refused.code == 2, refused
    assert "not made by fnctl" in refused.err and "--force" in refused.err
    assert fake.get("services.serving.knative.dev", "other") is not None
    assert not [req for req in fake.requests if req[0] == "DELETE"]

    assert fnctl("delete", "service", "mine", env=env).code == 0
    assert fake.get("services.serving.knative.dev", "mine") is None
    forced = fnctl("delete", "service", "other", "--force", env=env)
    assert forced.code == 0, forced
    assert fake.get("services.serving.knative.dev", "other") is None

    fake.create({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "fnctl-buildtemplate-theirs", "namespace": "default"}, "data": {}})
    kept = fnctl("delete", "buildtemplate", "theirs", env=env)
    assert kept.code == 2 and "not made by fnctl" in kept.err, kept
    assert fake.get("configmaps", "fnctl-buildtemplate-theirs") is not None


def test_git_credentials_stay_out_of_output_and_annotations(fake, env, tmp_path, function_dir):
    from tests.conftest import git

    repo = tmp_path / "repo"
    shutil.copytree(function_dir, repo)
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", ".", cwd=repo)
    git("commit", "-qm", "v1", cwd=repo)
    url = "https://ci:tok3n-cluster@git.example/team/fn.git"
    (tmp_path / "gitconfig").write_text(f'[url "file://{repo}"]\n\tinsteadOf = {url}\n')
    r = deploy({**env, "GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig")}, "hello", "-f", url,
               "--build-template", "bash", "-o", "json")
    assert r.code == 0, r
    assert "tok3n" not in r.out + r.err
    ksvc = fake.get("services.serving.knative.dev", "hello")
    assert ksvc["metadata"]["annotations"]["fnctl.dev/source"].startswith("https://git.example/team/fn.git@")
    assert "tok3n" not in json.dumps(ksvc)


def test_build_namespace_on_the_command_line(fake, env, function_dir):
    fake.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "builds"}})
    r = deploy(env, "hello", "-f", str(function_dir), "--build-template", "bash", "--build-namespace", "builds",
               "-o", "json")
    assert r.code == 0, r
    assert json.loads(r.out)["namespace"] == "default"
    assert {p for m, p, _ in fake.requests if m == "POST" and p.endswith("/pods")} == {"/api/v1/namespaces/builds/pods"}
    bad = deploy(env, "hello", "-f", str(function_dir), "--build-template", "bash", "--build-namespace", "..")
    assert bad.code == 2 and "invalid namespace '..'" in bad.err
