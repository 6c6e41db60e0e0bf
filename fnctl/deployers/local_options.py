"""The cluster's deploy options on the local target: each works where it means something, or is refused.

Nothing is dropped silently: `check` raises a UsageError (exit 2) naming every
option that cannot apply, before any source is read.
"""

from __future__ import annotations

from pathlib import Path

from fnctl import validation
from fnctl.errors import UsageError
from fnctl.model import DeployRequest
from fnctl.templates import BuildTemplate

MAX_INVOKERS = 1024            # the bridge's INVOKER_COUNT range is 1-1024

# option -> why it has no meaning on one local container
_CLUSTER_ONLY = {
    "--annotation": "Knative revision annotations",
    "--concurrency-target": "a target of the Knative autoscaler; the local target runs one instance",
    "--registry-host": "the registry kaniko pushes to; local images stay in the engine",
    "--registry-secret": "the credentials kaniko pushes with",
    "--insecure-registry": "how kaniko reaches its registry",
    "--kaniko-image": "the image cluster builds run in",
    "--build-namespace": "where kaniko pods run",
    "--domain": "a Knative DomainMapping; a local service answers on its localhost port",
}


def check(request: DeployRequest, template: BuildTemplate) -> None:
    given = {
        "--annotation": bool(request.annotations),
        "--concurrency-target": request.concurrency_target is not None,
        "--registry-host": request.registry_host is not None,
        "--registry-secret": request.registry_secret is not None,
        "--insecure-registry": request.insecure_registry,
        "--kaniko-image": request.kaniko_image is not None,
        "--build-namespace": request.build_namespace is not None,
        "--domain": request.domain is not None,
    }
    refused = [f"{option} ({_CLUSTER_ONLY[option]})" for option, present in given.items() if present]
    if request.min_scale is not None and request.min_scale > 1:
        refused.append(f"--min-scale {request.min_scale} (the local target runs exactly one instance)")
    if request.concurrency is not None:
        if template.runtime_image is None:
            refused.append(f"--concurrency (it caps the runtime bridge's invocations; template "
                           f"{template.name} runs without the bridge)")
        elif not 1 <= request.concurrency <= MAX_INVOKERS:
            refused.append(f"--concurrency {request.concurrency} (the bridge runs 1-{MAX_INVOKERS} invocations "
                           "at once; 0, no limit, cannot be had locally)")
    if refused:
        raise UsageError("options that do not apply to the local target: " + "; ".join(refused),
                         "drop them, or deploy to a cluster (--cluster)")
    secret_env(request)


def secret_env(request: DeployRequest) -> dict[str, str]:
    """The variables of the --env-secret env files (KEY=VALUE lines), in order; a later file wins."""
    env: dict[str, str] = {}
    for name in request.env_secrets:
        env.update(read_env_file(Path(name).expanduser()))
    return env


def read_env_file(path: Path) -> dict[str, str]:
    """Docker's --env-file format: KEY=VALUE per line, taken literally; blank lines and # comments skipped."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        reason = "no such file" if isinstance(e, FileNotFoundError) else getattr(e, "strerror", None) or str(e)
        raise UsageError(f"--env-secret {path}: {reason}",
                         "on the local target --env-secret names an env file of KEY=VALUE lines "
                         "(what a cluster Secret's keys and values would be)") from None
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "=" not in line:
            raise UsageError(f"--env-secret {path}, line {number}: not of the form KEY=VALUE",
                             "write one KEY=VALUE per line")
        pairs.append(line)
    return validation.key_values(pairs, "--env")
