"""The test suite reads nothing outside the repository: a clone anywhere must pass."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
KNATIVE = ROOT / "tests" / "data" / "knative"


def test_no_test_reads_a_path_outside_the_repository():
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        text = path.read_text()
        if re.search(r"""["'/]shared["'/]|/work/""", text) and path.name != Path(__file__).name:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_the_pinned_knative_crds_and_config_maps_are_in_the_repository():
    readme = (KNATIVE / "README.md").read_text()
    assert "knative.dev/serving@v0.50.0" in readme
    for name in ("service", "configuration", "revision", "route", "domain-mapping"):
        crd = yaml.safe_load((KNATIVE / "300-resources" / f"{name}.yaml").read_text())
        assert crd["kind"] == "CustomResourceDefinition"
        assert all(v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"])
    for name in ("domain", "autoscaler", "defaults"):
        cm = yaml.safe_load((KNATIVE / "configmaps" / f"{name}.yaml").read_text())
        assert cm["kind"] == "ConfigMap" and cm["metadata"]["name"] == f"config-{name}"
