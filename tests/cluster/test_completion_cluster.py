"""Service names complete from the cluster the command would use (the fake API server)."""

from __future__ import annotations

import pytest

from tests.unit.test_completion import complete

pytest.importorskip("tests.fakekube")


def _ksvc(name: str, namespace: str = "default") -> dict:
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"template": {"spec": {"containers": [{"image": "example.com/app@sha256:" + "a" * 64}]}}}}


def test_service_names_complete_from_the_cluster(fake, tmp_path):
    fake.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
    for name, namespace in (("hello", "default"), ("help-desk", "default"), ("other", "default"),
                            ("hidden", "team-a")):
        fake.create(_ksvc(name, namespace))
    env = {"KUBECONFIG": str(tmp_path / "kubeconfig"), "HOME": str(tmp_path)}
    assert complete("fnctl describe service hel", env=env) == ["hello", "help-desk"]
    assert complete("fnctl get service ", env=env) == ["hello", "help-desk", "other"]
    assert complete("fnctl delete service -n team-a ", env=env) == ["hidden"]
    assert complete("fnctl logs service --local ", env={**env, "DOCKER_HOST": "unix:///nonexistent.sock"}) == []
