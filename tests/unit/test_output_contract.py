"""The output contract of EVERY command (docs/cli.md "Output contract"), found by walking the click
command tree, so a new command is covered, or fails here until it is given an invocation.

Under `-o json` stdout is JSON (one document; `logs`: one object per line) whether the command
succeeds, meets an fnctl error or a usage error click reports; `-o yaml` is YAML. The local target
runs on tests/fakeengine.py (milliseconds, no Docker); tests/e2e/test_output_contract.py runs the
same on the real engine.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from fnctl import app
from fnctl.builders.docker import DockerBuilder
from fnctl.builders.image import EngineImage
from fnctl.cli import cli, output_asked
from fnctl.cli.aliases import ALIASES
from fnctl.deployers.local import LocalDeployer
from tests.fakeengine import FakeEngine


def leaves(group: click.Group = cli, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += leaves(command, (*path, name))
        else:
            found.append((*path, name))
    return found


# Commands whose output is not a result: their one product is text for another program.
NOT_RESULTS = {("completion",): "prints a shell script to source"}
COMMANDS = [path for path in leaves() if path not in NOT_RESULTS]


def command(path: tuple[str, ...]) -> click.Command:
    found: click.Command = cli
    for word in path:
        assert isinstance(found, click.Group)
        found = found.commands[word]
    return found


# A working invocation of each command on the (fake) local target, and the exit code it ends with:
# the cluster-only commands end with their usage error on --local, which is the contract too.
def invocations(src: Path) -> dict[tuple[str, ...], tuple[list[str], int]]:
    return {
        ("deploy", "service"): (["hello", "-f", str(src), "--build-template", "bash", "--local"], 0),
        ("deploy", "buildtemplate"): (["-f", str(src), "--local"], 2),
        ("get", "service"): (["--local"], 0),
        ("get", "buildtemplate"): (["bash", "--local"], 0),
        ("describe", "service"): (["hello", "--local"], 0),
        ("logs", "service"): (["hello", "--local"], 0),
        ("delete", "service"): (["hello", "--local"], 0),
        ("delete", "buildtemplate"): (["team", "--local"], 2),
        ("set", "registry-auth"): (["regcred", "--registry", "registry.example.com", "--username", "ci",
                                    "--password-stdin", "--local"], 2),
    }


def _runner() -> CliRunner:
    """stdout alone, on every click setup.cfg allows: before 8.2 CliRunner mixes stderr into it."""
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:       # click >= 8.2 keeps them apart and has no such argument
        return CliRunner()


@pytest.fixture
def engine(monkeypatch) -> FakeEngine:
    fake = FakeEngine()
    monkeypatch.setattr(app, "local_target", lambda: app.Target(
        "local", DockerBuilder(fake), LocalDeployer(fake, bindable=lambda port: True), EngineImage(fake)))
    return fake


@pytest.fixture
def deployed(engine, function_dir) -> Path:
    result = _runner().invoke(cli, ["deploy", "service", "hello", "-f", str(function_dir),
                                      "--build-template", "bash", "--local"])
    assert result.exit_code == 0, result.output
    return function_dir


def run(*args: str):
    return _runner().invoke(cli, list(args), prog_name="fnctl")


def test_the_walk_finds_every_command():
    assert len(COMMANDS) >= 8 and ("logs", "service") in COMMANDS and ("delete", "service") in COMMANDS
    assert set(NOT_RESULTS) <= set(leaves())          # no stale exemption


def test_every_command_has_an_invocation_here(tmp_path):
    assert sorted(invocations(tmp_path)) == COMMANDS, "give the new command an invocation in this test"


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_takes_o_json_and_yaml(path):
    option = next((p for p in command(path).params if p.name == "output"), None)
    assert option is not None and "-o" in option.opts
    assert {"human", "json", "yaml"} <= set(option.type.choices)


@pytest.mark.parametrize("fmt", ["json", "yaml"])
@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_stdout_is_the_format_asked(path, fmt, deployed):
    args, code = invocations(deployed)[path]
    result = run(*path, *args, "-o", fmt)
    assert result.exit_code == code, result.output
    if fmt == "yaml":
        assert result.stdout.strip() and yaml.safe_load(result.stdout) is not None
        return
    if path == ("logs", "service"):       # JSON Lines: one object per line of the log
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert lines and all(entry["service"] == "hello" and "line" in entry for entry in lines)
    elif code:
        body = json.loads(result.stdout)
        assert body["error"] == "usage" and body["exitCode"] == code and body["message"]
    else:
        json.loads(result.stdout)


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_usage_error_under_json_is_an_error_object_on_stdout(path, engine):
    result = run(*path, "--no-such-option", "-o", "json")
    assert result.exit_code == 2
    body = json.loads(result.stdout)
    assert set(body) == {"error", "message", "hint", "details", "exitCode"}
    assert body["error"] == "usage" and body["exitCode"] == 2
    assert "--no-such-option" in body["message"] and f"fnctl {' '.join(path)} --help" in body["hint"]
    assert "Error: No such option" in result.stderr          # click's own report, unchanged


@pytest.mark.parametrize("args,said", [
    (["deploy", "service", "x", "-f", ".", "--build-templat", "go"], "--build-template"),
    (["deploy", "service", "x", "-f", ".", "--build-template", "bash", "--concurrency", "-1"], "--concurrency"),
    (["logs", "service", "x", "--tail", "many"], "--tail"),
    (["describe", "service"], "Missing argument 'NAME'"),
    (["get", "nothing"], "No such command 'nothing'"),
])
@pytest.mark.parametrize("json_option", [["-o", "json"], ["--output=json"], ["-ojson"]])
def test_bad_options_and_values_under_json(args, said, json_option, engine):
    result = run(*args, *json_option)
    assert result.exit_code == 2, result.output
    body = json.loads(result.stdout)
    assert body["error"] == "usage" and body["exitCode"] == 2 and said in body["message"]


def test_without_json_a_usage_error_leaves_stdout_empty(engine):
    result = run("deploy", "service", "x", "-f", ".", "--build-templat", "go")
    assert result.exit_code == 2 and result.stdout == ""


def test_the_output_of_a_usage_error_is_read_as_the_command_reads_it(engine):
    # "-o" is the value of --env-secret here, and "json" the service name: the output is human.
    result = run("deploy", "service", "--env-secret", "-o", "json", "-f", ".", "--build-template", "bash",
                 "--bogus")
    assert result.exit_code == 2 and result.stdout == "", result.output
    result = run("deploy", "svc", "x", "--env-secret", "-o", "-o", "yaml", "--bogus")
    assert result.exit_code == 2 and yaml.safe_load(result.stdout)["error"] == "usage"
    assert output_asked(None, ["get", "service", "-o", "yaml", "--output", "json"]) == "json"
    assert output_asked(None, ["logs", "service", "x", "--", "-o", "json"]) is None


def test_delete_json_says_what_was_deleted(deployed, engine):
    result = run("delete", "service", "hello", "--local", "-o", "json")
    assert result.exit_code == 0
    answer = json.loads(result.stdout)
    assert answer["target"] == "local" and [(d["kind"], d["name"]) for d in answer["deleted"]] == [("service", "hello")]
    removed = answer["deleted"][0]["removed"]      # what the engine was asked to remove, by name
    assert "container fnctl-hello-00001" in removed and any(r.startswith("image fnctl/hello:") for r in removed)
    assert not engine.box


def test_a_bug_under_json_is_an_internal_error_object(engine, monkeypatch):
    def broken(self):
        raise ValueError("boom")
    monkeypatch.setattr(LocalDeployer, "list", broken)
    result = run("get", "service", "--local", "-o", "json")
    assert result.exit_code == 70
    body = json.loads(result.stdout)
    assert body["error"] == "internal" and body["exitCode"] == 70 and "ValueError: boom" in body["message"]
    assert "Traceback" not in result.output


# -- the kubectl spellings ---------------------------------------------------------------------

@pytest.mark.parametrize("verb", ["get", "describe", "delete", "logs", "deploy"])
def test_every_alias_names_the_same_command(verb):
    group = cli.commands[verb]
    for name, aliases in ALIASES.items():
        if name in group.commands:
            for alias in aliases:
                assert group.get_command(click.Context(group), alias) is group.commands[name]


@pytest.mark.parametrize("alias", ["services", "svc", "ksvc"])
def test_get_services_as_kubectl_users_type_it(alias, deployed):
    result = run("get", alias, "--local", "-o", "json")
    assert result.exit_code == 0, result.output
    assert [s["name"] for s in json.loads(result.stdout)] == ["hello"]


def test_get_buildtemplates_and_aliases_in_help(engine):
    result = run("get", "buildtemplates", "--local", "-o", "json")
    assert result.exit_code == 0 and "bash" in [t["name"] for t in json.loads(result.stdout)]
    listed = run("get", "--help").stdout
    assert "service (services, svc, ksvc)" in listed and "buildtemplate (buildtemplates)" in listed
    assert "\n  svc " not in listed                              # not a command row of its own


def test_an_alias_is_named_by_its_command_in_errors(engine):
    result = run("get", "svc", "--bogus", "-o", "json")
    assert "`fnctl get service --help`" in json.loads(result.stdout)["hint"]
