"""Registry credentials and custom domains against the real control plane (scripts/test-cluster):
the real API server's RBAC with the documented Role, Knative's webhook and kaniko's pods."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.realcluster

PASSWORD = "real-Cluster-pa55"


def test_registry_secret_and_domain_mapping(real_cluster, unique_name, bash_function):
    ns = real_cluster.namespace
    # The Role of this tree (secrets update, domainmappings), whichever tree started the cluster.
    real_cluster.kubectl("-n", ns, "apply", "-f", str(ROOT / "docs" / "fnctl-role.yaml"))
    registry = real_cluster.env["FNCTL_CLUSTER_REGISTRY"]
    secret, domain = f"{unique_name}-regcred", f"{unique_name}.fnctl.example"

    stored = subprocess.run([sys.executable, "-m", "fnctl", "set", "registry-auth", secret, "--registry", registry,
                             "--username", "ci", "--password-stdin", "--cluster", "-o", "yaml"],
                            input=PASSWORD, capture_output=True, text=True, cwd=ROOT, timeout=120,
                            env={**os.environ, **real_cluster.user_env})
    assert stored.returncode == 0, stored
    assert PASSWORD not in stored.stdout + stored.stderr
    obj = real_cluster.get("-n", ns, "secret", secret)
    assert obj["type"] == "kubernetes.io/dockerconfigjson"
    auths = json.loads(base64.b64decode(obj["data"][".dockerconfigjson"]))["auths"]
    assert auths[registry]["password"] == PASSWORD

    # The build pods are deleted after the build: watch them while the deploy runs.
    watch = subprocess.Popen([real_cluster.env["FNCTL_CLUSTER_KUBECTL"], "--kubeconfig",
                              real_cluster.env["FNCTL_CLUSTER_ADMIN_KUBECONFIG"], "-n", ns, "get", "pods", "-w",
                              "-o", "json", "-l", f"fnctl.dev/service={unique_name}"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        r = real_cluster.fnctl("deploy", "service", unique_name, "-f", str(bash_function("hello")),
                               "--build-template", "bash", "--cluster", "--registry-secret", secret,
                               "--domain", domain, "-o", "json")
    finally:
        watch.terminate()
        pods_seen = watch.communicate(timeout=30)[0]
    try:
        assert r.code == 0, r
        result = json.loads(r.out)
        assert result["ready"] is True
        assert result["domains"] in ([f"http://{domain}"], [f"https://{domain}"])
        assert f'"secretName": "{secret}"' in pods_seen and "/kaniko/.docker" in pods_seen
        ksvc = real_cluster.get("-n", ns, "ksvc", unique_name)
        assert ksvc["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": secret}]
        # Accepted by the real API server's CRD schema and Knative's webhook.
        mapping = real_cluster.get("-n", ns, "domainmapping", domain)
        assert mapping["spec"]["ref"] == {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
                                          "name": unique_name, "namespace": ns}
        described = real_cluster.fnctl("describe", "service", unique_name, "--cluster")
        assert "Domains:    http" in described.out, described
    finally:
        assert real_cluster.fnctl("delete", "service", unique_name, "--cluster").code == 0
        real_cluster.kubectl("-n", ns, "delete", "secret", secret, check=False)
    gone = real_cluster.kubectl("-n", ns, "get", "domainmapping", domain, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
