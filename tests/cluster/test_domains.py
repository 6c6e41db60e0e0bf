"""Custom domains: `deploy service --domain` makes a Knative DomainMapping; describe, get and delete know it."""

from __future__ import annotations

import json

import pytest

from fnctl import domains
from tests.cluster.conftest import validate_domain_mapping
from tests.conftest import fnctl

pytest.importorskip("tests.fakekube")
from tests.fakekube import resources  # noqa: E402

DM = "domainmappings.serving.knative.dev"


@pytest.fixture
def env(fake, tmp_path):
    return {"KUBECONFIG": str(tmp_path / "kubeconfig"), "HOME": str(tmp_path)}


def test_the_manifest_validates_against_the_crd():
    mapping = domains.manifest("api.example.com", "hello", "team-a")
    validate_domain_mapping(mapping)
    assert mapping["spec"]["ref"] == {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "hello",
                                      "namespace": "team-a"}
    with pytest.raises(Exception, match="Additional properties"):        # the schema check can fail
        validate_domain_mapping({**mapping, "spec": {**mapping["spec"], "hostname": "x"}})


def test_deploy_describe_get_and_delete_a_domain(fake, env, function_dir):
    r = fnctl("deploy", "service", "hello", "-f", str(function_dir), "--build-template", "bash",
              "--domain", "api.example.com", env=env, timeout=120)
    assert r.code == 0, r
    assert r.out.splitlines() == ["Service hello URL: http://hello.default.example.com",
                                  "Domain URL: http://api.example.com"]
    mapping = fake.get(DM, "api.example.com")
    validate_domain_mapping({k: mapping[k] for k in ("apiVersion", "kind", "metadata", "spec")})
    assert mapping["spec"]["ref"]["name"] == "hello"
    assert mapping["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "fnctl", "fnctl.dev/service": "hello"}

    described = fnctl("describe", "service", "hello", env=env)
    assert "Domains:    http://api.example.com" in described.out.splitlines(), described
    # The controller's URL wins once it wrote one (e.g. https with auto-TLS).
    def with_url(obj):
        obj["status"] = {"url": "https://api.example.com"}
        return obj

    fake.store.mutate(resources.resolve(DM), "default", "api.example.com", with_url)
    listed = json.loads(fnctl("get", "service", "-o", "json", env=env).out)
    assert listed[0]["domains"] == ["https://api.example.com"]

    # Redeploying with the same domain updates the mapping in place.
    again = fnctl("deploy", "service", "hello", "-f", str(function_dir), "--build-template", "bash",
                  "--domain", "api.example.com", "-o", "json", env=env, timeout=120)
    assert again.code == 0, again
    assert json.loads(again.out)["domains"] == ["https://api.example.com"]    # status kept by the update

    assert fnctl("delete", "service", "hello", env=env).code == 0
    assert fake.get(DM, "api.example.com") is None


def test_a_domain_mapped_by_someone_else_is_left_alone(fake, env, function_dir):
    theirs = domains.manifest("api.example.com", "other", "default")
    theirs["metadata"]["labels"] = {"team": "a"}
    fake.create(theirs)
    r = fnctl("deploy", "service", "hello", "-f", str(function_dir), "--build-template", "bash",
              "--domain", "api.example.com", env=env, timeout=120)
    assert r.code == 2, r
    assert "fnctl did not make" in r.err
    assert fake.get(DM, "api.example.com")["spec"]["ref"]["name"] == "other"


@pytest.mark.parametrize("bad", ["API.example.com", "example", "https://api.example.com", "*.example.com",
                                 "api.example.com:8080"])
def test_bad_domains_are_refused_before_anything_happens(fake, env, function_dir, bad):
    fake.requests.clear()
    r = fnctl("deploy", "service", "hello", "-f", str(function_dir), "--build-template", "bash",
              "--domain", bad, env=env)
    assert r.code == 2 and "invalid --domain" in r.err, r
    assert fake.requests == []


def test_the_local_target_refuses_domain(tmp_path, function_dir):
    r = fnctl("deploy", "service", "hello", "-f", str(function_dir), "--build-template", "bash", "--local",
              "--domain", "api.example.com", env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert r.code == 2, r
    assert "--domain (a Knative DomainMapping" in r.err


def test_dry_run_prints_the_mapping(tmp_path, function_dir):
    r = fnctl("deploy", "service", "hello", "-f", str(function_dir), "--build-template", "bash", "--dry-run",
              "--domain", "api.example.com", "-o", "json",
              env={"KUBECONFIG": str(tmp_path / "none"), "HOME": str(tmp_path)})
    assert r.code == 0, r
    mapping = next(o for o in json.loads(r.out) if o["kind"] == "DomainMapping")
    validate_domain_mapping(mapping)
