"""The same API-behaviour tests against the fake API server and the real one.

`api` is parametrized: `fake` (tests.fakekube, always) and `real` (the control plane of
scripts/test-cluster, through the realcluster session fixture). A behaviour that fnctl relies on
and that only the fake shows fails the `real` run; one the fake lacks fails the `fake` run.
"""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client, config

from tests.realcluster.conftest import real_cluster  # noqa: F401  (the session fixture)


@dataclass
class Api:
    kind: str                     # "fake" or "real"
    client: Any                   # kubernetes.client.ApiClient, an admin
    namespace: str                # a fresh namespace
    restricted: str               # a namespace enforcing Pod Security "restricted"
    user_client: Any              # a user with no Role in `namespace`
    user: str                     # that user's name, as the API server reports it
    fake: Any = None              # the FakeCluster, for the fake run's own controls

    def deny_user(self, verb: str, resource: str) -> None:
        """The user may not VERB RESOURCE in `namespace` (on the real server it has no Role there)."""
        if self.fake is not None:
            self.fake.forbid(verb, resource, namespace=self.namespace)


def _new_namespace(core, labels: dict[str, str] | None = None) -> str:
    name = f"contract-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name, "labels": labels or {}}})
    return name


@pytest.fixture(params=["fake", "real"])
def api(request, tmp_path):
    if request.param == "fake":
        from tests.fakekube import FakeCluster

        with FakeCluster(namespace="default", domain="example.com") as fake:
            admin = fake.api_client()
            core = client.CoreV1Api(admin)
            ns = _new_namespace(core)
            restricted = _new_namespace(core, {"pod-security.kubernetes.io/enforce": "restricted"})
            yield Api("fake", admin, ns, restricted, admin, "fake", fake=fake)
            admin.close()
        return
    cluster = request.getfixturevalue("real_cluster")
    admin = config.new_client_from_config(config_file=cluster.env["FNCTL_CLUSTER_ADMIN_KUBECONFIG"])
    user = config.new_client_from_config(config_file=cluster.env["FNCTL_CLUSTER_KUBECONFIG"])
    core = client.CoreV1Api(admin)
    ns = _new_namespace(core)
    restricted = _new_namespace(core, {"pod-security.kubernetes.io/enforce": "restricted"})
    try:
        yield Api("real", admin, ns, restricted, user, "fnctl-user")
    finally:
        for name in (ns, restricted):
            subprocess.run([cluster.env["FNCTL_CLUSTER_KUBECTL"], "--kubeconfig",
                            cluster.env["FNCTL_CLUSTER_ADMIN_KUBECONFIG"], "delete", "namespace", name,
                            "--wait=false"], capture_output=True)
        admin.close()
        user.close()
