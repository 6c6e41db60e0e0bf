"""Per-machine settings: where templates live, which base images to use.

A machine that cannot pull public images (an air-gapped build host, or the
CI of this project) maps the templates' public base images to local ones:

    # /etc/fnctl/config.yaml, ~/.config/fnctl/config.yaml or $FNCTL_CONFIG
    images:
      "debian:bookworm-slim": "registry.internal/debian:bookworm-slim"
    local:
      ports: "31000-31999"
      memory: 1Gi                 # each revision container's limits (--memory/--cpu win)
      cpu: "2"
      pids: 4096
    cluster:                      # defaults of the cluster target's options
      registry-host: registry.internal:5000
      registry-secret: regcred    # kaniko pushes and Knative pulls with it (`fnctl set registry-auth`)
      insecure-registry: true
      kaniko-image: registry.internal:5000/kaniko-executor:v1.24.0
      upload-image: registry.internal:5000/busybox:1.36
      images:                     # like `images`, for builds in the cluster (kaniko pulls there)
        "debian:bookworm-slim": "registry.internal:5000/debian:bookworm-slim"
      build-resources:            # kaniko's requests and limits (these are the defaults)
        requests: {cpu: 250m, memory: 512Mi}
        limits: {memory: 4Gi}
    build:                        # every build, on both targets
      ca-bundle: /etc/ssl/certs/ca-certificates.crt   # default: the machine's; none: give none
      proxy: true                 # pass HTTPS_PROXY, HTTP_PROXY, NO_PROXY (and lowercase) to builds
      context-warning: 10MB       # above this size a packed source suggests .fnctlignore

$FNCTL_CONFIG, when set, is the only file read. Otherwise the system file is
read first and the user's file overrides it key by key.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

from fnctl import resources
from fnctl.errors import UsageError

SYSTEM_CONFIG = Path("/etc/fnctl/config.yaml")
DEFAULT_PORT_RANGE = (31000, 31999)
# A local revision's limits unless the config file or --memory/--cpu say otherwise: room for a
# bridge with many invokers, yet a runaway function cannot take the machine.
DEFAULT_LOCAL_LIMITS = {"memory": "1Gi", "cpu": "2", "pids": 4096}


# kaniko's build pod: requests so the scheduler places it where a build fits, a memory limit so
# a runaway build cannot starve the node (no CPU limit: throttling only makes builds slower).
DEFAULT_BUILD_RESOURCES = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "4Gi"}}


@dataclass(frozen=True)
class ClusterDefaults:
    """The `cluster:` section: what a team's cluster needs on every deploy, said once."""

    registry_host: str | None = None
    registry_secret: str | None = None
    insecure_registry: bool = False
    kaniko_image: str | None = None
    upload_image: str | None = None
    images: dict[str, str] = field(default_factory=dict)
    build_resources: dict = field(default_factory=lambda: dict(DEFAULT_BUILD_RESOURCES))   # kaniko's


DEFAULT_CONTEXT_WARNING = 10 * 1000 * 1000      # bytes of a packed source worth a word about .fnctlignore


@dataclass(frozen=True)
class BuildDefaults:
    """The `build:` section: what every build gets, on both targets."""

    ca_bundle: str | None = None      # a PEM file; None: the machine's (fnctl.trust); "none": no bundle
    proxy: bool = True                # pass the user's proxy variables to builds
    context_warning: int = DEFAULT_CONTEXT_WARNING


BUILD_KEYS = {"ca-bundle": (str, bool), "proxy": bool, "context-warning": (str, int)}
CLUSTER_KEYS = {"registry-host": str, "registry-secret": str, "insecure-registry": bool, "kaniko-image": str,
                "upload-image": str, "images": dict, "build-resources": dict}


@dataclass(frozen=True)
class Config:
    images: dict[str, str] = field(default_factory=dict)
    port_range: tuple[int, int] = DEFAULT_PORT_RANGE
    files: tuple[str, ...] = ()
    cluster: ClusterDefaults = field(default_factory=ClusterDefaults)
    build: BuildDefaults = field(default_factory=BuildDefaults)
    local_limits: dict = field(default_factory=lambda: dict(DEFAULT_LOCAL_LIMITS))   # memory, cpu, pids

    def image(self, reference: str) -> str:
        """The image to use for a template's default `reference`."""
        return self.images.get(reference, reference)


def _config_files() -> list[Path]:
    explicit = os.environ.get("FNCTL_CONFIG")
    if explicit:
        return [Path(explicit)]
    user = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "fnctl" / "config.yaml"
    return [p for p in (SYSTEM_CONFIG, user) if p.is_file()]


def _read(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as e:
        raise UsageError(f"config file {path} does not exist", "unset FNCTL_CONFIG or create the file") from e
    except yaml.YAMLError as e:
        raise UsageError(f"config file {path} is not valid YAML: {e}", "fix or remove the file") from e
    if not isinstance(data, dict):
        raise UsageError(f"config file {path} must hold a mapping", "see docs/configuration.md")
    return data


def parse_resources(value, origin: str) -> dict:
    """cluster.build-resources: {requests: {cpu: .., memory: ..}, limits: {..}} with quantities as strings."""
    if not isinstance(value, dict) or set(value) - {"requests", "limits"}:
        raise UsageError(f"{origin}: cluster.build-resources must be a mapping of requests and limits",
                         "write it like {requests: {cpu: 250m, memory: 512Mi}, limits: {memory: 4Gi}}")
    out: dict = {}
    for kind, amounts in value.items():
        if not isinstance(amounts, dict) or not all(isinstance(v, str | int | float) for v in amounts.values()):
            raise UsageError(f"{origin}: cluster.build-resources.{kind} must map resource names to quantities",
                             "e.g. {cpu: 500m, memory: 1Gi}")
        out[kind] = {str(k): str(v) for k, v in amounts.items()}
    return out


def parse_port_range(text: str, origin: str) -> tuple[int, int]:
    try:
        low, _, high = str(text).partition("-")
        start, end = int(low), int(high or low)
    except ValueError:
        start = end = -1
    if not (1 <= start <= end <= 65535):
        raise UsageError(f"{origin}: port range {text!r} is not of the form LOW-HIGH within 1-65535",
                         "write it like 31000-31999")
    return start, end


def _checked(data: dict, path: Path, name: str, keys: dict) -> dict | None:
    """The section `name` of a config file, its keys known and their values of the right type."""
    section = data.get(name)
    if section is None:
        return None
    if not isinstance(section, dict):
        raise UsageError(f"config file {path}: `{name}` must be a mapping", "see docs/configuration.md")
    for key, value in section.items():
        kind = keys.get(key)
        if kind is None:
            raise UsageError(f"config file {path}: unknown key {name}.{key}",
                             f"the keys are {', '.join(sorted(keys))} (docs/configuration.md)")
        if not isinstance(value, kind) or (bool not in (kind if isinstance(kind, tuple) else (kind,))
                                           and isinstance(value, bool)):
            wanted = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise UsageError(f"config file {path}: {name}.{key} must be a {wanted}, not {value!r}",
                             "see docs/configuration.md")
    return section


def _cluster_section(data: dict, path: Path, current: ClusterDefaults) -> ClusterDefaults:
    section = _checked(data, path, "cluster", CLUSTER_KEYS)
    if section is None:
        return current
    values: dict = {}
    for key, value in section.items():
        kind = CLUSTER_KEYS[key]
        if key == "build-resources":
            values["build_resources"] = parse_resources(value, f"config file {path}")
            continue
        values[key.replace("-", "_")] = ({str(k): str(v) for k, v in value.items()} if kind is dict else value)
    if "images" in values:
        values["images"] = {**current.images, **values["images"]}
    return replace(current, **values)


def parse_size(text, origin: str) -> int:
    """A size in bytes: 10MB, 512KB, 1GiB, or a plain number of bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]i?B?|B)?\s*", str(text), re.I)
    if not match or isinstance(text, bool):
        raise UsageError(f"{origin}: size {text!r} is not a number of bytes or like 10MB, 512KB, 1GiB",
                         "write it like 10MB")
    unit = (match.group(2) or "B").upper().rstrip("B")
    factor = {"": 1, "K": 1000, "M": 1000 ** 2, "G": 1000 ** 3, "KI": 1024, "MI": 1024 ** 2, "GI": 1024 ** 3}[unit]
    return int(float(match.group(1)) * factor)


def _build_section(data: dict, path: Path, current: BuildDefaults) -> BuildDefaults:
    section = _checked(data, path, "build", BUILD_KEYS)
    if section is None:
        return current
    values: dict = {}
    for key, value in section.items():
        if key == "ca-bundle":
            # false means none; a relative path is relative to the file that says it
            text = "none" if value is False else str(value)
            if text != "none" and value is not True:
                text = str(path.parent / Path(text).expanduser())
            values["ca_bundle"] = None if value is True else text
        elif key == "context-warning":
            values["context_warning"] = parse_size(value, f"config file {path}: build.context-warning")
        else:
            values["proxy"] = value
    return replace(current, **values)


@cache
def load() -> Config:
    images: dict[str, str] = {}
    ports = None
    cluster = ClusterDefaults()
    build = BuildDefaults()
    limits = dict(DEFAULT_LOCAL_LIMITS)
    files = _config_files()
    for path in files:
        data = _read(path)
        images.update({str(k): str(v) for k, v in (data.get("images") or {}).items()})
        cluster = _cluster_section(data, path, cluster)
        build = _build_section(data, path, build)
        local = data.get("local") or {}
        if "ports" in local:
            ports = parse_port_range(local["ports"], str(path))
        limits.update(parse_local_limits(local, path))
    env_ports = os.environ.get("FNCTL_LOCAL_PORTS")
    if env_ports:
        ports = parse_port_range(env_ports, "FNCTL_LOCAL_PORTS")
    return Config(images=images, port_range=ports or DEFAULT_PORT_RANGE, files=tuple(map(str, files)),
                  cluster=cluster, build=build, local_limits=limits)


def parse_local_limits(local: dict, path: Path) -> dict:
    """local.memory and local.cpu (Kubernetes quantities), local.pids (a count), checked now."""
    found: dict = {}
    if "memory" in local:
        resources.memory_bytes(str(local["memory"]), f"config file {path}: local.memory")
        found["memory"] = str(local["memory"])
    if "cpu" in local:
        resources.nano_cpus(str(local["cpu"]), f"config file {path}: local.cpu")
        found["cpu"] = str(local["cpu"])
    if "pids" in local:
        if isinstance(local["pids"], bool) or not isinstance(local["pids"], int) or local["pids"] < 16:
            raise UsageError(f"config file {path}: local.pids must be a number of processes, at least 16",
                             "e.g. pids: 4096")
        found["pids"] = local["pids"]
    return found


def templates_dir() -> Path:
    """The built-in build templates: a source checkout's, else the installed copy."""
    override = os.environ.get("FNCTL_TEMPLATES_DIR")
    if override:
        return Path(override)
    checkout = Path(__file__).resolve().parent.parent / "buildtemplates"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "fnctl" / "buildtemplates"
