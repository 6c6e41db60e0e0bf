"""serverless.yaml parsing: strict, located errors (file, line, key, exit 2), string environment
values, includes (local and https), and the same DeployRequest `deploy service` builds."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import ssl
import subprocess
import textwrap
import threading
from pathlib import Path

import pytest

from fnctl import manifest
from tests.conftest import EXAMPLES, fnctl

# Lines 1-4 of most manifests below: a valid head, then what a test is about.
HEAD = "service: demo\nprovider: {runtime: bash}\nfunctions:\n  echo: {source: bash-echo}\n"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    rest = text[len(HEAD):] if text.startswith(HEAD) else text
    path.write_text((HEAD if rest is not text else "") + (textwrap.dedent(rest).lstrip() if rest.startswith("\n")
                                                          else rest))
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES / "bash-echo", tmp_path / "bash-echo")
    return tmp_path


def dry_run(path: Path, *extra: str):
    return fnctl("deploy", "-f", str(path), "--dry-run", "--local", "-o", "json", *extra)


def assert_refused(path: Path, shown_file: Path | str, line: int, key: str, words: str):
    r = dry_run(path)
    assert r.code == 2, r
    assert f"Error: {shown_file}, line {line}, key {key}: " in r.err, r.err
    assert words in r.err, r.err
    error = json.loads(r.out)        # -o json: the error as JSON on stdout, with where it is
    assert (error["file"], error["line"], error["key"], error["exitCode"]) == (str(shown_file), line, key, 2)


# -- bad manifests -----------------------------------------------------------------------------

def test_unknown_top_level_key(project):
    path = write(project, "serverless.yaml", """
        service: demo
        provider: {runtime: bash}
        fuctions:
          echo: {source: bash-echo}
        """)
    assert_refused(path, path, 3, "fuctions", "unknown key 'fuctions'")


def test_unknown_function_key(project):
    path = write(project, "serverless.yaml", """
        service: demo
        functions:
          echo:
            source: bash-echo
            runtime: bash
            events: [{http: x}]
        """)
    assert_refused(path, path, 6, "functions.echo.events", "unknown key 'events'")


@pytest.mark.parametrize("body,line,key,words", [
    ("functions: [echo]\n", 2, "functions", "must be a mapping, not a list"),
    ("functions:\n  echo: {source: bash-echo, runtime: bash, concurrency: ten}\n", 3,
     "functions.echo.concurrency", "must be a whole number"),
    ("functions:\n  echo:\n    source: bash-echo\n    runtime: bash\n    environment: [A=1]\n", 6,
     "functions.echo.environment", "must be a mapping, not a list"),
    ("functions:\n  echo:\n    source: bash-echo\n    runtime: bash\n    buildargs: HANDLER=x.handler\n", 6,
     "functions.echo.buildargs", "must be a list of KEY=VALUE strings"),
    ("functions:\n  echo:\n    source: bash-echo\n    runtime: bash\n    labels: [team]\n", 6,
     "functions.echo.labels[0]", "is not of the form KEY=VALUE"),
    ("functions:\n  echo:\n    source: {path: bash-echo}\n    runtime: bash\n", 4,
     "functions.echo.source", "must be a string, not a mapping"),
    ("provider: {name: aws}\nfunctions:\n  echo: {source: bash-echo, runtime: bash}\n", 2,
     "provider.name", "provider 'aws' is not supported"),
    ("provider: {buildtimeout: soon}\nfunctions:\n  echo: {source: bash-echo, runtime: bash}\n", 2,
     "provider.buildtimeout", "invalid duration 'soon'"),
])
def test_wrong_types(project, body, line, key, words):
    path = write(project, "serverless.yaml", "service: demo\n" + body)
    assert_refused(path, path, line, key, words)


def test_missing_service(project):
    path = write(project, "serverless.yaml", """
        provider: {runtime: bash}
        functions:
          echo: {source: bash-echo}
        """)
    assert_refused(path, path, 1, "service", "the manifest names no service")


@pytest.mark.parametrize("function,line", [("echo:\n", 3), ("echo: {runtime: bash}\n", 3),
                                           ("echo:\n    runtime: bash\n    description: no source\n", 3)])
def test_a_function_with_no_source(project, function, line):
    path = write(project, "serverless.yaml", "service: demo\nfunctions:\n  " + function)
    assert_refused(path, path, line, "functions.echo", "the function has no source")


def test_a_source_that_does_not_exist(project):
    path = write(project, "serverless.yaml", """
        service: demo
        provider: {runtime: bash}
        functions:
          echo:
            source: ./bash-ehco
        """)
    assert_refused(path, path, 5, "functions.echo.source", "source './bash-ehco' does not exist")


def test_duplicate_name_across_includes(project):
    path = write(project, "serverless.yaml", HEAD + """
        include:
          - more/functions.yaml
        """)
    included = write(project, "more/functions.yaml", """
        functions:
          other: {source: ../bash-echo}
          echo: {source: ../bash-echo}
        """)
    assert_refused(path, included, 3, "functions.echo", f"function 'echo' is already defined in {path}, line 4")


def test_an_include_that_cannot_be_read(project):
    path = write(project, "serverless.yaml", HEAD + """
        include:
          - more/missing.yaml
        """)
    assert_refused(path, path, 6, "include[0]", f"cannot read the include {project / 'more/missing.yaml'}")


def test_an_include_cycle(project):
    path = write(project, "serverless.yaml", HEAD + """
        include: [more/a.yaml]
        """)
    included = write(project, "more/a.yaml", "include: [../serverless.yaml]\n")
    assert_refused(path, included, 1, "include[0]", "included more than once")


def test_an_include_with_its_own_service(project):
    path = write(project, "serverless.yaml", "service: demo\nprovider: {runtime: bash}\ninclude: [b.yaml]\n")
    included = write(project, "b.yaml", "service: other\nfunctions:\n  x: {source: bash-echo}\n")
    assert_refused(path, included, 1, "service", "an include has no 'service' of its own")


def test_a_key_written_twice(project):
    path = write(project, "serverless.yaml", HEAD + "  echo: {source: bash-echo}\n")
    assert_refused(path, path, 5, "functions.echo", "written twice (first on line 4)")


def test_an_empty_environment_value(project):
    path = write(project, "serverless.yaml", """
        service: demo
        provider: {runtime: bash}
        functions:
          echo:
            source: bash-echo
            environment:
              EMPTY:
        """)
    assert_refused(path, path, 7, "functions.echo.environment.EMPTY", "must be a string, not empty")


def test_invalid_yaml_names_its_line(project):
    path = write(project, "serverless.yaml", "service: demo\nfunctions:\n  echo: {source: bash-echo\n")
    r = dry_run(path)
    assert r.code == 2 and f"{path}, line 4: not valid YAML" in r.err, r


def test_an_unknown_function_asked_for(project):
    path = write(project, "serverless.yaml", HEAD)
    r = dry_run(path, "--function", "ehco")
    assert r.code == 2 and f"{path} has no function 'ehco'" in r.err and "its functions: echo" in r.err, r


def test_no_manifest_here(tmp_path):
    r = fnctl("deploy", "--local", cwd=tmp_path, env={"PYTHONPATH": str(Path(__file__).parents[2])})
    assert r.code == 2 and "no serverless.yaml in this folder" in r.err, r


def test_manifest_options_before_a_subcommand_are_refused():
    r = fnctl("deploy", "--function", "x", "service", "hello", "-f", "gcr.io/a/b:1", "--local", "--dry-run")
    assert r.code == 2 and "belong to the manifest form: --function" in r.err, r


# -- what a manifest means -------------------------------------------------------------------------

def test_environment_values_are_strings_as_written(project):
    path = write(project, "serverless.yaml", """
        service: demo
        provider:
          runtime: bash
          environment: {ENABLED: yes, COUNT: 010, RATIO: 1.50, NAME: demo}
        functions:
          echo:
            source: bash-echo
            environment: {ENABLED: "no", EXTRA: on}
        """)
    (function,) = manifest.load(str(path)).functions
    assert function.request.env == {"ENABLED": "no", "COUNT": "010", "RATIO": "1.50", "NAME": "demo", "EXTRA": "on"}


def test_every_field_maps_to_a_deploy_service_option(project):
    path = write(project, "serverless.yaml", """
        service: demo
        provider:
          name: triggermesh
          namespace: team-a
          registry: registry.example.com
          registry-secret: push
          runtime: knative-node4-runtime
          environment: {A: provider, B: provider}
          env-secrets: [db]
          annotations: {x.io/a: p}
          buildtimeout: 5m
        functions:
          echo:
            handler: bash-echo
            runtime: https://raw.githubusercontent.com/triggermesh/knative-lambda-runtime/master/node-4.x/buildtemplate.yaml
            concurrency: 10
            buildargs: [HANDLER=handler.landingPage]
            labels: [team=a]
            environment: {B: function}
            env-secrets: [api, db]
            annotations: {x.io/b: f}
            description: landing page
        """)
    m = manifest.load(str(path))
    assert (m.service, m.namespace) == ("demo", "team-a")
    request = m.functions[0].request
    assert request.name == "demo-echo" and request.template == "node4" and request.image is None
    assert request.source == str(project / "bash-echo")
    assert request.build_args == {"HANDLER": "handler.landingPage"}
    assert request.env == {"A": "provider", "B": "function"}
    assert request.env_secrets == ["db", "api"]
    assert request.annotations == {"x.io/a": "p", "x.io/b": "f"}
    assert request.labels == {"team": "a", "fnctl.dev/manifest-service": "demo"}
    assert (request.concurrency, request.timeout) == (10, 300.0)
    assert (request.registry_host, request.registry_secret) == ("registry.example.com", "push")


def test_a_source_that_is_an_image_and_no_runtime_is_a_ready_made_image(project):
    path = write(project, "serverless.yaml", "service: demo\nfunctions:\n  web: {source: 'gcr.io/a/hello:1.0'}\n")
    request = manifest.load(str(path)).functions[0].request
    assert (request.image, request.source, request.template) == ("gcr.io/a/hello:1.0", "", "")


def test_select_with_or_without_the_service_prefix(project):
    path = write(project, "serverless.yaml", "service: demo\nprovider: {runtime: bash}\nfunctions:\n"
                                             "  a: {source: bash-echo}\n  b: {source: bash-echo}\n"
                                             "  c: {source: bash-echo}\n")
    m = manifest.load(str(path))
    assert [f.name for f in m.select(["demo-c", "a", "c"])] == ["c", "a"]
    assert [f.name for f in m.select([])] == ["a", "b", "c"]


def _without_volatile(objects: list[dict]) -> list[dict]:
    text = json.dumps(objects)
    for o in objects:
        if o.get("kind") == "Pod":
            text = text.replace(o["metadata"]["name"], "POD").replace(o["metadata"]["labels"]["fnctl.dev/build"],
                                                                      "BUILD")
    found = json.loads(text)
    for o in found:
        o.get("labels", {}).pop("fnctl.dev/created", None)
    return found


@pytest.mark.parametrize("target", ["--local", "--cluster"])
def test_a_manifest_function_is_the_function_deployed_by_hand(project, target):
    path = write(project, "serverless.yaml", """
        service: demo
        provider:
          runtime: bash
          environment: {GREETING: yes}
        functions:
          echo:
            source: bash-echo
            buildargs: [HANDLER=function.handler]
            labels: [team=a]
            concurrency: 4
        """)
    env = {"KUBECONFIG": str(project / "none")}
    by_manifest = fnctl("deploy", "-f", str(path), "--dry-run", target, "-o", "json", env=env)
    assert by_manifest.code == 0, by_manifest
    by_hand = fnctl("deploy", "service", "demo-echo", "-f", str(project / "bash-echo"), "--build-template", "bash",
                    "--build-argument", "HANDLER=function.handler", "--env", "GREETING=yes", "--label", "team=a",
                    "--label", "fnctl.dev/manifest-service=demo", "--concurrency", "4", "--dry-run", target,
                    "-o", "json", env=env)
    assert by_hand.code == 0, by_hand
    assert _without_volatile(json.loads(by_manifest.out)) == _without_volatile(json.loads(by_hand.out))


# -- https ---------------------------------------------------------------------------------------------

@pytest.fixture
def https_folder(tmp_path):
    """(https base URL serving `folder`, folder, env trusting its certificate)."""
    if not shutil.which("openssl"):
        pytest.skip("needs openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    folder = tmp_path / "www"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", folder, {"SSL_CERT_FILE": str(cert)}
    server.shutdown()
    server.server_close()


def test_a_manifest_and_its_include_over_https(https_folder, tmp_path):
    base, folder, env = https_folder
    repo = "file://" + str(EXAMPLES.parent)
    write(folder, "serverless.yaml", f"""
        service: web
        functions:
          echo: {{source: "{repo}", runtime: bash, buildargs: [DIRECTORY=examples/bash-echo]}}
        include: [more/functions.yaml, "{base}/other.yaml"]
        """)
    write(folder, "more/functions.yaml", f"functions:\n  hello: {{source: '{repo}', runtime: bash}}\n")
    write(folder, "other.yaml", "functions:\n  img: {source: 'gcr.io/a/hello:1.0'}\n")
    r = fnctl("deploy", "-f", f"{base}/serverless.yaml", "--dry-run", "--local", "-o", "json",
              "--function", "echo", "--function", "img", env=env)
    assert r.code == 0, r
    containers = [o for o in json.loads(r.out) if o["kind"] == "Container"]
    assert [c["name"] for c in containers] == ["fnctl-web-echo-00001", "fnctl-web-img-00001"]
    assert containers[1]["image"] == "gcr.io/a/hello:1.0"
    # A path in a manifest read from a URL means nothing here: refused with its place.
    write(folder, "more/functions.yaml", "functions:\n  hello: {source: 'bash-echo', runtime: bash}\n")
    r = fnctl("deploy", "-f", f"{base}/serverless.yaml", "--dry-run", "--local", env=env)
    assert r.code == 2, r
    assert f"{base}/more/functions.yaml, line 2, key functions.hello.source:" in r.err, r.err
