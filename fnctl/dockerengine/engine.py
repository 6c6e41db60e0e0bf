"""The Docker engine adapter: images and containers over the `docker` SDK.

Builds use the classic builder through the SDK, or the engine's BuildKit when a
build needs secrets (buildkit.py), on the network the caller names (host or
none). Containers run as RunOptions say: on a Docker network, confined, with a
port published on loopback. Engine failures come out as fnctl errors; nothing
here knows about services or revisions.

`docker` is imported with this module: only a real local target imports it
(fnctl.app.local_target), and every such command talks to the engine.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import io
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import docker

from fnctl.confinement import RunOptions
from fnctl.dockerengine import buildkit
from fnctl.errors import BuildError, DeployError, EnvironmentProblem, FnctlError, Interrupted
from fnctl.model import Reporter
from fnctl.source.context import BuildContext

_STEP = re.compile(r"^Step \d+/\d+ : ")
LOG_TAIL = 25


@dataclass
class Container:
    """What the local deployer needs to know of one container."""

    id: str
    name: str
    status: str                   # created, running, exited, ...
    exit_code: int
    labels: dict[str, str]
    image: str                    # the reference it was created from
    error: str = ""
    env: dict[str, str] = field(default_factory=dict)     # filled by container() (inspect) only


class DockerEngine:
    """One engine connection, made on first use (or by `reachable`), shared by builder and deployer."""

    def __init__(self, client: Any = None):
        self._client = client

    @property
    def _api(self) -> Any:
        if self._client is None:
            self._client = _connect()
        return self._client.api

    @classmethod
    def connect(cls) -> DockerEngine:
        """An engine connected now."""
        engine = cls()
        engine.reachable()
        return engine

    def reachable(self) -> None:
        """Connect now: EnvironmentProblem when no engine answers."""
        self._api  # noqa: B018 - the property connects

    # -- images -----------------------------------------------------------

    def image_id(self, reference: str) -> str | None:
        try:
            return self._api.inspect_image(reference)["Id"]
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as e:
            raise _engine_error(e) from e

    def pull(self, reference: str, reporter: Reporter) -> str:
        """Pull a ready-made image the engine lacks; its image id."""
        from fnctl.errors import SourceError

        try:
            for chunk in self._api.pull(reference, stream=True, decode=True):
                if "error" in chunk:
                    raise docker.errors.APIError(chunk["error"])
                if chunk.get("status") and not chunk.get("progressDetail"):
                    reporter.log(" ".join(str(chunk[k]) for k in ("id", "status") if chunk.get(k)))
        except docker.errors.APIError as e:
            raise SourceError(f"image {reference} is not on the Docker engine and cannot be pulled: {_short(e)}",
                              "check the reference (`docker pull` it to see why), or build it first") from e
        image_id = self.image_id(reference)
        if image_id is None:
            raise SourceError(f"the Docker engine pulled {reference} but does not have it",
                              "check the reference and `docker images`")
        return image_id

    def remove_image(self, reference: str) -> bool:
        try:
            self._api.remove_image(reference, noprune=False)
            return True
        except docker.errors.APIError:
            return False          # in use or gone: nothing to tidy

    def images(self, repository: str) -> list[str]:
        """Tags of the images in `repository` (e.g. fnctl/NAME)."""
        return [tag for img in self._api.images(name=repository) for tag in (img.get("RepoTags") or [])]

    def build(self, context: BuildContext, tag: str, reporter: Reporter,
              build_args: dict[str, str] | None = None, labels: dict[str, str] | None = None,
              secrets: dict[str, str] | None = None, network: str = "host") -> str:
        """Build `context` as `tag` with its RUN steps on `network` (host or none), streaming the
        engine's output to the reporter; the image id.

        With `secrets` (id -> value; a template with secret parameters) the engine's BuildKit
        builds it and serves them to `RUN --mount=type=secret,id=ID` steps (see buildkit.py);
        otherwise the classic builder does, as the SDK's build does.
        """
        tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL)
        step = ""
        image_id = None
        try:
            if secrets is not None:
                stream = self._buildkit_build(context, tag, build_args or {}, labels or {}, secrets, network)
            else:
                stream = self._api.build(
                    fileobj=io.BytesIO(context.data), custom_context=True, encoding="gzip", tag=tag,
                    network_mode=network, rm=True, forcerm=True, pull=False, decode=True,
                    buildargs=build_args or {}, labels=labels or {})
            for chunk in stream:
                if "step" in chunk:
                    step = chunk["step"]
                    tail.append(step)
                    reporter.log(step)
                elif "stream" in chunk:
                    for line in chunk["stream"].splitlines():
                        if not line.strip():
                            continue
                        if _STEP.match(line):
                            step = line
                        tail.append(line)
                        reporter.log(line)
                elif "error" in chunk:
                    message = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                    tail.append(message.strip())
                    reporter.log(message.strip())
                    raise BuildError(
                        f"the image build failed at {step or 'the start'}: {message.strip()}",
                        "fix the function or its dependencies; the build log above shows the failing step",
                        details="\n".join(tail))
                elif "aux" in chunk and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
        except docker.errors.APIError as e:
            raise BuildError(f"the Docker engine refused the build: {_short(e)}",
                             "check the engine's state (docker info)", details="\n".join(tail)) from e
        except KeyboardInterrupt:
            raise Interrupted("interrupted during the build: no image was tagged", None) from None
        image_id = image_id or self.image_id(tag)
        if not image_id:
            raise BuildError("the build ended without an image", "run it again with the log above",
                             details="\n".join(tail))
        return image_id

    def _buildkit_build(self, context: BuildContext, tag: str, build_args: dict[str, str],
                        labels: dict[str, str], secrets: dict[str, str], network: str) -> Iterator[dict]:
        """The engine's BuildKit build (API version 2) with a session serving `secrets`, as
        chunks shaped like the classic build's ({"stream"}, {"error"}, {"aux": {"ID"}}),
        plus {"step"} when a step starts."""
        session_id = buildkit.new_session_id()
        upgraded = self._api._post(self._api._url("/session"), headers=buildkit.session_headers(session_id),
                                   stream=True)
        if upgraded.status_code != 101:
            raise BuildError(f"the Docker engine refused a BuildKit session ({upgraded.status_code}), which "
                             "a template with secret parameters needs", "use a Docker engine 18.09 or newer "
                             "with BuildKit (the default since 23.0)")
        sock = self._api._get_raw_response_socket(upgraded)
        params = {"t": tag, "version": "2", "session": session_id, "networkmode": network, "rm": True,
                  "forcerm": True, "buildargs": json.dumps(build_args), "labels": json.dumps(labels)}
        # What the engine sent after the upgrade may already sit in the response's buffer.
        with buildkit.SecretSession(getattr(sock, "_sock", sock), secrets, reader=upgraded.raw._fp.fp):
            response = self._api._post(self._api._url("/build"), params=params, data=io.BytesIO(context.data),
                                       headers={"Content-Type": "application/x-tar", "Content-Encoding": "gzip"},
                                       stream=True)
            self._api._raise_for_status(response)
            started: set[bytes] = set()
            for chunk in self._api._stream_helper(response, decode=True):
                if chunk.get("id") == "moby.buildkit.trace":
                    for line, is_step in buildkit.trace_lines(base64.b64decode(chunk.get("aux") or ""), started):
                        yield {"step": line} if is_step else {"stream": line}
                elif chunk.get("id") == "moby.image.id":
                    yield {"aux": chunk.get("aux") or {}}
                elif "error" in chunk or "errorDetail" in chunk:
                    yield {"error": chunk.get("error") or "", "errorDetail": chunk.get("errorDetail") or {}}

    # -- containers ---------------------------------------------------------

    def containers(self, label: str, all_states: bool = True) -> list[Container]:
        """Containers with `label`, from one list call (no inspect per container)."""
        try:
            found = self._api.containers(all=all_states, filters={"label": label})
        except docker.errors.APIError as e:
            raise _engine_error(e) from e
        return [_from_list(item) for item in found]

    def container(self, ident: str) -> Container | None:
        try:
            info = self._api.inspect_container(ident)
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError as e:
            raise _engine_error(e) from e
        state = info.get("State", {})
        return Container(
            id=info["Id"], name=info["Name"].lstrip("/"), status=state.get("Status", "unknown"),
            exit_code=int(state.get("ExitCode") or 0), labels=info["Config"].get("Labels") or {},
            image=info["Config"].get("Image", ""), error=state.get("Error", ""),
            env=dict(item.partition("=")[::2] for item in info["Config"].get("Env") or []))

    def run(self, image: str, name: str, env: dict[str, str], labels: dict[str, str],
            options: RunOptions | None = None) -> Container:
        """Start a detached container (by default on the host network, as it always was)."""
        options = options or RunOptions()
        api = self._api
        try:
            host_config = api.create_host_config(
                network_mode=options.network, init=False,
                log_config={"Type": "json-file", "Config": {"max-size": "10m"}},
                port_bindings={options.publish[0]: ("127.0.0.1", options.publish[1])} if options.publish else None,
                read_only=options.read_only or None, tmpfs=options.tmpfs or None,
                cap_drop=list(options.cap_drop) or None,
                security_opt=["no-new-privileges:true"] if options.no_new_privileges else None,
                mem_limit=options.memory, memswap_limit=options.memory, nano_cpus=options.nano_cpus,
                pids_limit=options.pids,
                restart_policy={"Name": "unless-stopped"} if options.restart else None)
            networking = None
            if options.network != "host" and options.aliases:
                networking = api.create_networking_config(
                    {options.network: api.create_endpoint_config(aliases=list(options.aliases))})
            created = api.create_container(
                image, name=name, environment=env, labels=labels, detach=True, user=options.user,
                ports=[options.publish[0]] if options.publish else None,
                host_config=host_config, networking_config=networking)
            for network in options.extra_networks:
                api.connect_container_to_network(created["Id"], network)
            api.start(created["Id"])
        except docker.errors.APIError as e:
            self.remove(name)
            raise DeployError(f"the Docker engine could not start {name}: {_short(e)}",
                              "check `docker info` and that the image exists") from e
        container = self.container(created["Id"])
        assert container is not None
        return container

    def exec(self, ident: str, command: list[str]) -> tuple[int, str]:
        """Run `command` in the running container: its exit code and output."""
        try:
            started = self._api.exec_create(ident, command, stdout=True, stderr=True)
            output = self._api.exec_start(started["Id"]).decode(errors="replace")
            return int(self._api.exec_inspect(started["Id"]).get("ExitCode") or 0), output
        except docker.errors.APIError as e:
            return 126, _short(e)

    # -- networks -------------------------------------------------------------

    def ensure_network(self, name: str, labels: dict[str, str], *, isolated: bool = False) -> None:
        """Create network `name` unless it exists. An isolated one is internal and gives the host no
        address on it: its containers reach each other and nothing else, whatever the engine's
        iptables setting (internal alone is enforced by iptables rules)."""
        if any(n["Name"] == name for n in self._api.networks(names=[name])):     # names= matches substrings
            return
        options = {"com.docker.network.bridge.inhibit_ipv4": "true"} if isolated else None
        try:
            self._api.create_network(name, driver="bridge", internal=isolated, labels=labels, options=options,
                                     check_duplicate=True)
        except docker.errors.APIError as e:
            if e.status_code != 409:            # made by another deploy in the meantime
                raise _engine_error(e) from e

    def remove_network(self, name: str) -> None:
        with contextlib.suppress(docker.errors.APIError):
            self._api.remove_network(name)

    def keep_running(self, ident: str) -> None:
        """Once a container proved itself, let the engine bring it back after a restart."""
        self._api.update_container(ident, restart_policy={"Name": "unless-stopped"})

    def logs(self, ident: str, tail: int | str = "all", stdout: bool = True, stderr: bool = True) -> str:
        try:
            return self._api.logs(ident, stdout=stdout, stderr=stderr, tail=tail).decode(errors="replace")
        except docker.errors.APIError:
            return ""

    def log_lines(self, ident: str, follow: bool, tail: int | str = "all") -> Iterator[str]:
        """The container's output (stdout and stderr, as written) line by line; with
        `follow`, until the container stops."""
        pending = b""
        try:
            for chunk in self._api.logs(ident, stdout=True, stderr=True, stream=True, follow=follow, tail=tail):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace")
        except docker.errors.APIError as e:
            raise _engine_error(e) from e
        if pending:
            yield pending.decode(errors="replace")

    def stop(self, ident: str, timeout: int = 10) -> None:
        with contextlib.suppress(docker.errors.APIError):
            self._api.stop(ident, timeout=timeout)

    def start(self, ident: str) -> None:
        self._api.start(ident)

    def remove(self, ident: str) -> None:
        with contextlib.suppress(docker.errors.APIError):
            self._api.remove_container(ident, force=True)

    def wait_for_log(self, ident: str, marker: str, deadline: float) -> Container:
        """Wait until the container prints `marker` on stdout, exits, or time runs out.

        Follows the log stream (one request) rather than polling; the stream ends
        when the container exits.
        """
        seen = threading.Event()

        def follow() -> None:
            buffer = b""
            try:
                for chunk in self._api.logs(ident, stdout=True, stderr=False, stream=True, follow=True):
                    buffer = (buffer + chunk)[-4096:]
                    if marker.encode() in buffer:
                        break
            except Exception:        # the engine dropped the stream: the state below tells why
                pass
            seen.set()

        threading.Thread(target=follow, name=f"logs-{ident[:12]}", daemon=True).start()
        seen.wait(max(0.0, deadline - time.monotonic()))
        state = self.container(ident)
        if state is None:
            raise DeployError("the container disappeared while starting", "was it removed by hand?")
        return state


def _from_list(item: dict) -> Container:
    status_text = item.get("Status", "")
    code = re.search(r"Exited \((-?\d+)\)", status_text)
    return Container(
        id=item["Id"], name=(item.get("Names") or ["/"])[0].lstrip("/"), status=item.get("State", "unknown"),
        exit_code=int(code.group(1)) if code else 0, labels=item.get("Labels") or {},
        image=item.get("Image", ""))


def _short(error: Exception) -> str:
    text = getattr(error, "explanation", None) or str(error)
    return str(text).strip().splitlines()[0][:400] if str(text).strip() else type(error).__name__


def _engine_error(error: Exception) -> FnctlError:
    return EnvironmentProblem(f"the Docker engine failed: {_short(error)}", "check `docker info`")


def _connect() -> Any:
    try:
        return docker.from_env(timeout=120)    # asks the engine its API version: reachable
    except docker.errors.DockerException as e:
        raise EnvironmentProblem(
            f"cannot reach the Docker engine: {_short(e)}",
            "start it (`sudo systemctl start docker`, or `sudo dockerd &`), or point DOCKER_HOST at one; "
            "to deploy to a cluster instead, configure kubectl (KUBECONFIG)",
        ) from e
