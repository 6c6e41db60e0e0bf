"""The per-name lock, recorded settings and the handler hint, without a Docker engine."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from fnctl import handlers, locks, redeploy, templates, validation
from fnctl.errors import UsageError
from fnctl.model import DeployRequest, RecordedSettings
from fnctl.source.context import ContextFile
from tests.conftest import ROOT, Recorder

HOLD = """
import sys, time
from fnctl import locks
from tests.conftest import Recorder
with locks.service_lock("hello", Recorder()):
    print("held", flush=True)
    time.sleep(float(sys.argv[1]))
"""


def test_a_second_holder_waits_says_for_whom_and_gets_the_lock_when_the_first_ends(tmp_path, monkeypatch):
    monkeypatch.setenv("FNCTL_LOCK_DIR", str(tmp_path / "locks"))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, "1.5"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    held = time.monotonic()
    rec = Recorder()
    with locks.service_lock("hello", rec):
        assert time.monotonic() - held > 1.2, "the lock was granted only once the holder let it go"
    assert rec.notes == [f"waiting for another deploy or delete of hello to finish (pid {holder.pid})"]
    holder.wait()
    rec = Recorder()
    with locks.service_lock("hello", rec), locks.service_lock("other", rec):
        pass
    assert rec.notes == [], "a free lock, and another name's lock, are taken at once"


def test_a_killed_holder_leaves_no_stale_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("FNCTL_LOCK_DIR", str(tmp_path))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, "60"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    started = time.monotonic()
    with locks.service_lock("hello", Recorder()):
        assert time.monotonic() - started < 1


def test_the_lock_folder_is_the_same_for_every_shell_of_a_user(monkeypatch):
    monkeypatch.delenv("FNCTL_LOCK_DIR", raising=False)
    first = locks.lock_dir()
    monkeypatch.setenv("HOME", "/nonexistent")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/nonexistent")
    monkeypatch.setenv("XDG_CACHE_HOME", "/nonexistent")
    assert locks.lock_dir() == first


def test_secret_parameters_and_credentials_are_never_recorded():
    python = templates.find("python")
    given = {"HANDLER": "app.main", "PIP_INDEX_URL": "https://u:token@pypi.example.com/simple",
             "EVENT": "https://u:pw@example.com", "DIRECTORY": "fn"}
    assert redeploy.recordable(python, given) == {"HANDLER": "app.main", "DIRECTORY": "fn"}


def test_recorded_settings_merge_under_the_given_ones():
    bash = templates.find("bash")
    request = DeployRequest("hello", ".", "bash", build_args={"EVENT": "API_GATEWAY"}, env={"B": "new"})
    recorded = RecordedSettings("bash", {"HANDLER": "greet.greet", "EVENT": "", "GONE": "x"}, {"A": "1", "B": "old"})
    merged, note = redeploy.carry_over(request, bash, recorded)
    assert merged.build_args == {"HANDLER": "greet.greet", "EVENT": "API_GATEWAY"}   # GONE: not bash's
    assert merged.env == {"A": "1", "B": "new"}
    assert note == ("keeping the build arguments HANDLER=greet.greet and environment A of the deployed hello "
                    "(given ones win; --reset starts from the defaults)")
    assert redeploy.carry_over(request, bash, None) == (request, None)
    # Another template: its build arguments mean something else there; the environment stays.
    merged, note = redeploy.carry_over(request, bash, RecordedSettings("python", {"HANDLER": "app.main"}, {"A": "1"}))
    assert merged.build_args == {"EVENT": "API_GATEWAY"} and merged.env == {"A": "1", "B": "new"}
    # NAME- drops a recorded value, as `kn service update --env NAME-` does.
    dropping = DeployRequest("hello", ".", "bash", removed_env=["A"], removed_build_args=["HANDLER"])
    merged, note = redeploy.carry_over(dropping, bash, recorded)
    assert merged.build_args == {"EVENT": ""} and merged.env == {"B": "old"}
    assert validation.removals(["A=1", "B-", "C=x-", "-"]) == (["A=1", "C=x-", "-"], ["B"])
    reset = DeployRequest("hello", ".", "bash", reset=True)
    merged, note = redeploy.carry_over(reset, bash, recorded)
    assert merged == reset and note.startswith("--reset:")


def files(named: dict[str, str]) -> list[ContextFile]:
    return [ContextFile(f"src/{name}", text.encode()) for name, text in named.items()]


@pytest.mark.parametrize("template, sources, works", [
    ("node4", {"index.js": "exports.handler = async () => 1;\n", "package.json": "{}"}, "index.handler"),
    ("node4", {"app.mjs": "export async function main(event) {}\n"}, "app.main"),
    ("python", {"lambda_function.py": "import json\ndef lambda_handler(event, context):\n  pass\n",
                "helpers.py": "def x(): pass\n"}, "lambda_function.lambda_handler"),
    ("bash", {"main.sh": "function run {\n echo $1\n}\n"}, "main.run"),
])
def test_a_missing_default_handler_names_the_obvious_one(template, sources, works):
    t = templates.find(template)
    with pytest.raises(UsageError) as e:
        handlers.check(t, {}, t.resolve({}), files(sources), None)
    assert e.value.hint == f"deploy with --build-argument HANDLER={works}"
    assert e.value.exit_code == 2


@pytest.mark.parametrize("given, sources, single", [
    ({"HANDLER": "index.handler"}, {"x.js": ""}, None),           # given: the runtime reports it
    ({}, {"handler.js": "exports.handler = 1"}, None),             # the default's file is there
    ({}, {"a.js": "", "b.js": ""}, None),                          # no obvious one
    ({}, {"lib/index.js": ""}, None),                              # not at the top
    ({}, {"bootstrap": "#!/bin/sh", "index.js": ""}, None),       # the source's own runtime loop
    ({}, {"index.js": ""}, "index.js"),                            # a single file names the handler
])
def test_no_hint_when_nothing_is_obvious(given, sources, single):
    t = templates.find("node4")
    handlers.check(t, given, t.resolve(given), files(sources), single)
