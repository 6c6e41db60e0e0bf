"""The local target's deployer: functions as containers on the local Docker engine.

State lives only in container labels, so every shell (and `docker ps`) sees
the same services. Each service's port belongs to its gateway (gateway.py);
revisions run confined (fnctl.confinement) on the service's own network. A
redeploy starts the new container beside the old one, waits until it is
ready, switches the gateway to it, then stops the old one: the URL never
changes and never goes dark, and a failed or interrupted redeploy leaves the
old version serving.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fnctl import config, labels, locks, redeploy, resources, templates, validation
from fnctl.confinement import RunOptions, confined
from fnctl.deployers import gateway
from fnctl.deployers import local_options as options
from fnctl.errors import DeployError, EnvironmentProblem, Interrupted, NotFoundError, WaitTimeout
from fnctl.model import DEPLOY, WAIT, DeployRequest, DeployResult, RecordedSettings, Reporter, ServiceInfo
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
    options: RunOptions


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
        labels.BUILD_ARGS: json.dumps(redeploy.recordable(release.prepared.template, request.build_args)),
    }
    # It listens on its own network (the gateway forwards to it); its port is the same everywhere.
    runtime_env = {**env, "FNCTL_LISTEN_HOST": "0.0.0.0", "PORT": str(gateway.PORT), "K_SERVICE": request.name,
                   "K_REVISION": revision, "K_CONFIGURATION": request.name}
    if port is not None:
        state.update({labels.PORT: str(port), labels.URL: f"http://127.0.0.1:{port}"})
    return ContainerSpec(f"fnctl-{revision}", revision, release.image.reference, runtime_env,
                         {**request.labels, **state}, run_options(release))


def run_options(release: Release) -> RunOptions:
    """The revision's confinement: --memory/--cpu, else the config file's local limits."""
    limits = config.load().local_limits
    request = release.request
    return confined(gateway.network(request.name), (gateway.UPSTREAM_ALIAS,),
                    memory=resources.memory_bytes(request.memory or limits["memory"]),
                    nano_cpus=resources.nano_cpus(request.cpu or limits["cpu"]), pids=int(limits["pids"]),
                    # A ready-made image runs as its own USER (as on a cluster); a template's, as 65532.
                    root=release.prepared.template.runs_as_root or release.prepared.template is templates.READY_MADE)


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
    if release.request.memory or release.request.cpu:
        parts.append([release.request.memory, release.request.cpu])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


class LocalDeployer:
    target = "local"

    def __init__(self, engine: DockerEngine, *, bindable: Callable[[int], bool] | None = None):
        self.engine = engine
        self.gateways = gateway.Gateways(engine)
        # The port probe; tests with a fake engine replace it.
        self._bindable = bindable or _bindable

    # -- deploy -------------------------------------------------------------

    def check(self, request: DeployRequest, template: BuildTemplate) -> None:
        options.check(request, template)
        self.engine.reachable()                   # fail before cloning when there is no engine

    def serialize(self, name: str, reporter: Reporter):
        return locks.service_lock(name, reporter)

    def recorded(self, name: str) -> RecordedSettings | None:
        current = self._current(name)
        if current is None:
            return None
        return RecordedSettings(current.labels.get(labels.TEMPLATE),
                                redeploy.parse(current.labels.get(labels.BUILD_ARGS)), self._env(current))

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
        replaced_early = False
        if current and self.gateways.find(request.name) is None and current.status == "running":
            # A revision from before gateways holds the port itself on the host network: swap once.
            engine.stop(current.id)
            replaced_early = True
        new = None
        try:
            reporter.phase(DEPLOY, f"starting {spec.revision} behind 127.0.0.1:{port}")
            self.gateways.ensure(request.name, port, reporter)
            new = engine.run(spec.image, spec.name, spec.env, spec.labels, spec.options)
            if request.wait or current:
                reporter.phase(WAIT, f"waiting for {spec.revision} to answer (timeout {request.timeout:.0f}s)")
            self._wait_ready(new, request.name, release.bridge, time.monotonic() + request.timeout)
        except KeyboardInterrupt:
            self._undo(new, current, replaced_early, request.name)
            serving = f", {current.labels.get(labels.REVISION)} keeps serving" if current else ""
            raise Interrupted(f"interrupted: {spec.revision} was removed{serving}") from None
        except BaseException:
            self._undo(new, current, replaced_early, request.name)
            raise
        engine.keep_running(new.id)
        if current:
            engine.stop(current.id)
            engine.remove(current.id)
            if current.image != spec.image and current.image.startswith("fnctl/"):
                engine.remove_image(current.image)      # fnctl's own build; a ready-made image stays
        for stale in self._containers(request.name):
            if stale.id != new.id:
                engine.remove(stale.id)
        return DeployResult(self._info(engine.container(new.id) or new), built=built)

    def _undo(self, new: Container | None, current: Container | None, replaced_early: bool, name: str) -> None:
        if new is not None:
            self.engine.remove(new.id)
        if current is None:                   # a first deploy leaves nothing: no gateway, no network
            self.gateways.remove(name)
        if current is not None and replaced_early:
            self.engine.start(current.id)

    def _wait_ready(self, container: Container, service: str, bridge: bool, deadline: float) -> None:
        """Wait until the revision is ready, then switch the gateway to it (the switch itself checks
        that it accepts connections: for templates without the bridge, that is readiness)."""
        engine = self.engine
        why = None
        if bridge:
            state = engine.wait_for_log(container.id, READY_MARKER, deadline)
            if state.status == "running" and READY_MARKER in engine.logs(container.id, stderr=False):
                why = self.gateways.switch(service, container.name)
                if why is None:
                    return
        else:
            while True:
                state = engine.container(container.id) or container
                if state.status != "running":
                    break
                why = self.gateways.switch(service, container.name)
                if why is None:
                    return
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        # The log tail goes with the error (the CLI prints it between the message and the hint):
        # the container is removed, so it is the only copy.
        tail = engine.logs(container.id, tail=LOG_TAIL).rstrip() or "(the container printed nothing)"
        if state.status == "running":
            raise WaitTimeout(f"{container.name} did not become ready in time: it is running but not answering"
                              + (f" ({why})" if why else ""),
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

    def delete(self, name: str, force: bool = False) -> list[str]:
        """Remove NAME's containers (running or not) and images, also when no revision runs; only
        what has fnctl's service label or repository is found, so `force` has nothing to override."""
        validation.service_name(name)
        found = self._containers(name)
        tags = self.engine.images(f"fnctl/{name}")
        if not found and not tags and self.gateways.find(name) is None:
            raise self._not_found(name)
        had_gateway = self.gateways.remove(name)   # the port goes first: no request meets a stopping revision
        removed = []
        for c in found:
            self.engine.stop(c.id, timeout=5)
            self.engine.remove(c.id)
            removed.append(f"container {c.name}")
        self.engine.remove_network(gateway.network(name))
        removed += [f"image {tag}" for tag in tags if self.engine.remove_image(tag)]
        return removed + ([f"gateway {gateway.container_name(name)}"] if had_gateway else [])

    def labelled(self, key: str, value: str) -> list[str]:
        """The services whose containers carry the label key=value (e.g. their manifest's service)."""
        return sorted({c.labels[labels.SERVICE] for c in self.engine.containers(f"{key}={value}")
                       if labels.SERVICE in c.labels})

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

    def serialize(self, name: str, reporter: Reporter):
        return contextlib.nullcontext()       # changes nothing: nothing to keep apart

    def recorded(self, name: str) -> RecordedSettings | None:
        return None                           # planned as a first deploy

    def roll_out(self, release: Release, reporter: Reporter) -> DeployResult:
        spec = container_spec(release, 1, None, _now())
        low, high = config.load().port_range
        reporter.phase(DEPLOY, f"would start {spec.revision} on a free port of 127.0.0.1:{low}-{high}")
        self.objects.append({"kind": "Container", "target": "local", "name": spec.name, "image": spec.image,
                             "network": gateway.network(release.request.name),
                             "gateway": {"name": gateway.container_name(release.request.name),
                                         "port": f"the first free one of {low}-{high}"},
                             "run": spec.options.to_dict(), "env": spec.env, "labels": spec.labels})
        return DeployResult(ServiceInfo(name=release.request.name, target="local", revision=spec.revision,
                                        image=spec.image, template=release.prepared.template.name,
                                        env=dict(release.request.env)))


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True



def last_words(log: str) -> str | None:
    """What a stopped container said last, as its status message: its log tail without the bridge's
    readiness line, which was true once but says nothing about why it stopped."""
    lines = [line for line in log.strip().splitlines() if not line.startswith(READY_MARKER)]
    return "\n".join(lines[-5:]) or None
