"""The walking skeleton, end to end on the real Docker engine."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import EXAMPLES, ROOT, fnctl, git, http, needs_docker

pytestmark = [pytest.mark.docker, needs_docker]




def deploy(name, *args, env=None):
    return fnctl("deploy", "service", name, "--local", "-o", "json", *args, env=env)


def test_deploy_bash_echo_and_curl_it(service):
    r = deploy(service, "-f", str(EXAMPLES / "bash-echo"), "--build-template", "bash", "--wait")
    assert r.code == 0, r
    result = json.loads(r.out)
    assert result["url"].startswith("http://127.0.0.1:")
    assert result["revision"] == f"{service}-00001" and result["ready"] is True
    status, body, _ = http(result["url"], b'{"text":"netadmin"}')
    assert status == 200
    assert body.decode().strip() == "Echoing request: '{\"text\":\"netadmin\"}'"
    # The build log was shown while building, and the human form prints the URL line.
    assert "Step" in r.err and "build" in r.err
    human = fnctl("describe", "service", service, "--local", "-o", "url")
    assert human.out.strip() == result["url"]


def test_edit_and_redeploy_keeps_the_url(service, tmp_path):
    src = tmp_path / "fn"
    shutil.copytree(EXAMPLES / "bash-echo", src)
    first = json.loads(deploy(service, "-f", str(src), "--build-template", "bash").out)
    again = deploy(service, "-f", str(src), "--build-template", "bash")
    assert again.code == 0, again
    assert json.loads(again.out)["unchanged"] is True
    (src / "function.sh").write_text((src / "function.sh").read_text().replace("Echoing", "Edited"))
    r = deploy(service, "-f", str(src), "--build-template", "bash")
    assert r.code == 0, r
    second = json.loads(r.out)
    assert second["url"] == first["url"]
    assert second["revision"] == f"{service}-00002"
    assert http(second["url"], b"x")[1].decode().strip() == "Edited request: 'x'"
    listed = json.loads(fnctl("get", "service", "--local", "-o", "json").out)
    mine = [s for s in listed if s["name"] == service]
    assert len(mine) == 1 and mine[0]["revision"] == f"{service}-00002"


def test_deploy_from_git_with_revision_and_directory(service, tmp_path):
    repo = tmp_path / "repo"
    (repo / "functions" / "echo").mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=repo)
    fn = repo / "functions" / "echo" / "function.sh"
    fn.write_text((EXAMPLES / "bash-echo" / "function.sh").read_text().replace("Echoing", "Tagged"))
    git("add", ".", cwd=repo)
    git("commit", "-qm", "v1", cwd=repo)
    git("tag", "v1", cwd=repo)
    fn.write_text(fn.read_text().replace("Tagged", "Head"))
    git("commit", "-qam", "v2", cwd=repo)
    r = deploy(service, "-f", f"file://{repo}", "--revision", "v1", "--build-template", "aws-custom-runtime",
               "--build-argument", "DIRECTORY=functions/echo")
    assert r.code == 0, r
    assert http(json.loads(r.out)["url"], b"g")[1].decode().strip() == "Tagged request: 'g'"


def test_single_file_source_names_the_handler(service, tmp_path):
    (tmp_path / "hello.sh").write_text('handler () { echo "hello $1"; }\n')
    r = deploy(service, "-f", str(tmp_path / "hello.sh"), "--build-template", "bash")
    assert r.code == 0, r
    assert http(json.loads(r.out)["url"], b"you")[1].decode().strip() == "hello you"


def test_delete_stops_the_url_answering(service):
    url = json.loads(deploy(service, "-f", str(EXAMPLES / "bash-echo"), "--build-template", "bash").out)["url"]
    assert http(url, b"1")[0] == 200
    r = fnctl("delete", "service", service, "--local")
    assert r.code == 0 and f"Service {service} deleted" in r.out
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    gone = fnctl("describe", "service", service, "--local")
    assert gone.code == 3 and f"no local service named '{service}'" in gone.err


def test_container_exiting_at_start_fails_at_once_and_old_version_keeps_serving(service, tmp_path):
    good = tmp_path / "good"
    shutil.copytree(EXAMPLES / "bash-echo", good)
    url = json.loads(deploy(service, "-f", str(good), "--build-template", "bash").out)["url"]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "function.sh").write_text("# defines no handler\n")
    started = time.monotonic()
    r = deploy(service, "-f", str(bad), "--build-template", "bash", "--timeout", "5m")
    assert time.monotonic() - started < 60          # not the 5-minute timeout
    assert r.code == 6, r
    assert "exited at start" in r.err
    assert "defines no function 'handler'" in r.err     # the log tail names the cause
    assert json.loads(r.out)["error"] == "deploy"
    # The previous revision still answers on the same URL; no half-made container is left.
    assert http(url, b"still")[1].decode().strip() == "Echoing request: 'still'"
    info = json.loads(fnctl("describe", "service", service, "--local", "-o", "json").out)
    assert info["revision"] == f"{service}-00001"
    ps = subprocess.run(["docker", "ps", "-a", "--filter", f"label=fnctl.dev/service={service}",
                                       "--format", "{{.Names}}"], capture_output=True, text=True).stdout.split()
    assert ps == [f"fnctl-{service}-00001"]


def test_failing_build_shows_the_step_and_log_tail(service):
    r = deploy(service, "-f", str(EXAMPLES / "bash-echo"), "--build-template", "bash",
               "--build-argument", "BASE_IMAGE=fnctl-local/does-not-exist:1")
    assert r.code == 5, r
    assert "the image build failed at Step" in r.err and "FROM" in r.err
    assert "  | " in r.err                                 # the log tail
    assert fnctl("describe", "service", service, "--local").code == 3


def test_no_free_port(service):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = deploy(service, "-f", str(EXAMPLES / "bash-echo"), "--build-template", "bash",
                   env={"FNCTL_LOCAL_PORTS": f"{port}-{port}"})
    assert r.code == 4, r
    assert f"no free port on 127.0.0.1 in {port}-{port}" in r.err and "FNCTL_LOCAL_PORTS" in r.err


def test_docker_engine_unreachable(service):
    r = deploy(service, "-f", str(EXAMPLES / "bash-echo"), "--build-template", "bash",
               env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert r.code == 4, r
    assert "cannot reach the Docker engine" in r.err and "dockerd" in r.err
    assert "Traceback" not in r.err


def test_handler_error_is_a_lambda_error(service, tmp_path):
    (tmp_path / "function.sh").write_text('handler () { echo "bad things" >&2; return 3; }\n')
    r = deploy(service, "-f", str(tmp_path), "--build-template", "bash")
    assert r.code == 0, r
    status, body, headers = http(json.loads(r.out)["url"], b"{}")
    assert status == 500
    error = json.loads(body)
    assert error["errorType"] == "HandlerError" and "status 3" in error["errorMessage"]
    assert headers.get("X-Amz-Function-Error") == "Unhandled"


def test_api_gateway_mapping(service, tmp_path):
    (tmp_path / "function.sh").write_text(
        'handler () {\n'
        '  local method=unknown\n'
        '  case "$1" in *\'"httpMethod":"PUT"\'*) method=PUT;; esac\n'
        '  printf \'{"statusCode":201,"headers":{"Content-Type":"text/plain","X-Method":"%s"},'
        '"body":"made"}\' "$method"\n'
        '}\n')
    r = deploy(service, "-f", str(tmp_path), "--build-template", "bash", "--build-argument", "EVENT=API_GATEWAY")
    assert r.code == 0, r
    url = json.loads(r.out)["url"]
    status, body, headers = http(url + "/items?id=1", b"x", method="PUT")
    assert (status, body) == (201, b"made")
    assert headers["X-Method"] == "PUT" and headers["Content-Type"] == "text/plain"


def test_logs_show_the_functions_stderr(service):
    url = json.loads(deploy(service, "-f", str(EXAMPLES / "bash-echo"), "--build-template", "bash").out)["url"]
    assert http(url, b'{"text":"first"}')[0] == 200
    r = fnctl("logs", "service", service, "--local")
    assert r.code == 0, r
    assert "fnctl-bridge: ready" in r.out and '{"text":"first"}' in r.out.splitlines()
    assert fnctl("logs", "service", service, "--local", "--tail", "1").out.splitlines() == ['{"text":"first"}']
    # --follow prints what happens next.
    follower = subprocess.Popen([sys.executable, "-m", "fnctl", "logs", "service", service, "--local", "-f",
                                 "--tail", "0"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        assert http(url, b'{"text":"later"}')[0] == 200
        line = follower.stdout.readline()
        assert line.strip() == '{"text":"later"}'
    finally:
        follower.kill()
        follower.wait()
    missing = fnctl("logs", "service", "nope-" + service, "--local")
    assert missing.code == 3 and "no local service named" in missing.err


def test_credentials_are_never_printed_or_stored(service, tmp_path):
    """Issue 10: a token in a git URL showed in progress lines, errors and -o json, and was kept in the
    container label; --env values were copied into a label. Git rewrites the credentialed https URL
    to a local repository (insteadOf), so fnctl handles the URL as a user would give it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    shutil.copy(EXAMPLES / "bash-echo" / "function.sh", repo / "function.sh")
    git("add", ".", cwd=repo)
    git("commit", "-qm", "v1", cwd=repo)
    token = "tok3n" + service[-8:]
    url = f"https://ci:{token}@git.example/team/fn.git"
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text(f'[url "file://{repo}"]\n\tinsteadOf = {url}\n')
    env = {"GIT_CONFIG_GLOBAL": str(gitconfig)}
    password = "pa$$-w0rd-" + service[-8:]          # the target's env shows it; labels must not
    r = deploy(service, "-f", url, "--build-template", "bash", "--env", f"DB_PASSWORD={password}", env=env)
    assert r.code == 0, r
    assert token not in r.out + r.err
    assert "https://git.example/team/fn.git" in r.err            # the source is still shown, bare
    described = fnctl("describe", "service", service, "--local", "-o", "json")
    assert json.loads(described.out)["env"] == {"DB_PASSWORD": password}
    labels = json.loads(subprocess.run(["docker", "inspect", "--format", "{{json .Config.Labels}}",
                                        f"fnctl-{service}-00001"], capture_output=True, text=True, check=True).stdout)
    assert labels["fnctl.dev/source"].startswith("https://git.example/team/fn.git@")
    assert token not in json.dumps(labels) and password not in json.dumps(labels)
    again = deploy(service, "-f", url, "--build-template", "bash", "--env", f"DB_PASSWORD={password}", env=env)
    assert json.loads(again.out)["unchanged"] is True, again
    changed = deploy(service, "-f", url, "--build-template", "bash", "--env", "DB_PASSWORD=other", env=env)
    assert json.loads(changed.out)["unchanged"] is False, changed

    failed = fnctl("deploy", "service", service, "--local", "-o", "json", "-f",
                   f"https://ci:{token}@127.0.0.1:9/nope.git", "--build-template", "bash")
    assert failed.code == 2 and "cannot clone https://127.0.0.1:9/nope.git" in failed.err, failed
    assert token not in failed.out + failed.err
