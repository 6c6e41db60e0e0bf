"""A redeploy keeps what the service was given before, as `kn service update` does.

The build arguments (when the template stays the same) and the environment recorded on the
deployed service carry over; the ones given now merge over them; `--reset` starts from the
template's defaults. Only what may be
stored is recorded: never a secret parameter's value, never a value with URL credentials.
"""

from __future__ import annotations

import dataclasses
import json

from fnctl.model import DeployRequest, RecordedSettings
from fnctl.redact import redact
from fnctl.templates import BuildTemplate


def recordable(template: BuildTemplate, build_args: dict[str, str]) -> dict[str, str]:
    """The build arguments that may be stored on the service (label or annotation)."""
    return {k: v for k, v in template.public(build_args).items() if redact(v) == v}


def parse(recorded: str | None) -> dict[str, str]:
    """The build arguments a label or annotation recorded (JSON); {} for none, or one edited by hand
    into something else."""
    try:
        found = json.loads(recorded or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def carry_over(request: DeployRequest, template: BuildTemplate,
               recorded: RecordedSettings | None) -> tuple[DeployRequest, str | None]:
    """`request` with the recorded settings under the given ones (less those removed with `NAME-`),
    and the one line that says so."""
    if recorded is None:
        return request, None
    if request.reset:
        return request, (f"--reset: {request.name} starts from the template's defaults, without the "
                         "build arguments and environment it had")
    # Build arguments mean something for their template only (HANDLER differs by language).
    same_template = recorded.template in (None, template.name)
    kept_args = {k: v for k, v in recordable(template, recorded.build_args).items()
                 if same_template and template.parameter(k) is not None and k not in request.build_args
                 and k not in request.removed_build_args}
    kept_env = {k: v for k, v in recorded.env.items() if k not in request.env and k not in request.removed_env}
    if not kept_args and not kept_env:
        return request, None
    merged = dataclasses.replace(request, build_args={**kept_args, **request.build_args},
                                 env={**kept_env, **request.env})
    kept = []
    if kept_args:
        kept.append("build arguments " + ", ".join(f"{k}={v}" for k, v in kept_args.items()))
    if kept_env:     # names only: an environment value may be a credential
        kept.append("environment " + ", ".join(kept_env))
    return merged, (f"keeping the {' and '.join(kept)} of the deployed {request.name} "
                    "(given ones win; --reset starts from the defaults)")
