"""The node4 bootstrap behind the real bridge, on the host (no Docker)."""

from __future__ import annotations

import json
import time

import pytest

from tests.runtimes.helpers import FIXTURES, TEMPLATES

BOOTSTRAP = TEMPLATES / "node4" / "bootstrap"
NODE = FIXTURES / "node"


@pytest.fixture
def node(start_bridge, node_binary):
    def start(handler: str, root=NODE, **env):
        return start_bridge(BOOTSTRAP, root, {"_HANDLER": handler, **env})
    return start


def test_callback_echoes_json_event(node):
    b = node("handlers.echo")
    r = b.invoke('{"name": "Ada"}')
    assert r.status == 200
    body = r.json()
    assert body["event"] == {"name": "Ada"}
    assert len(body["requestId"]) >= 32


def test_event_that_is_not_json_is_a_string_and_empty_is_an_object(node):
    b = node("handlers.echo")
    assert b.invoke("plain text").json()["event"] == "plain text"
    assert b.invoke("").json()["event"] == {}


def test_context_fields(node):
    b = node("handlers.context", AWS_LAMBDA_FUNCTION_NAME="my-fn", FUNCTION_TIMEOUT="30")
    c = b.invoke("{}").json()
    assert c["functionName"] == "my-fn"
    assert c["functionVersion"]
    assert c["invokedFunctionArn"].endswith(":function:my-fn")
    assert c["memoryLimitInMB"] == "128"
    assert c["logGroupName"] == "/aws/lambda/my-fn"
    assert c["logStreamName"]
    assert c["callbackWaitsForEmptyEventLoop"] is True
    assert 25_000 < c["remaining"] <= 30_000
    assert c["handlerEnv"] == "handlers.context"
    assert c["taskRoot"] == str(NODE)


def test_remaining_time_decreases(node):
    r = node("handlers.remaining", FUNCTION_TIMEOUT="10").invoke("{}").json()
    assert 150 <= r["before"] - r["after"] <= 2000


@pytest.mark.parametrize("handler,expected", [
    ("handlers.succeed", {"how": "succeed"}),
    ("handlers.done", "done!"),
    ("handlers.async", {"how": "async", "got": {"x": 1}}),
    ("handlers.promise", "resolved later"),
    ("handlers.noResult", None),
    ("handlers.asyncUndefined", None),
    ("handlers.neverCalls", None),
    ("handlers.nested.deeper.fn", "nested ok"),
])
def test_completion_styles(node, handler, expected):
    r = node(handler).invoke('{"x": 1}')
    assert r.status == 200, r.text
    assert r.json() == expected


@pytest.mark.parametrize("handler,error_type,message", [
    ("handlers.fail", "TypeError", "failed on purpose"),
    ("handlers.failString", "string", "plain failure"),
    ("handlers.doneError", "RangeError", "done with an error"),
    ("handlers.callbackError", "Error", "callback error"),
    ("handlers.callbackString", "string", "string error"),
    ("handlers.throws", "SyntaxError", "thrown synchronously"),
    ("handlers.asyncThrow", "Error", "async failure"),
    ("handlers.reject", "Error", "rejected"),
    ("handlers.uncaught", "Error", "uncaught in a timer"),
    ("handlers.circular", "Runtime.SerializationError", "Unable to stringify"),
])
def test_errors_become_500_with_lambda_shape(node, handler, error_type, message):
    b = node(handler)
    r = b.invoke("{}")
    assert r.status == 500, r.text
    err = r.json()
    assert err["errorType"] == error_type
    assert message in err["errorMessage"]
    assert isinstance(err["stackTrace"], list)
    if error_type not in ("string", "Runtime.SerializationError"):
        assert any(message in line for line in err["stackTrace"])
        deadline = time.monotonic() + 5
        while message not in b.stderr and time.monotonic() < deadline:
            time.sleep(0.05)
        assert message in b.stderr          # the stack goes to the logs too


def test_the_runtime_keeps_serving_after_an_uncaught_exception(node):
    b = node("handlers.uncaught")
    assert b.invoke("{}").status == 500
    assert b.invoke("{}").status == 500     # the bridge restarted the bootstrap


def test_callback_waits_for_the_event_loop(node):
    b = node("handlers.waits")
    start = time.monotonic()
    r = b.invoke("{}")
    assert r.json() == {"counterAtCallback": 0}
    assert time.monotonic() - start >= 0.25   # answered after the timer ran


def test_callback_does_not_wait_when_told_not_to(node):
    b = node("handlers.noWait")
    start = time.monotonic()
    assert b.invoke("{}").status == 200
    assert time.monotonic() - start < 2


def test_esm_module(node):
    r = node("handler.handler", root=NODE / "esm").invoke('{"a": 1}')
    assert r.json()["esm"] is True and r.json()["event"] == {"a": 1}


def test_type_module_package(node):
    r = node("index.handler", root=NODE / "typemodule").invoke('{"name": "esm"}')
    assert r.json() == "module says esm"


@pytest.mark.parametrize("handler,root,error_type,fragment", [
    ("missing.handler", NODE, "Runtime.ImportModuleError", "Cannot find module 'missing'"),
    ("handlers.nope", NODE, "Runtime.HandlerNotFound", "handlers.nope is undefined or not exported"),
    ("handlers.notAFunction", NODE, "Runtime.HandlerNotFound", "is not a function"),
    ("syntax.handler", NODE / "broken", "Runtime.UserCodeSyntaxError", "SyntaxError"),
    ("throws.handler", NODE / "broken", "Runtime.ImportModuleError", "module initialisation blew up"),
    ("nodot", NODE, "Runtime.MalformedHandlerName", "Bad handler"),
])
def test_load_failures_are_init_errors(start_bridge, node_binary, handler, root, error_type, fragment):
    b = start_bridge(BOOTSTRAP, root, {"_HANDLER": handler}, ready=False)
    assert b.wait_exit() == 1
    assert fragment in b.stderr
    assert error_type in b.stderr


@pytest.mark.parametrize("files,handler,where", [
    ({"syntax.js": "exports.handler = async () => {\n  return (1 + ;\n};\n"}, "syntax.handler", "syntax.js:2"),
    ({"app.mjs": "export const handler = async () => {\n\n  return [1,;\n};\n"}, "app.handler", "app.mjs:3"),
    ({"package.json": '{"type": "module"}', "src/index.js": "export const handler = () => {\n  let = = 1;\n};\n"},
     "src/index.handler", "src/index.js:2"),
    ({"outer.js": "exports.handler = require('./lib/inner');\n", "lib/inner.js": "\n\nmodule.exports = ) =>;\n"},
     "outer.handler", "lib/inner.js:3"),
])
def test_a_syntax_error_names_its_file_and_line(start_bridge, node_binary, tmp_path, files, handler, where):
    """CommonJS (the file required, or one it requires) and ES modules, where V8's SyntaxError alone
    carries no location."""
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    b = start_bridge(BOOTSTRAP, tmp_path, {"_HANDLER": handler}, ready=False)
    assert b.wait_exit() == 1
    failed = next(line for line in b.stderr.splitlines() if "runtime failed to start" in line)
    assert "Runtime.UserCodeSyntaxError: SyntaxError: " in failed and failed.endswith(f"({where})")
    assert f"{tmp_path / where}\n" in b.stderr                  # the log shows the line and its caret


def test_api_gateway_mapping(node):
    b = node("handlers.landing", EVENT="API_GATEWAY")
    r = b.invoke(None, path="/landing?name=Ada")
    assert r.status == 201
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["x-path"] == "/landing"
    assert r.text == "<html><body>Ada</body></html>"


def test_concurrent_bootstraps(start_bridge, node_binary):
    from concurrent.futures import ThreadPoolExecutor

    b = start_bridge(BOOTSTRAP, NODE, {"_HANDLER": "handlers.promise", "INVOKER_COUNT": "4"})
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: b.invoke("{}"), range(16)))
    assert all(r.status == 200 and json.loads(r.body) == "resolved later" for r in replies)
