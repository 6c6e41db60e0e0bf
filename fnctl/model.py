"""The data that flows between the CLI, the core and the targets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from fnctl.source.context import BuildContext

# The phases of a deploy, in order, on every target: what progress shows and `-o json` times.
PHASES = ("source", "runtime", "build", "deploy", "wait")
SOURCE, RUNTIME, BUILD, DEPLOY, WAIT = PHASES


@dataclass
class DeployRequest:
    name: str
    source: str                       # folder, single file, or git URL ("" for a ready-made image)
    template: str                     # build template name or alias ("" for a ready-made image)
    build_args: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    revision: str | None = None       # git branch, tag or commit
    wait: bool = True
    timeout: float = 600.0
    ca_bundle: str | None = None      # the CA bundle builds trust: a PEM file, "none", or None (fnctl.trust)
    # Settings of the cluster target; the local one applies those that mean something there
    # and refuses the others (fnctl.deployers.local_options).
    env_secrets: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    concurrency: int | None = None    # containerConcurrency
    memory: str | None = None         # a Kubernetes quantity (256Mi): the container's request and limit
    cpu: str | None = None            # a Kubernetes quantity (500m)
    min_scale: int | None = None
    max_scale: int | None = None
    concurrency_target: int | None = None
    registry_host: str | None = None  # None: the config file's cluster.registry-host, else the default
    registry_secret: str | None = None
    insecure_registry: bool = False
    kaniko_image: str | None = None
    build_namespace: str | None = None  # where kaniko pods run; default the Service's namespace
    domain: str | None = None         # a custom domain mapped to the Service (Knative DomainMapping)
    image: str | None = None          # a ready-made image to run as it is, instead of a build
    reset: bool = False               # a redeploy starts from the defaults, not the service's recorded settings
    removed_build_args: list[str] = field(default_factory=list)   # `--build-argument NAME-`: not kept
    removed_env: list[str] = field(default_factory=list)          # `--env NAME-`: not kept


@dataclass(frozen=True)
class RecordedSettings:
    """What a deployed service was last given, as its target recorded it: a redeploy keeps these."""

    template: str | None              # the template it was built with
    build_args: dict[str, str]        # the --build-argument values given (never a secret parameter's)
    env: dict[str, str]               # the --env values


@dataclass
class ServiceInfo:
    """One deployed function, as `get`/`describe` show it (the -o json contract)."""

    name: str
    target: str                       # "local" or "cluster"
    url: str | None = None
    ready: bool | None = None
    reason: str | None = None
    message: str | None = None
    revision: str | None = None       # latest ready revision, e.g. NAME-00002
    image: str | None = None
    template: str | None = None
    namespace: str | None = None
    created: str | None = None        # RFC 3339
    env: dict[str, str] = field(default_factory=dict)
    domains: list[str] = field(default_factory=list)   # URLs of custom domains mapped to it (cluster)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BuiltImage:
    reference: str          # what to run: a local tag, or registry/repo@sha256:...
    digest: str | None      # the image id (local) or pushed digest (registry); None in a dry run
    context: BuildContext   # what it was built from: the same digest means the same function
    cached: bool = False    # True when nothing was built


@dataclass
class DeployResult:
    service: ServiceInfo
    unchanged: bool = False           # nothing to build or restart
    built: bool = True                # False when the image came from the cache
    phases: dict[str, float] = field(default_factory=dict)   # seconds per phase (PHASES, all of them)

    def to_dict(self) -> dict:
        return {**self.service.to_dict(), "unchanged": self.unchanged, "built": self.built,
                "phases": {k: round(v, 3) for k, v in self.phases.items()}}


class Reporter(Protocol):
    """Where the core reports progress; the CLI decides how to show it."""

    def phase(self, name: str, detail: str = "") -> None:
        """A new phase begins; `name` is one of PHASES."""

    def log(self, line: str) -> None:
        """One line of build or container output, as it happens."""

    def note(self, text: str) -> None:
        """A one-line remark, e.g. which target was chosen and why."""

