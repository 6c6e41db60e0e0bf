"""The python bootstrap behind the real bridge, on the host (no Docker)."""

from __future__ import annotations

import shutil
import time

import pytest

from tests.runtimes.helpers import FIXTURES, TEMPLATES

BOOTSTRAP = TEMPLATES / "python" / "bootstrap"
PY = FIXTURES / "python"


@pytest.fixture
def python(start_bridge, python_binary, tmp_path):
    # The bootstrap's `#!/usr/bin/env python3` must find this interpreter.
    def start(handler: str, root=PY, **env):
        return start_bridge(BOOTSTRAP, root, {"_HANDLER": handler, "FNCTL_PYTHON_PACKAGES": str(tmp_path / "none"),
                                              **env})
    return start


def test_echo_json_text_and_empty_events(python):
    b = python("handlers.echo")
    assert b.invoke('{"name": "Ada"}').json()["event"] == {"name": "Ada"}
    assert b.invoke("plain text").json()["event"] == "plain text"
    assert b.invoke("").json()["event"] == {}
    assert len(b.invoke("{}").json()["requestId"]) >= 32


def test_context_fields(python):
    c = python("handlers.context_fields", AWS_LAMBDA_FUNCTION_NAME="py-fn", FUNCTION_TIMEOUT="30").invoke("{}").json()
    assert c["function_name"] == "py-fn"
    assert c["function_version"]
    assert c["invoked_function_arn"].endswith(":function:py-fn")
    assert c["memory_limit_in_mb"] == "128"
    assert c["log_group_name"] == "/aws/lambda/py-fn"
    assert c["log_stream_name"]
    assert 25_000 < c["remaining"] <= 30_000
    assert c["handler_env"] == "handlers.context_fields"
    assert c["cwd"] == str(PY)


def test_remaining_time_decreases(python):
    r = python("handlers.remaining", FUNCTION_TIMEOUT="10").invoke("{}").json()
    assert 150 <= r["before"] - r["after"] <= 2000


def test_none_is_null_and_decimals_are_numbers(python):
    assert python("handlers.nothing").invoke("{}").text == "null"
    assert python("handlers.decimal_value").invoke("{}").json() == {"int": 3, "float": 2.5}


def test_module_in_a_package(python):
    assert python("pkg/nested.handler").invoke("{}").json() == "nested module"
    assert python("pkg.nested.handler").invoke("{}").json() == "nested module"


@pytest.mark.parametrize("handler,error_type,message", [
    ("handlers.raises", "ValueError", "bad value: 7"),
    ("handlers.custom_error", "PaymentRequired", "pay first"),
    ("handlers.unserialisable", "Runtime.MarshalError", "Unable to marshal response"),
])
def test_errors_become_500_with_lambda_shape(python, handler, error_type, message):
    b = python(handler)
    r = b.invoke('{"x": 7}')
    assert r.status == 500, r.text
    err = r.json()
    assert err["errorType"] == error_type
    assert message in err["errorMessage"]
    assert isinstance(err["stackTrace"], list)
    if not error_type.startswith("Runtime."):
        assert any("handlers.py" in line for line in err["stackTrace"])
        assert not any("bootstrap" in line for line in err["stackTrace"])
    deadline = time.monotonic() + 5
    while message not in b.stderr and time.monotonic() < deadline:
        time.sleep(0.05)
    assert message in b.stderr


def test_still_serving_after_an_error(python):
    b = python("handlers.raises")
    assert b.invoke('{"x": 1}').status == 500
    assert b.invoke('{"x": 2}').json()["errorMessage"] == "bad value: 2"


@pytest.mark.parametrize("handler,root,error_type,fragment", [
    ("missing.handler", PY, "Runtime.ImportModuleError",
     "Unable to import module 'missing': No module named 'missing'"),
    ("handlers.nope", PY, "Runtime.HandlerNotFound", "Handler 'nope' missing on module 'handlers'"),
    ("handlers.not_callable", PY, "Runtime.HandlerNotFound", "is not callable"),
    ("syntax.handler", PY / "broken", "Runtime.UserCodeSyntaxError", "Syntax error in module 'syntax'"),
    ("importerror.handler", PY / "broken", "Runtime.ImportModuleError",
     "No module named 'module_that_does_not_exist'"),
    ("boom.handler", PY / "broken", "Runtime.ImportModuleError", "module initialisation blew up"),
    ("nodot", PY, "Runtime.MalformedHandlerName", "Bad handler 'nodot'"),
])
def test_load_failures_are_init_errors(start_bridge, python_binary, tmp_path, handler, root, error_type, fragment):
    if root == PY / "broken":
        # A copy, with a module that does not parse (kept out of the repository, where linters read it).
        shutil.copytree(root, tmp_path / "broken")
        (tmp_path / "broken" / "syntax.py").write_text("def handler(event, context)\n    return 1\n")
        root = tmp_path / "broken"
    b = start_bridge(BOOTSTRAP, root, {"_HANDLER": handler}, ready=False)
    assert b.wait_exit() == 1
    assert fragment in b.stderr
    assert error_type in b.stderr


@pytest.mark.parametrize("handler,line", [
    ("importerror.handler", "import module_that_does_not_exist"),
    ("boom.handler", 'raise RuntimeError("module initialisation blew up")'),
])
def test_an_import_error_shows_the_functions_frames_only(start_bridge, python_binary, handler, line):
    b = start_bridge(BOOTSTRAP, PY / "broken", {"_HANDLER": handler}, ready=False)
    assert b.wait_exit() == 1
    trace = b.stderr.split("Traceback (most recent call last):\n", 1)[1]
    assert f'{handler.split(".")[0]}.py", line 1, in <module>' in trace and line in trace
    # Not the bootstrap's own frames, nor the import machinery it loads the module through.
    assert "bootstrap" not in trace.split("fnctl-bridge:")[0]
    assert "importlib" not in trace and "load_handler" not in trace


def test_requirements_folder_is_on_the_path(start_bridge, python_binary, tmp_path):
    deps = tmp_path / "deps"
    deps.mkdir()
    (deps / "fnctl_fixture_dep.py").write_text("def greet(name):\n    return f'greetings, {name}'\n")
    b = start_bridge(BOOTSTRAP, PY, {"_HANDLER": "handlers.uses_dependency", "FNCTL_PYTHON_PACKAGES": str(deps)})
    assert b.invoke('{"name": "Ada"}').json() == "greetings, Ada"


def test_api_gateway_mapping(python):
    r = python("handlers.landing", EVENT="API_GATEWAY").invoke(None, path="/x?name=Ada")
    assert r.status == 202
    assert r.headers["content-type"].startswith("text/plain")
    assert r.headers["x-method"] == "GET"
    assert r.text == "hello Ada"
