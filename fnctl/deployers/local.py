"""The local target's deployer: functions as containers on the local Docker engine.

State lives only in container labels, so every shell (and `docker ps`) sees
the same services. A redeploy starts the new container beside the old one
on the same port (the bridge listens with SO_REUSEPORT), waits until it is
ready, then stops the old one: the URL never changes and never goes dark,
and a failed or interrupted redeploy leaves the old version serving.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fnctl import config, labels, validation
from fnctl.deployers import local_options as options
from fnctl.errors import DeployError, EnvironmentProblem, Interrupted, NotFoundError, WaitTimeout
from fnctl.model import DEPLOY, WAIT, DeployRequest, DeployResult, Reporter, ServiceInfo
from fnctl.templates import BuildTemplate

if TYPE_CHECKING:
    from fnctl.dockerengine import Container, DockerEngine
    from fnctl.pipeline import Release

READY_MARKER = "fnctl-bridge: ready"
LOG_TAIL = 20


@dataclass(frozen=True)
class ContainerSpec:
    """One revision's container: what the engine is asked to run."""

    name: str                     # fnctl-NAME-00002
    revision: str                 # NAME-00002
    image: str
    env: dict[str, str]
    labels: dict[str, str]


def container_spec(release: Release, generation: int, port: int | None, created: str) -> ContainerSpec:
    """The container of `release` as revision `generation` on `port` (None: not chosen yet)."""
    request = release.request
    env = run_env(request)
    revision = f"{request.name}-{generation:05d}"
    state = {
        labels.SERVICE: request.name, labels.GENERATION: str(generation), labels.REVISION: revision,
        labels.TEMPLATE: release.prepared.template.name, labels.CREATED: created,
        labels.SOURCE: release.prepared.origin[:250], labels.FINGERPRINT: fingerprint(release, env),
        labels.ENV_NAMES: json.dumps(list(request.env)), labels.BRIDGE: "true" if release.bridge else "false",
    }
    runtime_env = {**env, "FNCTL_LISTEN_HOST": "127.0.0.1", "K_SERVICE": request.name,
                   "K_REVISION": revision, "K_CONFIGURATION": request.name}
    if port is not None:
        state.update({labels.PORT: str(port), labels.URL: f"http://127.0.0.1:{port}"})
        runtime_env["PORT"] = str(port)
    return ContainerSpec(f"fnctl-{revision}", revision, release.image.reference, runtime_env,
                         {**request.labels, **state})


def run_env(request: DeployRequest) -> dict[str, str]:
    """What the function's environment gets from the request: env files, --env (which wins, as env
    wins over envFrom), and the bridge's invocation cap."""
    env = {**options.secret_env(request), **request.env}
    if request.concurrency is not None:
        env["INVOKER_COUNT"] = str(request.concurrency)
    return env


def fingerprint(release: Release, env: dict[str, str]) -> str:
    """Image, environment names and --label values; the same fingerprint and the same environment
    values (read from the running container: values stay out of labels, even hashed) mean nothing
    to restart."""
    parts: list = [release.image.digest or release.image.reference, sorted(env)]
    if release.request.labels:
        parts.append(sorted(release.request.labels.items()))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


class LocalDeployer:
    target = "local"

    def __init__(self, engine: DockerEngine, *, answers: Callable[[int], bool] | None = None,
                 bindable: Callable[[int], bool] | None = None):
        self.engine = engine
        # Port probes; tests with a fake engine replace them.
        self._answers = answers or _answers
        self._bindable = bindable or _bindable

    # -- deploy -------------------------------------------------------------

    def check(self, request: DeployRequest, template: BuildTemplate) -> None:
        options.check(request, template)
        self.engine.reachable()                   # fail before cloning when there is no engine

    def roll_out(self, release: Release, reporter: Reporter) -> DeployResult:
        request, engine = release.request, self.engine
        built = not release.image.cached
        current = self._current(request.name)
        port = int(current.labels[labels.PORT]) if current else self._free_port()
        generation = int(current.labels.get(labels.GENERATION, "0")) + 1 if current else 1
        created = (current.labels.get(labels.CREATED) if current else None) or _now()
        spec = container_spec(release, generation, port, created)
        if current and current.status == "running" \
                and current.labels.get(labels.FINGERPRINT) == spec.labels[labels.FINGERPRINT] \
                and self._values(current, run_env(request)) == run_env(request):
            reporter.phase(DEPLOY, f"{request.name} is unchanged; {current.labels[labels.REVISION]} keeps serving")
            return DeployResult(self._info(current), unchanged=True, built=False)

        engine.remove(spec.name)                  # a leftover of an interrupted deploy of this revision
        reporter.phase(DEPLOY, f"starting {spec.revision} on 127.0.0.1:{port}")
        replaced_early = False
        if current and release.bridge and _migrate_req_off():
            reporter.note("net.ipv4.tcp_migrate_req is 0: a connection queued on the old revision at the switch "
                          "may be reset; `sysctl -w net.ipv4.tcp_migrate_req=1` hands them over (docs/local.md)")
        if current and (not release.bridge or current.labels.get(labels.BRIDGE) != "true"):
            # Without the bridge's SO_REUSEPORT the two cannot share the port: swap.
            engine.stop(current.id)
            replaced_early = True
        new = None
        try:
            new = engine.run(spec.image, spec.name, spec.env, spec.labels)
            if request.wait or current:
                reporter.phase(WAIT, f"waiting for {spec.revision} to answer (timeout {request.timeout:.0f}s)")
                self._wait_ready(new, port, release.bridge, time.monotonic() + request.timeout)
        except KeyboardInterrupt:
            self._undo(new, current, replaced_early)
            serving = f", {current.labels.get(labels.REVISION)} keeps serving" if current else ""
            raise Interrupted(f"interrupted: {spec.revision} was removed{serving}") from None
        except BaseException:
            self._undo(new, current, replaced_early)
            raise
        engine.keep_running(new.id)
        if current:
            engine.stop(current.id)
            engine.remove(current.id)
            if current.image != spec.image:
                engine.remove_image(current.image)
        for stale in self._containers(request.name):
            if stale.id != new.id:
                engine.remove(stale.id)
        return DeployResult(self._info(engine.container(new.id) or new), built=built)

    def _undo(self, new: Container | None, current: Container | None, replaced_early: bool) -> None:
        if new is not None:
            self.engine.remove(new.id)
        if current is not None and replaced_early:
            self.engine.start(current.id)

    def _wait_ready(self, container: Container, port: int, bridge: bool, deadline: float) -> None:
        engine = self.engine
        if bridge:
            state = engine.wait_for_log(container.id, READY_MARKER, deadline)
            if state.status == "running" and READY_MARKER in engine.logs(container.id, stderr=False):
                return
        else:
            while True:
                state = engine.container(container.id) or container
                if state.status != "running" or self._answers(port) or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            if state.status == "running" and self._answers(port):
                return
        # The log tail goes with the error (the CLI prints it between the message and the hint):
        # the container is removed, so it is the only copy.
        tail = engine.logs(container.id, tail=LOG_TAIL).rstrip() or "(the container printed nothing)"
        if state.status == "running":
            raise WaitTimeout(f"{container.name} did not become ready in time: it is running but not answering",
                              "raise --timeout if the function starts slowly, or read its log above",
                              details=tail)
        raise DeployError(
            f"{container.name} exited at start with status {state.exit_code}"
            + (f": {state.error}" if state.error else ""),
            "fix the function (its log is above); a previous version, if any, keeps serving",
            details=tail)

    # -- queries ------------------------------------------------------------

    def _containers(self, name: str) -> list[Container]:
        return self.engine.containers(f"{labels.SERVICE}={name}")

    def _current(self, name: str) -> Container | None:
        """The serving container: the running one of the highest generation."""
        found = sorted(self._containers(name), key=lambda c: (c.status == "running",
                                                               int(c.labels.get(labels.GENERATION, "0"))))
        return found[-1] if found else None

    def _free_port(self) -> int:
        low, high = config.load().port_range
        taken = {int(c.labels.get(labels.PORT, "0")) for c in self.engine.containers(labels.SERVICE)}
        for port in range(low, high + 1):
            if port not in taken and self._bindable(port):
                return port
        raise EnvironmentProblem(f"no free port on 127.0.0.1 in {low}-{high} for a local service",
                                 "delete services you no longer need (`fnctl delete service NAME`), "
                                 "or widen the range with FNCTL_LOCAL_PORTS=LOW-HIGH")

    def _info(self, c: Container) -> ServiceInfo:
        running = c.status == "running"
        return ServiceInfo(
            name=c.labels.get(labels.SERVICE, ""), target="local", url=c.labels.get(labels.URL), ready=running,
            reason=None if running else f"Exited({c.exit_code})" if c.status == "exited" else c.status.capitalize(),
            message=None if running else last_words(self.engine.logs(c.id, tail=6)),  # 6: one may be the ready line
            revision=c.labels.get(labels.REVISION), image=c.image, template=c.labels.get(labels.TEMPLATE),
            created=c.labels.get(labels.CREATED), env=self._env(c))

    def _env(self, c: Container) -> dict[str, str]:
        """The --env values of a revision: the env-names label says which of its variables they are."""
        names = json.loads(c.labels.get(labels.ENV_NAMES) or "null")
        if names is None:                     # a revision made before env-names: its old env label
            return json.loads(c.labels.get(labels.ENV, "{}"))
        return self._values(c, names)

    def _values(self, c: Container, names) -> dict[str, str]:
        """The values of `names` in the container's environment (docker keeps it there anyway)."""
        if not names:
            return {}
        inspected = self.engine.container(c.id)
        actual = inspected.env if inspected else {}
        return {n: actual[n] for n in names if n in actual}

    def list(self) -> list[ServiceInfo]:
        names = sorted({c.labels[labels.SERVICE] for c in self.engine.containers(labels.SERVICE)})
        return [self._info(c) for c in (self._current(n) for n in names) if c is not None]

    def describe(self, name: str) -> ServiceInfo:
        current = self._current(name)
        if current is None:
            raise self._not_found(name)
        return self._info(current)

    def logs(self, name: str, follow: bool = False, tail: int | None = None) -> Iterator[str]:
        """The serving revision's output: the bridge's lines and the function's stdout/stderr."""
        current = self._current(name)
        if current is None:
            raise self._not_found(name)
        return self.engine.log_lines(current.id, follow, "all" if tail is None else tail)

    def delete(self, name: str, force: bool = False) -> None:
        """Remove NAME's containers and images; only containers with fnctl's service label are
        found, so there is nothing of someone else's for `force` to override."""
        validation.service_name(name)
        found = self._containers(name)
        if not found:
            raise self._not_found(name)
        for c in found:
            self.engine.stop(c.id, timeout=5)
            self.engine.remove(c.id)
        for tag in self.engine.images(f"fnctl/{name}"):
            self.engine.remove_image(tag)

    def _not_found(self, name: str) -> NotFoundError:
        names = sorted({c.labels[labels.SERVICE] for c in self.engine.containers(labels.SERVICE)})
        return NotFoundError(f"no local service named {name!r}",
                             "local services: " + (", ".join(names) if names else "none")
                             + " (`fnctl get service` lists them)")


class LocalDeployPlan:
    """Records the container LocalDeployer would start (as a first deploy), touching no engine."""

    target = "local"

    def __init__(self, objects: list[dict]):
        self.objects = objects

    def check(self, request: DeployRequest, template: BuildTemplate) -> None:
        options.check(request, template)

    def roll_out(self, release: Release, reporter: Reporter) -> DeployResult:
        spec = container_spec(release, 1, None, _now())
        low, high = config.load().port_range
        reporter.phase(DEPLOY, f"would start {spec.revision} on a free port of 127.0.0.1:{low}-{high}")
        self.objects.append({"kind": "Container", "target": "local", "name": spec.name, "image": spec.image,
                             "network": "host", "port": f"the first free one of {low}-{high}",
                             "env": spec.env, "labels": spec.labels})
        return DeployResult(ServiceInfo(name=release.request.name, target="local", revision=spec.revision,
                                        image=spec.image, template=release.prepared.template.name,
                                        env=dict(release.request.env)))


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _migrate_req_off() -> bool:
    """Linux 5.14+ can move connections queued on a closing SO_REUSEPORT listener to its peers."""
    try:
        with open("/proc/sys/net/ipv4/tcp_migrate_req") as f:
            return f.read().strip() == "0"
    except OSError:
        return False


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def last_words(log: str) -> str | None:
    """What a stopped container said last, as its status message: its log tail without the bridge's
    readiness line, which was true once but says nothing about why it stopped."""
    lines = [line for line in log.strip().splitlines() if not line.startswith(READY_MARKER)]
    return "\n".join(lines[-5:]) or None
