"""The bash bootstrap (buildtemplates/bash/bootstrap) on the host, no Docker.

Mostly behind the real bridge; a few protocol corner cases (a server that closes
or drops the connection, chunked answers) against a tiny fake Runtime API.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.runtimes.helpers import REPO, TEMPLATES

BOOTSTRAP = TEMPLATES / "bash" / "bootstrap"

HANDLERS = r"""
raw() { printf '%s' "$1"; }
bytes() { local LC_ALL=C; printf '%s' "${#1}"; }
fail() { echo "failing on purpose" >&2; return 3; }
ids() { printf '%s %s' "$AWS_LAMBDA_REQUEST_ID" "$AWS_LAMBDA_DEADLINE_MS"; }
pid() { sleep "${1:-0}"; printf '%s' "$$"; }
sleepy() { sleep "$1"; echo "woke"; }
closefds() { local fd; for fd in {3..255}; do eval "exec $fd>&- $fd<&-" 2>/dev/null; done; echo "closed"; }
mortal() { [ "$1" != die ] || kill -9 $$; printf 'alive %s' "$1"; }
newlines() { printf 'a\n\nb\n\n\n'; }
chatty() {
  local i; for ((i = 1; i < $1; i++)); do echo "line $i" >&2; done
  printf 'tab\tquote" backslash\\ é' >&2; return 1
}
logs() { echo "logged $1" >&2; printf done; }
slowlog() { echo "before the timeout" >&2; sleep "$1"; }
"""


@pytest.fixture(scope="module")
def task_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bash-task")
    shutil.copy(REPO / "examples" / "bash-echo" / "function.sh", root / "function.sh")
    (root / "handlers.sh").write_text(HANDLERS)
    (root / "broken.sh").write_text("return 7\n")
    return root


@pytest.fixture
def bash_fn(start_bridge, task_root):
    def start(handler: str, ready: bool = True, **env):
        return start_bridge(BOOTSTRAP, task_root, {"_HANDLER": handler, "HANDLER": handler, **env}, ready=ready)
    return start


# --- the contract --------------------------------------------------------------------

def test_echo_example_exact_answer(bash_fn):
    b = bash_fn("function.handler")
    r = b.invoke('{"text":"netadmin"}')
    assert r.status == 200
    assert r.body == b"Echoing request: '{\"text\":\"netadmin\"}'"
    assert '{"text":"netadmin"}' in b.stderr          # the handler's stderr goes to the logs


@pytest.mark.parametrize("transport", ["devtcp", "curl"])
def test_utf8_quotes_backslashes_round_trip(bash_fn, transport):
    b = bash_fn("handlers.raw", FNCTL_BOOTSTRAP_TRANSPORT=transport)
    for event in ['{"s":"h\\u00e9llo \\"q\\" \\\\ back"}', "héllo wörld ✓ 🎉 — ünïcödé",
                  "back\\slash \"quote\" 'single' $HOME `cmd` %s %d \\n", "tab\there\r\ncrlf\nline"]:
        r = b.invoke(event.encode())
        assert r.status == 200, r
        assert r.body == event.encode()
    assert b.invoke("héllo ✓".encode(), path="/").body == "héllo ✓".encode()


def test_bytes_are_counted_as_bytes_and_invalid_utf8_passes(bash_fn):
    b = bash_fn("handlers.bytes", LANG="C.UTF-8", LC_ALL="C.UTF-8")
    assert b.invoke("é✓🎉".encode()).body == b"9"
    raw = bash_fn("handlers.raw", LANG="C.UTF-8", LC_ALL="C.UTF-8")
    assert raw.invoke(b"\xff\xfe latin-1 \xe9 \xc3").body == b"\xff\xfe latin-1 \xe9 \xc3"


def test_empty_event(bash_fn):
    b = bash_fn("function.handler")
    r = b.invoke(b"")
    assert r.status == 200 and r.body == b"Echoing request: ''"
    assert bash_fn("handlers.raw").invoke(b"").body == b""


def test_trailing_newlines_of_the_response_are_stripped(bash_fn):
    assert bash_fn("handlers.newlines").invoke(b"x").body == b"a\n\nb"


def test_one_mebibyte_event_round_trips(bash_fn):
    rng = random.Random(7)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 \n\"\\'{}é✓"
    event = "".join(rng.choice(alphabet) for _ in range(400_000)).encode()[: 1 << 20]
    event = (event * 3)[: (1 << 20) - 1].decode(errors="ignore").encode()
    event += b"x" * ((1 << 20) - 1 - len(event)) + b"!"
    assert len(event) == 1 << 20
    b = bash_fn("handlers.raw")
    t0 = time.monotonic()
    r = b.invoke(event)
    assert r.status == 200
    assert r.body == event
    assert time.monotonic() - t0 < 10
    assert bash_fn("handlers.bytes").invoke(event).body == b"1048576"


@pytest.mark.parametrize("size", [20, 100_000])
def test_nul_bytes_are_dropped_without_desynchronising(bash_fn, size):
    b = bash_fn("handlers.raw")
    event = (b"ab\x00cd\x00" * size)[:size]
    r = b.invoke(event, timeout=20)
    assert r.status == 200
    assert r.body == event.replace(b"\x00", b"")
    assert b.invoke(b"next one").body == b"next one"


@pytest.mark.parametrize("transport", ["devtcp", "curl"])
def test_handler_error_is_a_500_with_the_lambda_error(bash_fn, transport):
    b = bash_fn("handlers.fail", FNCTL_BOOTSTRAP_TRANSPORT=transport)
    r = b.invoke(b"{}")
    assert r.status == 500
    assert r.headers["x-amz-function-error"] == "Unhandled"
    assert r.json() == {"errorMessage": "handler fail exited with status 3", "errorType": "HandlerError",
                        "stackTrace": ["failing on purpose"]}
    assert "failing on purpose" in b.stderr
    assert b.invoke(b"{}").status == 500                 # and the runtime goes on


def test_a_handler_errors_stack_trace_is_its_stderr_tail(bash_fn):
    b = bash_fn("handlers.chatty")
    r = b.invoke(b"30")
    assert r.status == 500
    trace = r.json()["stackTrace"]
    assert trace == [f"line {i}" for i in range(11, 30)] + ['tab\tquote" backslash\\ é']
    assert "line 1\n" in b.stderr and "line 29\n" in b.stderr        # the whole of it is in the log
    assert b.invoke(b"0").json()["stackTrace"] == ['tab\tquote" backslash\\ é']   # this invocation's only


def test_stderr_of_a_successful_invocation_reaches_the_log(bash_fn):
    b = bash_fn("handlers.logs")
    assert b.invoke(b"hello").body == b"done"
    assert "logged hello\n" in b.stderr          # copied to the log before the answer was posted


def test_stderr_of_a_timed_out_invocation_reaches_the_log(bash_fn):
    b = bash_fn("handlers.slowlog", FUNCTION_TIMEOUT="1")
    assert b.invoke(b"5").status == 504
    deadline = time.monotonic() + 10       # the restarted bootstrap copies it as it starts
    while "before the timeout" not in b.stderr and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "bootstrap: the stopped invocation's stderr:\nbefore the timeout\n" in b.stderr


def test_request_id_and_deadline_are_exported(bash_fn):
    b = bash_fn("handlers.ids", FUNCTION_TIMEOUT="30")
    first, second = (b.invoke(b"{}").text.split() for _ in range(2))
    assert len(first[0]) >= 32 and first[0] != second[0]
    now_ms = time.time() * 1000
    assert now_ms + 25_000 < int(first[1]) <= now_ms + 31_000


@pytest.mark.parametrize("handler,error_type,message", [
    ("nodot", "Runtime.InvalidHandler", "HANDLER 'nodot' is not of the form FILE.FUNCTION"),
    ("missing.fn", "Runtime.HandlerNotFound", "handler file missing.sh not found in "),
    ("broken.fn", "Runtime.HandlerLoadError", "sourcing broken.sh failed"),
    ("handlers.nosuch", "Runtime.HandlerNotFound", "handlers.sh defines no function 'nosuch'"),
    ('we"ird\\name\ttab.fn', "Runtime.HandlerNotFound", 'handler file we"ird\\name\ttab.sh not found in '),
])
@pytest.mark.parametrize("transport", ["devtcp", "curl"])
def test_init_errors_stop_the_bridge(bash_fn, handler, error_type, message, transport):
    b = bash_fn(handler, ready=False, FNCTL_BOOTSTRAP_TRANSPORT=transport)
    assert b.wait_exit() == 1
    assert f"fnctl-bridge: runtime failed to start: {error_type}: {message}" in b.stderr


def test_json_escaping_of_every_control_character():
    body = (BOOTSTRAP.read_text().split("_fnctl_json_string() {", 1)[1]).split("\n}\n", 1)[0]
    script = "_fnctl_json_string() {" + body + '\n}\n_fnctl_json_string "$1"; printf %s "$_fnctl_json"'
    text = "".join(chr(c) for c in range(1, 32)) + '"\\/ é✓ \x7f end'
    out = subprocess.run(["bash", "-c", script, "_", text], capture_output=True, check=True,
                         env={**os.environ, "LC_ALL": "C.UTF-8"}).stdout
    assert json.loads(out) == text
    assert not any(b < 0x20 for b in out)


# --- concurrency, crashes, timeouts ----------------------------------------------------------

def test_concurrent_requests_use_all_invokers(bash_fn):
    b = bash_fn("handlers.pid", INVOKER_COUNT="4")
    t0 = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: b.invoke(b"1"), range(8)))
    elapsed = time.monotonic() - t0
    assert all(r.status == 200 for r in replies)
    assert len({r.text for r in replies}) == 4              # four bootstrap processes answered
    assert elapsed < 3.5                                    # 2 rounds of 1 s, not 8


def test_handler_closing_fds_does_not_break_the_runtime(bash_fn):
    b = bash_fn("handlers.closefds")
    for _ in range(3):
        r = b.invoke(b"x")
        assert r.status == 200 and r.body == b"closed"


def test_killed_bootstrap_is_a_502_then_restarted(bash_fn):
    b = bash_fn("handlers.mortal")
    assert b.invoke(b"x").body == b"alive x"
    r = b.invoke(b"die")
    assert r.status == 502 and r.json()["errorType"] == "Runtime.ExitError"
    assert b.invoke(b"again").body == b"alive again"


def test_timeout_is_a_504_and_the_restarted_bootstrap_answers(bash_fn):
    b = bash_fn("handlers.sleepy", FUNCTION_TIMEOUT="1")
    r = b.invoke(b"5")
    assert r.status == 504
    assert r.json()["errorType"] == "TimeoutError"
    r = b.invoke(b"0")
    assert r.status == 200 and r.body == b"woke"


def test_three_hundred_sequential_requests_are_fast(bash_fn):
    b = bash_fn("function.handler")
    conn = http.client.HTTPConnection("127.0.0.1", b.port, timeout=10)
    t0 = time.monotonic()
    for i in range(300):
        conn.request("POST", "/", body=f'{{"n":{i}}}')
        r = conn.getresponse()
        assert r.status == 200
        assert r.read() == f"Echoing request: '{{\"n\":{i}}}'".encode()
    elapsed = time.monotonic() - t0
    conn.close()
    # curl + sed per event took ~30 ms an event (9 s for 300); this is ~5 ms.
    assert elapsed < 15, elapsed


# --- protocol corner cases against a fake Runtime API ----------------------------------------

class FakeRuntimeAPI:
    """Serves `events` one by one on invocation/next; records posted responses.

    mode: "keepalive" (normal), "close" (Connection: close on every answer),
    "chunked" (chunked bodies), "drop" (the first next is dropped without an answer).
    """

    def __init__(self, events: list[bytes], mode: str = "keepalive"):
        self.events = list(events)
        self.mode = mode
        self.responses: list[tuple[str, bytes]] = []
        self.connections = 0
        self.done = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self._dropped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _answer(self, conn, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        h = {"Content-Type": "application/json", **(headers or {})}
        if self.mode == "close":
            h["Connection"] = "close"
        if self.mode == "chunked":
            h["Transfer-Encoding"] = "chunked"
            mid = len(body) // 2
            payload = b"".join(f"{len(p):x};ext=1\r\n".encode() + p + b"\r\n" for p in (body[:mid], body[mid:]) if p)
            payload += b"0\r\nX-Trailer: 1\r\n\r\n"
        else:
            h["Content-Length"] = str(len(body))
            payload = body
        head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
        conn.sendall(head.encode() + payload)

    def _serve(self, conn):
        f = conn.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                method, path, _ = line.decode().split(" ", 2)
                length = 0
                while (h := f.readline()) not in (b"\r\n", b""):
                    name, _, value = h.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                body = f.read(length) if length else b""
                if path.endswith("/invocation/next"):
                    if self.mode == "drop" and not self._dropped:
                        self._dropped = True
                        time.sleep(0.2)
                        conn.shutdown(socket.SHUT_RDWR)
                        return
                    if not self.events:
                        self.done.set()
                        time.sleep(60)
                        return
                    n = len(self.responses) + 1
                    self._answer(conn, 200, self.events.pop(0),
                                 {"Lambda-Runtime-Aws-Request-Id": f"req-{n}", "Lambda-Runtime-Deadline-Ms": "99"})
                else:
                    self.responses.append((path, body))
                    self._answer(conn, 202, b'{"status":"OK"}')
                if self.mode == "close":          # a graceful close, as Go's server does it
                    conn.shutdown(socket.SHUT_WR)
                    conn.settimeout(2)
                    while conn.recv(65536):
                        pass
                    return
        except (OSError, ValueError):
            return
        finally:
            conn.close()

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("mode", ["keepalive", "close", "chunked", "drop"])
def test_protocol_corner_cases(task_root, mode):
    events = [b'{"text":"a"}', "é✓".encode(), b"", b"x" * 20_000]
    api = FakeRuntimeAPI(events, mode)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "_HANDLER", "LAMBDA_"))}
    env.update({"AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.port}", "_HANDLER": "handlers.raw",
                "LAMBDA_TASK_ROOT": str(task_root)})
    proc = subprocess.Popen(["bash", str(BOOTSTRAP)], env=env, stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert api.done.wait(20), api.responses
    finally:
        proc.kill()
        stderr = proc.communicate()[1].decode(errors="replace")
        api.close()
    expected = [f"/2018-06-01/runtime/invocation/req-{i}/response" for i in range(1, 5)]
    assert [p for p, _ in api.responses] == expected, stderr
    assert [b for _, b in api.responses] == events
    if mode in ("keepalive", "chunked"):
        assert api.connections == 1
    else:
        assert api.connections > 1
