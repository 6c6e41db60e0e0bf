"""Local functions cannot reach each other, and each revision runs confined (issue 10).

Function B probes, from inside its own container, every address of function A: A's
revision on its network (the public port and the Runtime API ports its bridge listens on),
A's gateway on both its networks, and A's public port on 127.0.0.1. The same probe
reaching B's own revision shows the probe works. Only 127.0.0.1 and addresses on the
networks fnctl made are ever probed.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
import uuid

import pytest

from tests.conftest import EXAMPLES, fnctl, needs_docker

pytestmark = [pytest.mark.docker, needs_docker]

PROBE = 'for target in "$@"; do if timeout 3 bash -c "exec 3<>/dev/tcp/${target%:*}/${target##*:}" 2>/dev/null; ' \
        'then echo "$target open"; else echo "$target closed"; fi; done'


@pytest.fixture
def two_services():
    names = [f"t-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    yield names
    for name in names:
        fnctl("delete", "service", name, "--local")


def inspect(name: str) -> dict:
    out = subprocess.run(["docker", "inspect", name], capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]


def addresses(container: dict) -> dict[str, str]:
    return {net: ep["IPAddress"] for net, ep in container["NetworkSettings"]["Networks"].items()}


def listening_ports(container: str) -> set[int]:
    """The TCP ports listening inside `container` (its bridge's public and Runtime API ports)."""
    out = subprocess.run(["docker", "exec", container, "cat", "/proc/net/tcp", "/proc/net/tcp6"],
                         capture_output=True, text=True, check=True).stdout
    ports = set()
    for line in out.splitlines():
        cols = line.split()            # data rows: "N: LOCAL_ADDR:PORT REMOTE STATE ...", 0A = listening
        if len(cols) > 3 and cols[0].endswith(":") and cols[3] == "0A":
            ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def probe(container: str, targets: list[str]) -> dict[str, str]:
    out = subprocess.run(["docker", "exec", container, "bash", "-c", PROBE, "probe", *targets],
                         capture_output=True, text=True, timeout=120).stdout
    return dict(line.rsplit(" ", 1) for line in out.splitlines())


def test_a_function_reaches_neither_another_functions_revision_nor_its_gateway_nor_its_port(two_services):
    a, b = two_services
    urls = {}
    for name in (a, b):
        r = fnctl("deploy", "service", name, "-f", str(EXAMPLES / "bash-echo"), "--build-template", "bash",
                  "--local", "-o", "json")
        assert r.code == 0, r
        urls[name] = json.loads(r.out)["url"]
    rev_a, rev_b = f"fnctl-{a}-00001", f"fnctl-{b}-00001"
    ports_a = listening_ports(rev_a)
    assert 8080 in ports_a and len(ports_a) >= 2, f"the bridge's public and Runtime API ports: {ports_a}"
    (ip_a,) = addresses(inspect(rev_a)).values()
    gateway_a = addresses(inspect(f"fnctl-{a}-gateway"))
    assert set(gateway_a) == {"fnctl", f"fnctl-{a}"}
    public_a = int(urls[a].rsplit(":", 1)[1])
    targets = [f"{ip_a}:{port}" for port in sorted(ports_a)] + [f"{ip}:8080" for ip in gateway_a.values()] \
        + [f"127.0.0.1:{public_a}"]
    (ip_b,) = addresses(inspect(rev_b)).values()

    seen = probe(rev_b, [*targets, f"{ip_b}:8080"])
    assert seen.pop(f"{ip_b}:8080") == "open", "the probe reaches B's own revision"
    assert seen == {t: "closed" for t in targets}
    # A still answers on its URL, and only through its gateway.
    with urllib.request.urlopen(urllib.request.Request(urls[a], data=b"still here"), timeout=10) as resp:
        assert b"still here" in resp.read()
    published = inspect(f"fnctl-{a}-gateway")["HostConfig"]["PortBindings"]
    assert published == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(public_a)}]}
    assert inspect(rev_a)["HostConfig"]["PortBindings"] in (None, {})


def test_a_local_revision_runs_confined_with_the_limits_asked_for(service):
    r = fnctl("deploy", "service", service, "-f", str(EXAMPLES / "bash-echo"), "--build-template", "bash",
              "--local", "--memory", "200Mi", "--cpu", "500m", "-o", "json")
    assert r.code == 0, r
    container = inspect(f"fnctl-{service}-00001")
    host = container["HostConfig"]
    assert container["Config"]["User"] == "65532:65532"
    assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["ReadonlyRootfs"] is True and "/tmp" in host["Tmpfs"]
    assert host["Memory"] == 200 * 2**20 and host["MemorySwap"] == 200 * 2**20
    assert host["NanoCpus"] == 500_000_000 and host["PidsLimit"] == 4096
    assert host["NetworkMode"] == f"fnctl-{service}" and not host.get("Privileged")
    # What the process inside actually has: uid 65532, no capabilities, a root it cannot write.
    status = subprocess.run(["docker", "exec", f"fnctl-{service}-00001", "bash", "-c",
                             "grep -E '^(Uid|CapEff|NoNewPrivs)' /proc/self/status; touch /x 2>&1; touch /tmp/x "
                             "&& echo tmp-writable"], capture_output=True, text=True).stdout
    assert "Uid:\t65532" in status and "CapEff:\t0000000000000000" in status and "NoNewPrivs:\t1" in status
    assert "Read-only file system" in status and "tmp-writable" in status
    with urllib.request.urlopen(urllib.request.Request(json.loads(r.out)["url"], data=b"hi"), timeout=10) as resp:
        assert b"hi" in resp.read()
