"""Every runtime end to end: `fnctl deploy service ... --local` on the real Docker engine.

Each test deploys with a unique `rt-` name, talks to the service on 127.0.0.1
and deletes it afterwards, whatever happened.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import threading
import uuid
import zipfile
from http import server as http_server
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, fnctl, needs_docker, serve_go_module_proxy
from tests.runtimes.helpers import FIXTURES, http

pytestmark = [pytest.mark.docker, needs_docker]


@pytest.fixture
def service():
    """A unique service name; the service is deleted afterwards."""
    names: list[str] = []

    def make(prefix: str = "rt") -> str:
        names.append(f"{prefix}-{uuid.uuid4().hex[:8]}")
        return names[-1]

    yield make
    for name in names:
        fnctl("delete", "service", name, "--local")


def deploy(name: str, source: Path, template: str, *build_args: str, ok: bool = True):
    args = ["deploy", "service", name, "-f", str(source), "--build-template", template, "--local", "--wait",
            "-o", "json"]
    for a in build_args:
        args += ["--build-argument", a]
    r = fnctl(*args)
    if ok:
        assert r.code == 0, r
        return json.loads(r.out)
    return r


# -- node4 ---------------------------------------------------------------------

def test_node4_landing_page_with_api_gateway(service):
    url = deploy(service(), EXAMPLES / "node4-landing", "node4",
                 "HANDLER=handler.landingPage", "EVENT=API_GATEWAY")["url"]
    r = http(url + "/?name=Ada")
    assert r.status == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "<h1>Hello, Ada!</h1>" in r.text and r.text.startswith("<html>")


def test_node4_landing_page_without_api_gateway_is_json(service):
    url = deploy(service(), EXAMPLES / "node4-landing", "knative-node4-runtime", "HANDLER=handler.landingPage")["url"]
    r = http(url, "{}")
    assert r.status == 200
    body = r.json()
    assert body["statusCode"] == 200 and body["headers"] == {"Content-Type": "text/html"}
    assert "<h1>Hello, world!</h1>" in body["body"]


def test_node4_errors_and_styles(service):
    url = deploy(service(), FIXTURES / "node", "node4", "HANDLER=handlers.asyncThrow")["url"]
    r = http(url, "{}")
    assert r.status == 500
    assert r.json()["errorType"] == "Error" and r.json()["errorMessage"] == "async failure"


def test_node4_init_error_fails_the_deploy(service):
    r = deploy(service(), FIXTURES / "node", "node4", "HANDLER=missing.handler", ok=False)
    assert r.code != 0
    assert "Cannot find module 'missing'" in r.err + r.out


@pytest.mark.parametrize("files,handler,where", [
    ({"bad.js": "exports.handler = async () => {\n  return (1 + ;\n};\n"}, "bad.handler", "bad.js:2"),
    ({"bad.mjs": "export const handler = async () => {\n\n  return (1 + ;\n};\n"}, "bad.handler", "bad.mjs:3"),
])
def test_node4_syntax_error_names_file_and_line(service, tmp_path, files, handler, where):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    r = deploy(service(), tmp_path, "node4", f"HANDLER={handler}", ok=False)
    assert r.code == 6, r
    log = json.loads(r.out)["details"]                 # the container's log tail
    assert f"Runtime.UserCodeSyntaxError: SyntaxError: Unexpected token ';' ({where})\n" in log + "\n"
    assert f"/var/task/{where}\n  return (1 + ;\n" in log     # the line itself, under its location


def test_node4_npm_ci_installs_production_dependencies(service):
    url = deploy(service(), FIXTURES / "node-deps", "node4")["url"]
    assert http(url, '{"name": "Ada"}').json() == {"greeting": "greetings, Ada", "devDependency": "not installed"}


# -- python ---------------------------------------------------------------------

def test_python_hello(service):
    url = deploy(service(), EXAMPLES / "python-hello", "python")["url"]
    body = http(url, '{"name": "Ada"}').json()
    assert body["message"] == "Hello, Ada!"
    assert body["remainingMs"] > 0
    err = http(url, "not json")
    assert err.status == 500
    assert err.json()["errorType"] == "TypeError"
    assert "expected a JSON object" in err.json()["errorMessage"]


def test_python_hello_api_gateway(service):
    url = deploy(service(), EXAMPLES / "python-hello", "python", "EVENT=API_GATEWAY")["url"]
    r = http(url + "/greet?name=Ada")
    assert r.status == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"message": "Hello, Ada!", "path": "/greet"}


def _wheel(path: Path) -> None:
    """A tiny pure-Python wheel, so requirements.txt installs with no index."""
    name, version = "fnctl_fixture_dep", "1.0"
    files = {f"{name}.py": b"def greet(name):\n    return f'greetings, {name}'\n",
             f"{name}-{version}.dist-info/METADATA":
                 f"Metadata-Version: 2.1\nName: fnctl-fixture-dep\nVersion: {version}\n".encode(),
             f"{name}-{version}.dist-info/WHEEL":
                 b"Wheel-Version: 1.0\nGenerator: fnctl-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = [f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}"
              for n, d in files.items()]
    files[f"{name}-{version}.dist-info/RECORD"] = ("\n".join([*record, f"{name}-{version}.dist-info/RECORD,,"])
                                                  + "\n").encode()
    with zipfile.ZipFile(path, "w") as z:
        for n, d in files.items():
            z.writestr(zipfile.ZipInfo(n, (1980, 1, 1, 0, 0, 0)), d)


def test_python_requirements_are_installed(service, tmp_path):
    src = tmp_path / "fn"
    shutil.copytree(FIXTURES / "python", src)
    _wheel(src / "fnctl_fixture_dep-1.0-py3-none-any.whl")
    (src / "requirements.txt").write_text("./fnctl_fixture_dep-1.0-py3-none-any.whl\n")
    url = deploy(service(), src, "python", "HANDLER=handlers.uses_dependency")["url"]
    assert http(url, '{"name": "Ada"}').json() == "greetings, Ada"


def test_a_credentialed_pip_index_url_is_a_build_secret(service, tmp_path):
    """Issue 10: a PIP_INDEX_URL with credentials was an ARG: printed in the build output and kept
    in `docker history`. Now it reaches pip (the index below sees the credentials) and nothing
    else: not the history, the image or container config, the output or -o json."""
    wheel = tmp_path / "fnctl_fixture_dep-1.0-py3-none-any.whl"
    _wheel(wheel)
    token = "tok3n-" + uuid.uuid4().hex
    seen: list[str] = []

    class Index(http_server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append(self.headers.get("Authorization") or "")
            if self.headers.get("Authorization") != "Basic " + base64.b64encode(f"ci:{token}".encode()).decode():
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="index"')
                self.end_headers()
                return
            if self.path.rstrip("/") == "/simple/fnctl-fixture-dep":
                body = f'<a href="/files/{wheel.name}">{wheel.name}</a>'.encode()
            elif self.path == f"/files/{wheel.name}":
                body = wheel.read_bytes()
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html" if self.path.startswith("/simple") else "application/zip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    index = http_server.ThreadingHTTPServer(("127.0.0.1", 0), Index)
    threading.Thread(target=index.serve_forever, daemon=True).start()
    src = tmp_path / "fn"
    shutil.copytree(FIXTURES / "python", src)
    # A line of its own, so BuildKit's cache (where a secret is no part of the key) cannot skip pip.
    (src / "requirements.txt").write_text(f"# run {uuid.uuid4().hex}\nfnctl-fixture-dep==1.0\n")
    name = service()
    try:
        r = fnctl("deploy", "service", name, "-f", str(src), "--build-template", "python", "--local", "-o", "json",
                  "--build-argument", "HANDLER=handlers.uses_dependency",
                  "--build-argument", f"PIP_INDEX_URL=http://ci:{token}@127.0.0.1:{index.server_address[1]}/simple")
    finally:
        index.shutdown()
    assert r.code == 0, r.err[-3000:]
    assert any(token.encode() in base64.b64decode(a.split()[-1]) for a in seen if a), "pip never used the secret"
    assert http(json.loads(r.out)["url"], '{"name": "Ada"}').json() == "greetings, Ada"
    assert token not in r.out + r.err
    image = json.loads(r.out)["image"]
    history = subprocess.run(["docker", "history", "--no-trunc", image], capture_output=True, text=True, check=True)
    assert "pip install" in history.stdout          # the step that used the secret is there, without it
    inspected = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True, check=True)
    container = subprocess.run(["docker", "inspect", f"fnctl-{name}-00001"], capture_output=True, text=True,
                               check=True)
    for text in (history.stdout, inspected.stdout, container.stdout):
        assert token not in text


def test_python_init_error_fails_the_deploy(service):
    r = deploy(service(), FIXTURES / "python", "python", "HANDLER=handlers.nope", ok=False)
    assert r.code != 0
    assert "Handler 'nope' missing on module 'handlers'" in r.err + r.out


def test_python_import_error_shows_the_functions_frames(service):
    r = deploy(service(), FIXTURES / "python" / "broken", "python", "HANDLER=importerror.handler", ok=False)
    assert r.code == 6, r
    log = json.loads(r.out)["details"]
    assert 'File "/var/task/importerror.py", line 1, in <module>' in log
    assert "/var/runtime/bootstrap" not in log and "importlib" not in log


# -- bash -------------------------------------------------------------------------------

def test_bash_handler_error_has_its_stderr_tail_as_stack_trace(service, tmp_path):
    (tmp_path / "function.sh").write_text(
        'handler() {\n  echo "checking $1" >&2\n  echo "no such user: $1" >&2\n  return 2\n}\n')
    name = service()
    url = deploy(name, tmp_path, "bash")["url"]
    r = http(url, "ada")
    assert r.status == 500
    assert r.json() == {"errorMessage": "handler handler exited with status 2", "errorType": "HandlerError",
                        "stackTrace": ["checking ada", "no such user: ada"]}
    assert "no such user: ada" in fnctl("logs", "service", name, "--local").out


# -- go -------------------------------------------------------------------------------

def test_go_echo_without_go_mod(service):
    url = deploy(service(), FIXTURES / "go-echo", "go")["url"]
    assert http(url, '{"name": "Gopher"}').json()["greeting"] == "Hello Gopher!"
    r = http(url, '{"panic": "boom"}')
    assert r.status == 500 and r.json()["errorType"] == "Runtime.Panic"
    assert http(url, '{"name": "still here"}').json()["greeting"] == "Hello still here!"


def test_go_echo_with_go_mod_and_api_gateway(service, tmp_path):
    src = tmp_path / "fn"
    shutil.copytree(FIXTURES / "go-echo", src)
    (src / "go.mod").write_text("module example.com/echo\n\ngo 1.18\n")
    url = deploy(service(), src, "knative-go-runtime", "EVENT=API_GATEWAY")["url"]
    r = http(url + "/hi?name=Gopher")
    assert r.status == 200
    assert r.headers["content-type"] == "text/plain"
    assert r.text == "Hello Gopher! (GET /hi)"


def test_go_response_streamed_one_byte_per_write(service):
    """300,000 one-byte chunks through the real bridge (issue 9: chunk lines once counted as header bytes)."""
    url = deploy(service(), FIXTURES / "go-stream", "go")["url"]
    n = 300_000
    r = http(url, json.dumps({"bytes": n}), timeout=120)
    assert r.status == 200, r.body[:300]
    assert len(r.body) == n
    assert r.body == bytes(ord("a") + i % 26 for i in range(n))


@pytest.fixture(scope="module")
def go_module_proxy(tmp_path_factory):
    """A Go module proxy on 127.0.0.1, standing in for a company's: the module cache download folder
    (the GOPROXY protocol's own layout) of examples/go-lambda's modules, fetched by this machine's
    `go` with its settings, served over plain HTTP. The build container reaches it because local
    builds run on the host network; on this machine it could not verify proxy.golang.org's
    certificate (a TLS-intercepting egress), as builds behind many company proxies cannot."""
    if shutil.which("go") is None:
        pytest.skip("no go command on this machine to fill the module proxy (scripts/setup installs golang-go)")
    with serve_go_module_proxy("127.0.0.1", tmp_path_factory.mktemp("gomodcache"), EXAMPLES / "go-lambda") as url:
        yield url


def test_go_lambda_example_with_the_machines_go_proxy(service, go_module_proxy):
    """No GOPROXY build argument: the go template takes this machine's `go env GOPROXY` (here from the
    environment, as `go env` reads it) and the build fetches aws-lambda-go through it."""
    name = service()
    args = ["deploy", "service", name, "-f", str(EXAMPLES / "go-lambda"), "--build-template", "go", "--local",
            "--wait", "-o", "json"]
    r = fnctl(*args, env={"GOPROXY": go_module_proxy, "GONOSUMDB": "", "GOFLAGS": "-mod=mod"})
    assert r.code == 0, r
    url = json.loads(r.out)["url"]
    assert http(url, '{"name":"netadmin"}').json() == "Hello netadmin!"
    curl = subprocess.run(["curl", "-s", "-d", '{"name":"netadmin"}', url], capture_output=True, text=True,
                          timeout=30)
    assert curl.stdout == '"Hello netadmin!"'
    (image,) = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", f"fnctl/{name}"],
                              capture_output=True, text=True, check=True).stdout.split()
    history = subprocess.run(["docker", "history", "--no-trunc", image], capture_output=True, text=True,
                             check=True).stdout
    assert "GOPROXY" not in history and go_module_proxy not in history      # the proxy stayed in the build stage


def test_go_build_without_a_proxy_names_the_module_it_could_not_fetch(service, tmp_path):
    src = tmp_path / "go-lambda"
    shutil.copytree(EXAMPLES / "go-lambda", src)
    (src / "build-id.txt").write_text(uuid.uuid4().hex)     # a context no earlier build step was cached for
    r = fnctl("deploy", "service", service(), "-f", str(src), "--build-template", "go", "--local",
              env={"GOPROXY": "off"})
    assert r.code == 5, r
    assert "could not fetch module github.com/aws/aws-lambda-go@v1.47.0 through GOPROXY=off" in r.err
    assert "go mod vendor" in r.err


# -- azure-dotnet, with stand-ins for Microsoft's images ---------------------------------

FAKE_DOTNET = """#!/bin/sh
# Stand-in for `dotnet publish PROJECT -c CONFIG -o OUT ...`: copies the project.
set -e
[ "$1" = publish ] || { echo "fake dotnet: only publish" >&2; exit 1; }
project=$2; shift 2; out=
while [ $# -gt 0 ]; do case "$1" in -o) out=$2; shift 2;; -c) config=$2; shift 2;; *) shift;; esac; done
mkdir -p "$out"; cp -r . "$out/"
echo "project=$project config=$config" > "$out/published.txt"
"""

FAKE_HOST = """#!/usr/bin/env python3
# Stand-in for the Functions host: serves /api/MyHttpTrigger on ASPNETCORE_URLS.
import os, http.server, urllib.parse
port = int(os.environ["ASPNETCORE_URLS"].rsplit(":", 1)[1])
root = os.environ["AzureWebJobsScriptRoot"]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        name = urllib.parse.parse_qs(u.query).get("name", ["?"])[0]
        body = (f"Hello, {name}. model={os.environ.get('FAKE_MODEL', 'in-process')} "
                f"inproc8={os.environ.get('FUNCTIONS_INPROC_NET8_ENABLED', '')} "
                f"logging={os.environ.get('AzureFunctionsJobHost__Logging__Console__IsEnabled')} "
                f"{open(os.path.join(root, 'published.txt')).read().strip()}").encode()
        self.send_response(200 if u.path == "/api/MyHttpTrigger" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
# http://+:PORT: every interface, as the real host (the local target reaches it from its gateway).
http.server.HTTPServer(("", port), H).serve_forever()
"""

START_NONAPPSERVICE = """#!/bin/sh
export FAKE_MODEL=isolated
exec /azure-functions-host/Microsoft.Azure.WebJobs.Script.WebHost
"""


def _docker_build(tag: str, dockerfile: str, files: dict[str, str]) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, text in {"Dockerfile": dockerfile, **files}.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    subprocess.run(["docker", "build", "-q", "-t", tag, "-"], input=raw.getvalue(), check=True, capture_output=True)


@pytest.fixture(scope="module")
def fake_azure_images():
    tag = uuid.uuid4().hex[:8]
    sdk, isolated, inproc = (f"fnctl-test/fake-{n}:{tag}" for n in ("dotnet-sdk", "functions-isolated",
                                                                    "functions-inproc"))
    _docker_build(sdk, "FROM fnctl-local/debian:bookworm\nCOPY dotnet /usr/local/bin/dotnet\n",
                  {"dotnet": FAKE_DOTNET})
    host = ("FROM fnctl-local/python:bookworm\n"
            "COPY host /azure-functions-host/Microsoft.Azure.WebJobs.Script.WebHost\n"
            "ENV ASPNETCORE_URLS=http://+:80\n")
    _docker_build(inproc, host, {"host": FAKE_HOST})
    _docker_build(isolated, host + "COPY start /opt/startup/start_nonappservice.sh\n",
                  {"host": FAKE_HOST, "start": START_NONAPPSERVICE})
    yield [f"DOTNET_SDK_IMAGE={sdk}", f"ISOLATED_IMAGE={isolated}", f"INPROC_IMAGE={inproc}"]
    subprocess.run(["docker", "rmi", "-f", sdk, isolated, inproc], capture_output=True)


@pytest.mark.parametrize("model", ["isolated", "in-process"])
def test_azure_dotnet_with_stand_in_images(service, fake_azure_images, model):
    info = deploy(service(), EXAMPLES / "azure-dotnet", "azure-dotnet", *fake_azure_images, f"WORKER_MODEL={model}")
    r = http(info["url"] + "/api/MyHttpTrigger?name=Ada")
    assert r.status == 200
    assert r.text.startswith("Hello, Ada.")
    assert f"model={model}" in r.text
    assert ("inproc8=1" in r.text) == (model == "in-process")
    assert "logging=true" in r.text
    assert "project=MyHttpTrigger.csproj config=Release" in r.text


def test_azure_dotnet_rejects_an_unknown_worker_model(service, fake_azure_images):
    r = deploy(service(), EXAMPLES / "azure-dotnet", "azure-dotnet", *fake_azure_images, "WORKER_MODEL=bogus",
               ok=False)
    assert r.code != 0
    assert "WORKER_MODEL must be isolated or in-process" in r.err + r.out
