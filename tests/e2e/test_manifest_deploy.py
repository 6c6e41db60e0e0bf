"""serverless.yaml on the local target: one command deploys every function (a folder, a DIRECTORY of a
git repository, an include); a function removed from the manifest is removed by the next full deploy;
`fnctl delete -f` removes the rest."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import ROOT, fnctl, http, needs_docker
from tests.manifest_project import drop_include, make_project

pytestmark = [pytest.mark.docker, needs_docker]
HERE = {"PYTHONPATH": str(ROOT)}          # fnctl run from the project folder, as a user would


@pytest.fixture
def service():
    name = f"m{uuid.uuid4().hex[:8]}"
    yield name
    for function in ("echo", "landing", "extra", "bad"):
        fnctl("delete", "service", f"{name}-{function}", "--local")


def _answers(url: str) -> str:
    status, body, _ = http(url, data=b"{}", timeout=30)
    assert status == 200, body
    return body.decode()


def test_a_manifest_deploys_prunes_and_deletes(service, tmp_path):
    project = make_project(tmp_path, service)
    r = fnctl("deploy", "--local", "-o", "json", cwd=project, env=HERE, timeout=900)
    assert r.code == 0, r
    result = json.loads(r.out)
    assert result["service"] == service and result["removed"] == []
    by_function = {f["function"]: f for f in result["functions"]}
    assert list(by_function) == ["echo", "landing", "extra"] and all(f["ok"] for f in by_function.values())
    assert _answers(by_function["echo"]["url"]).strip() == "main {}"
    assert "<h1>Hello, world!</h1>" in _answers(by_function["landing"]["url"])
    assert _answers(by_function["extra"]["url"]).strip() == "included {}"
    assert by_function["echo"]["env"] == {"ENABLED": "yes"}

    # The include is gone from the manifest: a --function deploy removes nothing ...
    drop_include(project)
    r = fnctl("deploy", "--local", "--function", f"{service}-echo", cwd=project, env=HERE)
    assert r.code == 0, r
    assert r.out.splitlines() == [f"{service}-echo  {by_function['echo']['url']}"]
    assert fnctl("describe", "service", f"{service}-extra", "--local").code == 0
    # ... a full deploy removes its service, and says so.
    r = fnctl("deploy", "--local", cwd=project, env=HERE)
    assert r.code == 0, r
    assert f"{service}-extra  removed: no longer in {project / 'serverless.yaml'}" in r.out.splitlines()
    assert fnctl("describe", "service", f"{service}-extra", "--local").code == 3
    assert _answers(by_function["landing"]["url"])

    r = fnctl("delete", "-f", str(project / "serverless.yaml"), "--local")
    assert r.code == 0, r
    assert sorted(r.out.splitlines()) == [f"Service {service}-echo deleted", f"Service {service}-landing deleted"]
    for function in ("echo", "landing"):
        assert fnctl("describe", "service", f"{service}-{function}", "--local").code == 3


def test_one_failing_function_does_not_stop_the_others(service, tmp_path):
    project = tmp_path / "p"
    (project / "echo").mkdir(parents=True)
    (project / "echo" / "function.sh").write_text('handler() {\n  echo "ok $1"\n}\n')
    (project / "serverless.yaml").write_text(
        f"service: {service}\nfunctions:\n  bad:\n    source: ./echo\n    runtime: cobol\n"
        "  echo:\n    source: ./echo\n    runtime: bash\n")
    r = fnctl("deploy", "-f", str(project / "serverless.yaml"), "--local", "--concurrency", "1")
    assert r.code == 2, r
    lines = r.out.splitlines()
    assert f"{service}-bad  failed: unknown build template 'cobol'" in lines
    urls = [line.split()[1] for line in lines if line.startswith(f"{service}-echo ")]
    assert len(urls) == 1 and _answers(urls[0]).strip() == "ok {}"
    assert "1 of 2 functions" in r.err
