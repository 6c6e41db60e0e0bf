"""The front of a local service: one small gateway container per service that holds its port.

    127.0.0.1:PORT --(published)--> fnctl-NAME-gateway --(network fnctl-NAME)--> fnctl-NAME-0000N:8080

Each service has its own Docker network, `fnctl-NAME`, made internal and with no host address
(`inhibit_ipv4`): the revisions on it reach each other and their gateway, nothing else, and no
other service's container reaches them, also on an engine run without iptables (this project's
CI), where `internal` and `enable_icc=false` alone are not enforced. The gateway also joins the
shared network `fnctl`, where the engine publishes its port on 127.0.0.1 only.

A redeploy starts the new revision beside the old one; once it is ready fnctl switches the gateway
to it (`docker exec … /gateway switch HOST:PORT`, a Unix socket inside the gateway), then stops the
old one, which finishes what it was answering. After an engine restart the gateway forwards to the
alias every revision carries (only the serving one is left running). The gateway is fnctl's own
program (buildtemplates/gateway), built once into `fnctl-gateway:DIGEST` from the local Go image,
with no download and no network.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from fnctl import bridge, config, labels
from fnctl.confinement import NONROOT, TMPFS, RunOptions
from fnctl.errors import DeployError
from fnctl.model import Reporter
from fnctl.source.context import BuildContext, ContextFile, make_context

if TYPE_CHECKING:
    from fnctl.dockerengine import Container, DockerEngine

FRONT_NETWORK = "fnctl"
PORT = 8080                          # where revisions and the gateway listen inside their networks
UPSTREAM_ALIAS = "function"          # every revision's name on its service network
READY_MARKER = "gateway: ready"
START_TIMEOUT = 30.0                 # it is a small static program: seconds at most
MEMORY = 64 * 2**20

_DOCKERFILE = f"""ARG {bridge.BUILD_IMAGE_PARAMETER}
FROM ${{{bridge.BUILD_IMAGE_PARAMETER}}} AS build
WORKDIR /src
COPY gateway/ ./
RUN CGO_ENABLED=0 GOPROXY=off go build -trimpath -ldflags="-s -w" -o /out/gateway .
FROM scratch
COPY --from=build /out/gateway /gateway
USER {NONROOT}
ENTRYPOINT ["/gateway", "serve"]
"""


def network(service: str) -> str:
    return f"fnctl-{service}"


def container_name(service: str) -> str:
    return f"fnctl-{service}-gateway"


def image_context() -> BuildContext:
    folder = config.templates_dir() / "gateway"
    files = [ContextFile(f"gateway/{p.name}", p.read_bytes()) for p in sorted(folder.glob("*"))
             if p.is_file() and (p.suffix == ".go" and not p.name.endswith("_test.go") or p.name == "go.mod")]
    return make_context([ContextFile("Dockerfile", _DOCKERFILE.encode()), *files])


class Gateways:
    def __init__(self, engine: DockerEngine):
        self.engine = engine

    def find(self, service: str) -> Container | None:
        return self.engine.container(container_name(service))

    def ensure(self, service: str, port: int, reporter: Reporter) -> Container:
        """The running gateway of `service` on `port`, made (with its networks) when missing."""
        engine = self.engine
        found = self.find(service)
        if found is not None and found.status == "running" and found.labels.get(labels.PORT) == str(port):
            return found
        if found is not None:
            engine.remove(found.id)
        image = self._image(reporter)
        engine.ensure_network(FRONT_NETWORK, dict(labels.MANAGED_BY))
        engine.ensure_network(network(service), {**labels.MANAGED_BY, labels.GATEWAY: service}, isolated=True)
        reporter.log(f"starting the gateway of {service} on 127.0.0.1:{port}")
        started = engine.run(
            image, container_name(service), {"PORT": str(PORT), "FNCTL_UPSTREAM": f"{UPSTREAM_ALIAS}:{PORT}"},
            {**labels.MANAGED_BY, labels.GATEWAY: service, labels.PORT: str(port)},
            RunOptions(network=FRONT_NETWORK, extra_networks=(network(service),), publish=(PORT, port),
                       user=NONROOT, read_only=True, tmpfs=dict(TMPFS), cap_drop=("ALL",), no_new_privileges=True,
                       memory=MEMORY, pids=256, restart=True))
        state = engine.wait_for_log(started.id, READY_MARKER, time.monotonic() + START_TIMEOUT)
        if state.status != "running" or READY_MARKER not in engine.logs(started.id, stderr=False):
            engine.remove(started.id)
            raise DeployError(f"the gateway of {service} did not start",
                              "is 127.0.0.1:" + str(port) + " taken by another program? (its log is below)",
                              details=engine.logs(started.id, tail=10).strip() or None)
        return state

    def switch(self, service: str, revision: str) -> str | None:
        """Point the gateway at `revision` (a container name) once it accepts connections; None when
        done, else why not."""
        code, output = self.engine.exec(container_name(service), ["/gateway", "switch", f"{revision}:{PORT}"])
        return None if code == 0 else (output.strip() or f"exit status {code}")

    def remove(self, service: str) -> bool:
        """Stop and remove `service`'s gateway and its network; whether there was a gateway."""
        found = self.find(service)
        if found is not None:
            self.engine.stop(found.id, timeout=5)
            self.engine.remove(found.id)
        self.engine.remove_network(network(service))
        return found is not None

    def _image(self, reporter: Reporter) -> str:
        context = image_context()
        tag = f"fnctl-gateway:{context.short_digest}"
        if self.engine.image_id(tag) is None:
            reporter.log(f"building the local gateway image {tag}")
            go_image = config.load().image(bridge.BUILD_IMAGE)
            self.engine.build(context, tag, reporter, build_args={bridge.BUILD_IMAGE_PARAMETER: go_image},
                              labels=dict(labels.MANAGED_BY), network="none")
        return tag
