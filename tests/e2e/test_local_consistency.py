"""Concurrent deploys and deletes of one name, what a failed deploy leaves, and redeploys that keep
their settings: on the real Docker engine."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pytest

from tests.conftest import ROOT, fnctl, http, needs_docker

pytestmark = [pytest.mark.docker, needs_docker]


def echo_source(folder, word):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "function.sh").write_text(f'handler () {{\n  echo "{word} $1"\n}}\n')
    return folder


def start(*args):
    return subprocess.Popen([sys.executable, "-m", "fnctl", *args, "--local"], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())


def finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, getattr(proc, "seen", "") + err


def holding(*args):
    """A deploy started and seen waiting for its new revision: it holds the name's lock."""
    proc = start(*args)
    proc.seen = ""
    for line in proc.stderr:
        proc.seen += line
        if "waiting for" in line and "to answer" in line:
            return proc
    raise AssertionError(f"the deploy ended early: {proc.seen}")


def slow_source(folder, word):
    """A function that takes seconds to start: its deploy holds the lock that long."""
    echo_source(folder, word)
    (folder / "function.sh").write_text("sleep 4\n" + (folder / "function.sh").read_text())
    return folder


def waited_for(err: str) -> int | None:
    """The pid this command said it waited for, or None."""
    found = re.search(r"waiting for another deploy or delete of \S+ to finish \(pid (\d+)\)", err)
    return int(found.group(1)) if found else None


def containers(service):
    return subprocess.run(["docker", "ps", "-a", "--filter", f"label=fnctl.dev/service={service}",
                           "--format", "{{.Names}} {{.State}}"], capture_output=True, text=True).stdout.split("\n")[:-1]


def images(service):
    return subprocess.run(["docker", "images", "-q", f"fnctl/{service}"], capture_output=True,
                          text=True).stdout.split()


def refused(url):
    port = int(url.rsplit(":", 1)[1])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True


def test_two_deploys_of_a_new_name_at_once_the_last_one_serves(service, tmp_path):
    # Each takes seconds to start, so the first still holds the lock when the second reaches it.
    a, b = slow_source(tmp_path / "a", "from-a"), slow_source(tmp_path / "b", "from-b")
    procs = {"a": start("deploy", "service", service, "-f", str(a), "--build-template", "bash", "-o", "json"),
             "b": start("deploy", "service", service, "-f", str(b), "--build-template", "bash", "-o", "json")}
    done = {k: finish(p) for k, p in procs.items()}
    for code, _, err in done.values():
        assert code == 0, err
    # One waited for the other, said so with the other's pid, then deployed over it.
    waiters = [k for k, (_, _, err) in done.items() if waited_for(err)]
    assert len(waiters) == 1, {k: v[2] for k, v in done.items()}
    last = waiters[0]
    first = "b" if last == "a" else "a"
    assert waited_for(done[last][2]) == procs[first].pid
    reported = {k: json.loads(out) for k, (_, out, _) in done.items()}
    assert reported[first]["revision"] == f"{service}-00001"
    assert reported[last]["revision"] == f"{service}-00002"
    assert reported[first]["url"] == reported[last]["url"]
    # Exactly the last one serves, on the URL both printed.
    assert http(reported[last]["url"], b"x")[1].decode().strip() == f"from-{last} x"
    assert containers(service) == [f"fnctl-{service}-00002 running"]
    info = json.loads(fnctl("describe", "service", service, "--local", "-o", "json").out)
    assert info["revision"] == f"{service}-00002" and info["ready"] is True
    assert len(images(service)) == 1, "the replaced revision's image is gone"


def test_a_redeploy_racing_a_delete(service, tmp_path):
    v1 = echo_source(tmp_path / "v1", "one")
    r = fnctl("deploy", "service", service, "-f", str(v1), "--build-template", "bash", "--local", "-o", "json")
    assert r.code == 0, r
    url = json.loads(r.out)["url"]
    v2 = slow_source(tmp_path / "v2", "two")
    # The redeploy holds the lock until its revision answers; a delete started meanwhile waits for it.
    redeploy = holding("deploy", "service", service, "-f", str(v2), "--build-template", "bash", "-o", "json")
    delete = start("delete", "service", service)
    (rcode, rout, rerr), (dcode, dout, derr) = finish(redeploy), finish(delete)
    assert rcode == 0, rerr
    assert json.loads(rout)["revision"] == f"{service}-00002"
    assert waited_for(derr) == redeploy.pid, derr
    assert dcode == 0 and f"Service {service} deleted: removed container fnctl-{service}-00002" in dout, derr
    # Afterwards nothing of it is left and nothing answers.
    assert containers(service) == [] and images(service) == []
    assert refused(url)
    assert fnctl("describe", "service", service, "--local").code == 3
    # A deploy holds the lock; a delete and another deploy queue behind it, in either order.
    r = fnctl("deploy", "service", service, "-f", str(v1), "--build-template", "bash", "--local", "-o", "json")
    assert r.code == 0, r
    hold = holding("deploy", "service", service, "-f", str(v2), "--build-template", "bash", "-o", "json")
    delete = start("delete", "service", service)
    after = start("deploy", "service", service, "-f", str(v1), "--build-template", "bash", "-o", "json")
    (hcode, hout, herr), (dcode, dout, derr), (acode, aout, aerr) = finish(hold), finish(delete), finish(after)
    assert hcode == 0 and dcode == 0 and acode == 0, (herr, derr, aerr)
    assert json.loads(hout)["revision"] == f"{service}-00002"
    assert waited_for(derr) and waited_for(aerr)
    last = json.loads(aout)
    if last["revision"] == f"{service}-00001":
        # The delete removed the held deploy's revision, then the last deploy made a new service.
        assert f"removed container fnctl-{service}-00002" in dout
        assert http(last["url"], b"y")[1].decode().strip() == "one y"
        assert containers(service) == [f"fnctl-{service}-00001 running"]
    else:
        # The last deploy replaced the held one's revision, then the delete removed it.
        assert last["revision"] == f"{service}-00003"
        assert f"removed container fnctl-{service}-00003" in dout
        assert containers(service) == [] and refused(last["url"])


def test_a_failed_first_deploy_leaves_nothing(service, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "function.sh").write_text("# defines no handler\n")
    r = fnctl("deploy", "service", service, "-f", str(bad), "--build-template", "bash", "--local", "--timeout", "60s")
    assert r.code == 6, r
    assert f"removed fnctl/{service}:" in r.err and "built by this failed deploy" in r.err
    assert containers(service) == [] and images(service) == []
    gone = fnctl("delete", "service", service, "--local")
    assert gone.code == 3 and f"no local service named '{service}'" in gone.err


def test_delete_removes_images_and_stopped_containers_when_no_revision_runs(service):
    # What an older fnctl, a crash or a `docker stop` can leave: an image and a stopped container.
    tag = f"fnctl/{service}:leftover"
    subprocess.run(["docker", "tag", "fnctl-local/debian:bookworm", tag], check=True)
    subprocess.run(["docker", "create", "--name", f"fnctl-{service}-00003", "--label",
                    f"fnctl.dev/service={service}", tag, "true"], check=True, capture_output=True)
    assert fnctl("describe", "service", service, "--local", "-o", "json").code == 0
    r = fnctl("delete", "service", service, "--local")
    assert r.code == 0, r
    assert r.out.strip() == f"Service {service} deleted: removed container fnctl-{service}-00003, image {tag}"
    assert containers(service) == [] and images(service) == []
    assert subprocess.run(["docker", "image", "inspect", "fnctl-local/debian:bookworm"],
                          capture_output=True).returncode == 0, "only the tag went, not the base image"


def test_a_redeploy_keeps_its_build_arguments_and_env_until_reset(service, tmp_path):
    src = tmp_path / "fn"
    src.mkdir()
    (src / "greet.sh").write_text('greet () {\n  echo "hello $WHO $1"\n}\n')
    r = fnctl("deploy", "service", service, "-f", str(src), "--build-template", "bash", "--local", "-o", "json",
              "--build-argument", "HANDLER=greet.greet", "--env", "WHO=world")
    assert r.code == 0, r
    url = json.loads(r.out)["url"]
    (src / "greet.sh").write_text('greet () {\n  echo "hi ${WHO:-nobody} $1"\n}\n')
    r = fnctl("deploy", "service", service, "-f", str(src), "--build-template", "bash", "--local", "-o", "json")
    assert r.code == 0, r
    assert ("keeping the build arguments HANDLER=greet.greet and environment WHO of the deployed "
            f"{service} (given ones win; --reset starts from the defaults)") in r.err
    assert json.loads(r.out)["env"] == {"WHO": "world"}
    assert http(url, b"x")[1].decode().strip() == "hi world x"
    # Given values win over the recorded ones.
    r = fnctl("deploy", "service", service, "-f", str(src), "--build-template", "bash", "--local",
              "--env", "WHO=you")
    assert r.code == 0, r
    assert http(url, b"x")[1].decode().strip() == "hi you x"
    # NAME- drops one (kn's form); the recorded HANDLER stays.
    r = fnctl("deploy", "service", service, "-f", str(src), "--build-template", "bash", "--local", "--env", "WHO-",
              "-o", "json")
    assert r.code == 0, r
    assert json.loads(r.out)["env"] == {} and http(url, b"x")[1].decode().strip() == "hi nobody x"
    # --reset: the default HANDLER (function.handler) has no file, and the error names the one that works.
    r = fnctl("deploy", "service", service, "-f", str(src), "--build-template", "bash", "--local", "--reset")
    assert r.code == 2, r
    assert "the source has no function.sh for the default HANDLER=function.handler" in r.err
    assert "Hint: deploy with --build-argument HANDLER=greet.greet" in r.err
    assert http(url, b"x")[1].decode().strip() == "hi nobody x", "the failed deploy changed nothing"
    (src / "function.sh").write_text('handler () {\n  echo "default ${WHO:-nobody} $1"\n}\n')
    r = fnctl("deploy", "service", service, "-f", str(src), "--build-template", "bash", "--local", "--reset",
              "-o", "json")
    assert r.code == 0, r
    assert json.loads(r.out)["env"] == {}
    assert http(url, b"x")[1].decode().strip() == "default nobody x"
