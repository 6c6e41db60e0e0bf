"""One error tree for everything a user can cause or meet.

The CLI catches `FnctlError` at the top, prints `message` and `hint`, and exits
with the class's `exit_code` (documented in docs/cli.md). Anything else
escaping is a bug in fnctl.
"""

from __future__ import annotations


class FnctlError(Exception):
    """A failure with a message for humans and, where one exists, what to do."""

    exit_code = 1
    kind = "error"

    def __init__(self, message: str, hint: str | None = None, details: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        # Extra text shown under the message, e.g. the tail of a build log.
        self.details = details

    def to_dict(self) -> dict:
        return {"error": self.kind, "message": self.message, "hint": self.hint,
                "details": self.details, "exitCode": self.exit_code}


class UsageError(FnctlError):
    """Bad input: an option, name, argument or file the user gave is wrong."""

    exit_code = 2
    kind = "usage"


class SourceError(UsageError):
    """The function source cannot be read, cloned or packaged."""

    kind = "source"


class TemplateError(UsageError):
    """Unknown build template, or parameters it does not declare."""

    kind = "template"


class NotFoundError(FnctlError):
    """A service or template that does not exist."""

    exit_code = 3
    kind = "not-found"


class EnvironmentProblem(FnctlError):
    """Something fnctl needs is not there: Docker engine, cluster, Knative."""

    exit_code = 4
    kind = "environment"


class BuildError(FnctlError):
    """The image build failed; `details` holds the log tail.

    A template's build step may explain its own failure: a log line with `fnctl-error: WHAT`
    (and `fnctl-hint: WHAT TO DO`) becomes the message (and hint), whichever builder ran it.
    """

    exit_code = 5
    kind = "build"

    def __init__(self, message: str, hint: str | None = None, details: str | None = None):
        said = _template_says(details or "")
        if said.get("error"):       # the builder's own words go below, with the log
            details = f"{details}\n{message}" if message not in (details or "") else details
            message, hint = said["error"], said.get("hint") or hint
        from fnctl import trust

        tls = trust.tls_failure(f"{details or ''}\n{message}")
        if tls is not None:         # not the function's fault: the build lacks a certificate authority
            what, host = tls
            if not said.get("error"):
                details = f"{details}\n{message}" if message not in (details or "") else details
                message = f"a build step could not verify the TLS certificate of {host or 'a server'} ({what})"
            hint = trust.tls_hint(host)
        super().__init__(message, hint, details)


def _template_says(log: str) -> dict[str, str]:
    """The last `fnctl-error:` and `fnctl-hint:` a build step printed (any prefix a builder adds is dropped)."""
    import re

    said: dict[str, str] = {}
    for kind, text in re.findall(r"fnctl-(error|hint): (.+)", log):
        said[kind] = text.strip()
    return said


class DeployError(FnctlError):
    """The image was built but the function did not start or become ready."""

    exit_code = 6
    kind = "deploy"


class WaitTimeout(DeployError):
    """Waiting for readiness ran out of time."""

    exit_code = 7
    kind = "timeout"


class ClusterError(FnctlError):
    """The Kubernetes API refused or failed a request."""

    exit_code = 8
    kind = "cluster"


class Interrupted(FnctlError):
    """Ctrl-C: whatever was half made has been cleaned up."""

    exit_code = 130
    kind = "interrupted"


class InternalError(FnctlError):
    """A bug in fnctl: an exception nothing else in this tree describes."""

    exit_code = 70
    kind = "internal"
