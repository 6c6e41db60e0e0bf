"""The real control plane of scripts/test-cluster: kube-apiserver, controllers and Knative Serving
built from their Go modules, a node that runs pods as Docker containers (see docs/testing.md).

The session starts it when it is not up (the first start builds the components: see the README for
how long that takes) and stops it at the end when it started it, unless FNCTL_KEEP_CLUSTER=1.
Where it cannot start (not root, no Docker engine) the tests are skipped with that reason; in CI a
cluster that fails to start fails the tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, Result, fnctl, http

SCRIPT = ROOT / "scripts" / "test-cluster"


@dataclass
class RealCluster:
    env: dict[str, str]                   # what `scripts/test-cluster env` wrote
    namespace: str = "fnctl-e2e"

    @property
    def user_env(self) -> dict[str, str]:
        """fnctl's environment: the documented-Role user, and the cluster settings the docs give."""
        return {"KUBECONFIG": self.env["FNCTL_CLUSTER_KUBECONFIG"], "FNCTL_CONFIG": self.env["FNCTL_CLUSTER_CONFIG"]}

    def fnctl(self, *args: str, timeout: float = 900) -> Result:
        return fnctl(*args, env=self.user_env, timeout=timeout)

    def kubectl(self, *args: str, admin: bool = True, check: bool = True,
                stdin: str | None = None) -> subprocess.CompletedProcess:
        config = self.env["FNCTL_CLUSTER_ADMIN_KUBECONFIG" if admin else "FNCTL_CLUSTER_KUBECONFIG"]
        return subprocess.run([self.env["FNCTL_CLUSTER_KUBECTL"], "--kubeconfig", config, *args],
                              capture_output=True, text=True, check=check, timeout=120, input=stdin)

    def get(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", "-o", "json", *args).stdout)

    def curl(self, url: str, data: bytes | None = None):
        """A request to a Service URL, through the cluster's ingress on loopback (Host header routing)."""
        host = url.split("://", 1)[1].split("/", 1)[0]
        return http(f"http://{self.env['FNCTL_CLUSTER_INGRESS']}/", data=data, headers={"Host": host}, timeout=30)


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "the real test cluster needs root (network namespaces, Docker)"
    for tool in ("ip", "docker", "go", "socat", "openssl"):
        if not shutil.which(tool):
            return f"the real test cluster needs {tool} (scripts/setup installs it)"
    if os.environ.get("FNCTL_SKIP_REAL_CLUSTER"):
        return "FNCTL_SKIP_REAL_CLUSTER is set"
    return None


@pytest.fixture(scope="session")
def real_cluster():
    why = _why_not()
    if why:
        pytest.skip(why)
    was_up = subprocess.run([str(SCRIPT), "status"], capture_output=True).returncode == 0
    if not was_up:
        proc = subprocess.run([str(SCRIPT), "up"], capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            message = f"scripts/test-cluster up failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
    env = dict(line.split("=", 1) for line in
               subprocess.run([str(SCRIPT), "env"], capture_output=True, text=True, check=True).stdout.split())
    yield RealCluster(env=env)
    if not was_up and not os.environ.get("FNCTL_KEEP_CLUSTER"):
        subprocess.run([str(SCRIPT), "down"], capture_output=True, timeout=300, check=True)
        assert leftovers() == [], "scripts/test-cluster down left these behind"


def leftovers() -> list[str]:
    """What a stopped test cluster must not leave: processes, containers, networks, namespaces, files."""
    found = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"network namespace {n}" for n in ("fnctl-tc", "fnctl-tc-as") if n in netns.split()]
    containers = subprocess.run(["docker", "ps", "-aq", "--filter", "label=fnctl-tc.pod-uid"],
                                capture_output=True, text=True).stdout.split()
    found += [f"container {c}" for c in containers]
    if subprocess.run(["docker", "network", "inspect", "fnctl-tc-pods"], capture_output=True).returncode == 0:
        found.append("docker network fnctl-tc-pods")
    nat = subprocess.run(["iptables", "-t", "nat", "-S", "POSTROUTING"], capture_output=True, text=True).stdout
    found += ["NAT rule fnctl-tc" for line in nat.splitlines() if "fnctl-tc" in line]
    if Path("/run/fnctl-test-cluster").exists():
        found.append("/run/fnctl-test-cluster")
    procs = subprocess.run(["pgrep", "-f", "kube-apiserver|knative-controller|fnctl-test-node"],
                           capture_output=True, text=True).stdout.split()
    found += [f"process {p}" for p in procs]
    return found


@pytest.fixture
def unique_name():
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def bash_function(tmp_path: Path):
    def make(reply: str = "hello", name: str = "fn") -> Path:
        src = tmp_path / name
        src.mkdir(exist_ok=True)
        (src / "function.sh").write_text(f'handler() {{\n  echo "{reply} $1"\n}}\n')
        return src
    return make
