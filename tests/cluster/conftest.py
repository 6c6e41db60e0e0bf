"""Fixtures of the cluster tests: Knative's CRD schema, function sources, a fake cluster."""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path

import pytest
import yaml

from tests.conftest import Recorder

KNATIVE = Path(__file__).resolve().parents[1] / "data" / "knative"   # see its README.md


def _strict(schema):
    """The CRD's structural schema as JSON Schema that also rejects unknown fields.

    The API server would silently prune an unknown (e.g. misspelt) field; here it fails.
    """
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {k: _strict(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict) or key in ("allOf", "anyOf", "oneOf"):
            out[key] = _strict(value)
        elif key == "x-kubernetes-int-or-string":
            continue
        else:
            out[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields") \
            and "additionalProperties" not in schema:
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_schema(filename: str = "service.yaml", version: str = "v1") -> dict:
    crd = yaml.safe_load((KNATIVE / "300-resources" / filename).read_text())
    served = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    return _strict(copy.deepcopy(served["schema"]["openAPIV3Schema"]))


def validate_service(manifest: dict) -> None:
    import jsonschema

    jsonschema.validate(manifest, crd_schema())


def validate_domain_mapping(manifest: dict) -> None:
    """Against the pinned DomainMapping CRD (served as v1beta1 only)."""
    import jsonschema

    jsonschema.validate(manifest, crd_schema("domain-mapping.yaml", "v1beta1"))


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A FakeCluster with KUBECONFIG pointing at it (context `fake`, namespace `default`)."""
    fakekube = pytest.importorskip("tests.fakekube")
    with fakekube.FakeCluster(namespace="default", domain="example.com") as cluster:
        path = tmp_path / "kubeconfig"
        cluster.write_kubeconfig(path, context="fake")
        monkeypatch.setenv("KUBECONFIG", str(path))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        cluster.kubelet.run_seconds = float(os.environ.get("FNCTL_TEST_BUILD_SECONDS", "0.2"))
        yield cluster


class BuildSnoop(Recorder):
    """A Recorder that keeps every kaniko pod and its Secret as they are while kaniko runs
    (fnctl deletes both after the build): `seen[pod name] = (pod, secret or None)`."""

    def __init__(self, cluster):
        super().__init__()
        self.cluster = cluster
        self.pod = ""
        self.seen: dict[str, tuple] = {}

    def phase(self, name: str, detail: str = "") -> None:
        super().phase(name, detail)
        if "in kaniko pod" in detail:
            self.pod = detail.rsplit(" ", 1)[-1]

    def log(self, line: str) -> None:
        super().log(line)
        if self.pod and self.pod not in self.seen:
            self.seen[self.pod] = (self.cluster.get("pods", self.pod),
                                   self.cluster.get("secrets", self.pod + "-secrets"))
