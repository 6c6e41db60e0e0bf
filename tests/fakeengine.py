"""A fake Docker engine for unit tests of the local target: DockerEngine's interface over dicts.

Each container (by name) or image has a start behaviour, chosen by the test:

    engine = FakeEngine()
    engine.behaviour["fnctl-hello-00002"] = "exit"      # ready (default), exit, hang, interrupt

`timeline` records, after every call that changes a container, how many
containers of each service were running: a zero in the middle of a redeploy
is the outage the zero-downtime swap exists to prevent.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from fnctl.dockerengine import Container
from fnctl.errors import BuildError

READY = "fnctl-bridge: ready"


class FakeEngine:
    def __init__(self) -> None:
        self.tags: dict[str, str] = {}                   # tag -> image id
        self.built: list[str] = []                       # tags, in build order
        self.behaviour: dict[str, str] = {}              # container name or image -> ready | exit | hang | interrupt
        self.failing_builds: set[str] = set()            # tags whose build fails
        self.vanishing: set[str] = set()                 # tags removed (e.g. by a prune) at the next build, once
        self.box: dict[str, Container] = {}              # id -> container
        self.restart_policy: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []           # (operation, container name)
        self.timeline: list[tuple[str, dict[str, int]]] = []
        self.networks: dict[str, dict] = {}              # name -> labels
        self.options: dict[str, object] = {}             # container name -> RunOptions
        self.switched: dict[str, str] = {}               # gateway container -> the revision it forwards to
        self._ids = itertools.count(1)

    # -- images -----------------------------------------------------------

    def reachable(self) -> None:
        pass

    def image_id(self, reference: str) -> str | None:
        return self.tags.get(reference)

    def build(self, context, tag: str, reporter, build_args=None, labels=None, secrets=None, network="host") -> str:
        if tag in self.failing_builds:
            raise BuildError(f"the image build of {tag} failed", "fake")
        if self.vanishing & self.tags.keys():
            for gone in self.vanishing & self.tags.keys():
                del self.tags[gone]
            self.vanishing.clear()
            raise BuildError(f"the image build of {tag} failed: its base image is gone", "fake")
        self.built.append(tag)
        self.tags[tag] = f"sha256:{context.digest}"
        reporter.log(f"built {tag}")
        return self.tags[tag]

    def remove_image(self, reference: str) -> bool:
        return self.tags.pop(reference, None) is not None

    def images(self, repository: str) -> list[str]:
        return [t for t in self.tags if t.split(":", 1)[0] == repository]

    # -- containers ---------------------------------------------------------

    def containers(self, label: str, all_states: bool = True) -> list[Container]:
        key, _, value = label.partition("=")
        return [c for c in self.box.values() if key in c.labels and (not value or c.labels[key] == value)
                and (all_states or c.status == "running")]

    def container(self, ident: str) -> Container | None:
        return self._find(ident)

    def run(self, image: str, name: str, env: dict[str, str], labels: dict[str, str], options=None) -> Container:
        if image not in self.tags:
            raise AssertionError(f"run of {image}, which was never built")
        c = Container(id=f"c{next(self._ids):04d}", name=name, status="running", exit_code=0,
                      labels=dict(labels), image=image, env=dict(env))
        self.box[c.id] = c
        self.options[name] = options
        self._record("run", c)
        if self._how(c) == "exit":                       # it crashes as it starts
            c.status, c.exit_code = "exited", 3
            self._record("exit", c)
        return c

    def exec(self, ident: str, command: list[str]) -> tuple[int, str]:
        gateway = self._find(ident)
        if gateway is None or gateway.status != "running":
            return 1, "no such running container"
        if command[:2] == ["/gateway", "switch"]:
            target = self._find(command[2].rsplit(":", 1)[0])
            if target is None or target.status != "running" or self._how(target) != "ready":
                return 1, f"{command[2]} does not accept connections"
            self.switched[gateway.name] = target.name
            return 0, ""
        return 127, "unknown command"

    def ensure_network(self, name: str, labels: dict[str, str], *, isolated: bool = False) -> None:
        self.networks.setdefault(name, {**labels, "isolated": str(isolated)})

    def remove_network(self, name: str) -> None:
        self.networks.pop(name, None)

    def keep_running(self, ident: str) -> None:
        self.restart_policy[ident] = "unless-stopped"

    def stop(self, ident: str, timeout: int = 10) -> None:
        c = self._find(ident)
        if c is not None and c.status == "running":
            c.status, c.exit_code = "exited", 0
            self._record("stop", c)

    def start(self, ident: str) -> None:
        c = self._find(ident)
        assert c is not None, f"start of a removed container {ident}"
        c.status = "running"
        self._record("start", c)

    def remove(self, ident: str) -> None:
        c = self._find(ident)
        if c is not None:
            del self.box[c.id]
            self._record("remove", c)

    def wait_for_log(self, ident: str, marker: str, deadline: float) -> Container:
        c = self._find(ident)
        assert c is not None
        how = self._how(c)
        if how == "interrupt":
            raise KeyboardInterrupt
        return c

    def logs(self, ident: str, tail: int | str = "all", stdout: bool = True, stderr: bool = True) -> str:
        c = self._find(ident)
        how = self._how(c) if c else "exit"
        if how == "ready" and c is not None and "fnctl.dev/gateway" in c.labels:
            return "gateway: ready on [::]:8080\n"
        if how == "ready":
            return f"{READY} on port {c.labels.get('fnctl.dev/port')}\n"
        return "Traceback: the function failed to start\n" if how == "exit" else "still starting\n"

    def log_lines(self, ident: str, follow: bool, tail: int | str = "all") -> Iterator[str]:
        yield from self.logs(ident).splitlines()

    # -- helpers --------------------------------------------------------------

    def running(self, service: str) -> list[Container]:
        return [c for c in self.containers(f"fnctl.dev/service={service}") if c.status == "running"]

    def _how(self, c: Container) -> str:
        return self.behaviour.get(c.name) or self.behaviour.get(c.image) or "ready"

    def _find(self, ident: str) -> Container | None:
        return self.box.get(ident) or next((c for c in self.box.values() if c.name == ident), None)

    def _record(self, operation: str, c: Container) -> None:
        self.calls.append((operation, c.name))
        counts: dict[str, int] = {}
        for other in self.box.values():
            service = other.labels.get("fnctl.dev/service", "")
            counts[service] = counts.get(service, 0) + (other.status == "running")
        self.timeline.append((f"{operation} {c.name}", counts))
