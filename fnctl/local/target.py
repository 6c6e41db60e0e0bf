"""The embedded default: functions as containers on the local Docker engine.

State lives only in container labels, so every shell (and `docker ps`) sees
the same services. A redeploy starts the new container beside the old one
on the same port (the bridge listens with SO_REUSEPORT), waits until it is
ready, then stops the old one: the URL never changes and never goes dark,
and a failed redeploy leaves the old version serving.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import socket
import time
from collections.abc import Iterator

from fnctl import config, validation
from fnctl.builders.docker import Container, DockerEngine
from fnctl.errors import BuildError, DeployError, EnvironmentProblem, Interrupted, NotFoundError, WaitTimeout
from fnctl.model import DeployRequest, DeployResult, Reporter, ServiceInfo
from fnctl.pipeline import prepare
from fnctl.redact import redact

LABEL = "fnctl.dev/service"
READY_MARKER = "fnctl-bridge: ready"
LOG_TAIL = 20


def _label(key: str) -> str:
    return f"fnctl.dev/{key}"


class LocalTarget:
    name = "local"

    def __init__(self, engine: DockerEngine | None = None):
        self._engine = engine

    @property
    def engine(self) -> DockerEngine:
        if self._engine is None:
            self._engine = DockerEngine.connect()
        return self._engine

    # -- deploy -------------------------------------------------------------

    def deploy(self, request: DeployRequest, reporter: Reporter) -> DeployResult:
        validation.service_name(request.name)
        engine = self.engine                      # fail before cloning when there is no engine
        phases: dict[str, float] = {}
        clock = time.monotonic()
        reporter.phase("source", redact(request.source))
        prepared = prepare(request)
        phases["context"] = time.monotonic() - clock
        runtime_tag = None
        if prepared.runtime_context is not None:
            runtime_tag = f"fnctl-runtime/{prepared.template.name}:{prepared.runtime_context.short_digest}"
            self._ensure_runtime(prepared, runtime_tag, reporter)
        context = prepared.function_context(runtime_tag)
        tag = f"fnctl/{request.name}:{context.short_digest}"
        image_id = engine.image_id(tag)
        built = image_id is None
        clock = time.monotonic()
        secrets = prepared.template.secrets(prepared.values)
        if built:
            reporter.phase("build", f"{tag} ({len(context.files)} files, {len(context.data)} bytes)")
            try:
                image_id = engine.build(context, tag, reporter, secrets=secrets).digest
            except BuildError:
                if runtime_tag is None or engine.image_id(runtime_tag) is not None:
                    raise
                # The runtime image went away mid-deploy (a prune, another shell): make it again, once.
                self._ensure_runtime(prepared, runtime_tag, reporter)
                image_id = engine.build(context, tag, reporter, secrets=secrets).digest
        else:
            reporter.phase("build", f"{tag} unchanged, using the cached image")
        phases["build"] = time.monotonic() - clock
        return self._roll_out(request, prepared.template, tag, image_id or "", built, phases, reporter,
                              bridge=prepared.runtime_context is not None, origin=prepared.origin)

    def _ensure_runtime(self, prepared, runtime_tag: str, reporter: Reporter) -> None:
        """Build the template's runtime image (bridge + language runtime) unless it exists."""
        if self.engine.image_id(runtime_tag) is None:
            reporter.phase("runtime", f"building the {prepared.template.name} runtime image {runtime_tag}")
            self.engine.build(prepared.runtime_context, runtime_tag, reporter,
                              labels={_label("runtime"): prepared.template.name})

    def _roll_out(self, request: DeployRequest, template, image: str, image_id: str, built: bool,
                  phases: dict[str, float], reporter: Reporter, bridge: bool, origin: str) -> DeployResult:
        engine = self.engine
        current = self._current(request.name)
        env = dict(request.env)
        # Values stay out of labels (even hashed): the names go in the fingerprint and the values
        # are compared with the running container's own environment.
        fingerprint = hashlib.sha256(json.dumps([image_id, sorted(env)]).encode()).hexdigest()[:16]
        if current and current.status == "running" and current.labels.get(_label("fingerprint")) == fingerprint \
                and self._env(current) == env:
            reporter.phase("deploy", f"{request.name} is unchanged; {current.labels[_label('revision')]} keeps serving")
            return DeployResult(self._info(current), unchanged=True, built=False, phases=phases)

        port = int(current.labels[_label("port")]) if current else self._free_port()
        generation = int(current.labels.get(_label("generation"), "0")) + 1 if current else 1
        revision = f"{request.name}-{generation:05d}"
        created = current.labels.get(_label("created")) if current else _now()
        labels = {
            LABEL: request.name, _label("port"): str(port), _label("generation"): str(generation),
            _label("revision"): revision, _label("template"): template.name, _label("created"): created or _now(),
            _label("source"): origin[:250], _label("fingerprint"): fingerprint,
            _label("env-names"): json.dumps(list(env)), _label("bridge"): "true" if bridge else "false",
            _label("url"): f"http://127.0.0.1:{port}",
        }
        runtime_env = {**env, "PORT": str(port), "FNCTL_LISTEN_HOST": "127.0.0.1",
                       "K_SERVICE": request.name, "K_REVISION": revision, "K_CONFIGURATION": request.name}
        name = f"fnctl-{request.name}-{generation:05d}"
        engine.remove(name)                       # a leftover of an interrupted deploy of this revision
        clock = time.monotonic()
        reporter.phase("deploy", f"starting {revision} on 127.0.0.1:{port}")
        replaced_early = False
        if current and bridge and _migrate_req_off():
            reporter.note("net.ipv4.tcp_migrate_req is 0: a connection queued on the old revision at the switch "
                          "may be reset; `sysctl -w net.ipv4.tcp_migrate_req=1` hands them over (docs/local.md)")
        if current and (not bridge or current.labels.get(_label("bridge")) != "true"):
            # Without the bridge's SO_REUSEPORT the two cannot share the port: swap.
            engine.stop(current.id)
            replaced_early = True
        new = None
        try:
            new = engine.run(image, name, runtime_env, labels)
            phases["start"] = time.monotonic() - clock
            clock = time.monotonic()
            if request.wait or current:
                reporter.phase("wait", f"waiting for {revision} to answer (timeout {request.timeout:.0f}s)")
                self._wait_ready(new, port, bridge, time.monotonic() + request.timeout)
            phases["ready"] = time.monotonic() - clock
        except KeyboardInterrupt:
            self._undo(new, current, replaced_early)
            serving = f", {current.labels.get(_label('revision'))} keeps serving" if current else ""
            raise Interrupted(f"interrupted: {revision} was removed{serving}") from None
        except BaseException:
            self._undo(new, current, replaced_early)
            raise
        engine.keep_running(new.id)
        if current:
            engine.stop(current.id)
            engine.remove(current.id)
            if current.image != image:
                engine.remove_image(current.image)
        for stale in self._containers(request.name):
            if stale.id != new.id:
                engine.remove(stale.id)
        info = self._info(engine.container(new.id) or new)
        return DeployResult(info, built=built, phases=phases)

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
                if state.status != "running" or _answers(port) or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            if state.status == "running" and _answers(port):
                return
        tail = engine.logs(container.id, tail=LOG_TAIL).rstrip()
        if state.status == "running":
            raise WaitTimeout(f"{container.name} did not become ready in time: it is running but not answering",
                              "raise --timeout if the function starts slowly, or read its log below",
                              details=tail or None)
        raise DeployError(
            f"{container.name} exited at start with status {state.exit_code}"
            + (f": {state.error}" if state.error else ""),
            "fix the function (its log is below); a previous version, if any, keeps serving",
            details=tail or "(the container printed nothing)")

    # -- queries ------------------------------------------------------------

    def _containers(self, name: str) -> list[Container]:
        return self.engine.containers(f"{LABEL}={name}")

    def _current(self, name: str) -> Container | None:
        """The serving container: the running one of the highest generation."""
        found = sorted(self._containers(name), key=lambda c: (c.status == "running",
                                                               int(c.labels.get(_label("generation"), "0"))))
        return found[-1] if found else None

    def _free_port(self) -> int:
        low, high = config.load().port_range
        taken = {int(c.labels.get(_label("port"), "0")) for c in self.engine.containers(LABEL)}
        for port in range(low, high + 1):
            if port not in taken and _bindable(port):
                return port
        raise EnvironmentProblem(f"no free port on 127.0.0.1 in {low}-{high} for a local service",
                                 "delete services you no longer need (`fnctl delete service NAME`), "
                                 "or widen the range with FNCTL_LOCAL_PORTS=LOW-HIGH")

    def _info(self, c: Container) -> ServiceInfo:
        running = c.status == "running"
        return ServiceInfo(
            name=c.labels.get(LABEL, ""), target="local", url=c.labels.get(_label("url")), ready=running,
            reason=None if running else f"Exited({c.exit_code})" if c.status == "exited" else c.status.capitalize(),
            message=None if running else (self.engine.logs(c.id, tail=5).strip() or None),
            revision=c.labels.get(_label("revision")), image=c.image, template=c.labels.get(_label("template")),
            created=c.labels.get(_label("created")), env=self._env(c))

    def _env(self, c: Container) -> dict[str, str]:
        """The --env values of a revision, read from the container's environment (docker keeps it
        there anyway); the env-names label says which of its variables they are."""
        names = json.loads(c.labels.get(_label("env-names")) or "null")
        if names is None:                     # a revision made before env-names: its old env label
            return json.loads(c.labels.get(_label("env"), "{}"))
        if not names:
            return {}
        inspected = self.engine.container(c.id)
        actual = inspected.env if inspected else {}
        return {n: actual[n] for n in names if n in actual}

    def list(self) -> list[ServiceInfo]:
        names = sorted({c.labels[LABEL] for c in self.engine.containers(LABEL)})
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
        names = sorted({c.labels[LABEL] for c in self.engine.containers(LABEL)})
        return NotFoundError(f"no local service named {name!r}",
                             "local services: " + (", ".join(names) if names else "none")
                             + " (`fnctl get service` lists them)")


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
