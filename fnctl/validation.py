"""Checks of user input that every target shares."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from fnctl import resources
from fnctl.errors import UsageError

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def service_name(name: str) -> str:
    """Knative Service names are DNS-1035 labels (they become hostnames)."""
    if not name or len(name) > 63 or not _DNS1035.match(name):
        why = "longer than 63 characters" if len(name) > 63 else "not a lowercase DNS-1035 label"
        raise UsageError(
            f"invalid service name {name!r}: {why}",
            "use lowercase letters, digits and '-', start with a letter, end with a letter or digit, "
            "at most 63 characters (e.g. 'lambda-bash')",
        )
    return name


def template_name(name: str) -> str:
    """Build template names (and their aliases) are lowercase DNS-1123 labels."""
    if not name or len(name) > 63 or not _DNS1123.match(name):
        raise UsageError(f"invalid build template name {name!r}: not a lowercase DNS label",
                         "use lowercase letters, digits and '-' (`fnctl get buildtemplate` lists them)")
    return name


def namespace(name: str | None) -> str | None:
    """Kubernetes namespaces are DNS-1123 labels; '.' or '..' would change an API path's meaning."""
    if name is not None and (not name or len(name) > 63 or not _DNS1123.match(name)):
        raise UsageError(f"invalid namespace {name!r}: not a lowercase DNS-1123 label",
                         "use lowercase letters, digits and '-' (e.g. -n team-a)")
    return name


def revision(value: str | None) -> str | None:
    """A git branch, tag or commit; one starting with '-' would reach git as an option
    (`--upload-pack=CMD` runs CMD), so it is refused before any git command runs."""
    if value is None:
        return None
    if not value or value.startswith("-") or any(c in value for c in "\0\n\r"):
        raise UsageError(f"invalid --revision {value!r}: a revision is a branch, tag or commit name, "
                         "and none starts with '-' or holds a line break",
                         "give a branch, tag or commit that exists (git ls-remote lists them)")
    return value


def removals(pairs: Iterable[str]) -> tuple[list[str], list[str]]:
    """(the K=V pairs, the names given as `NAME-`): a redeploy drops those, as `kn service update` does."""
    given, removed = [], []
    for pair in pairs:
        if "=" not in pair and len(pair) > 1 and pair.endswith("-"):
            removed.append(pair[:-1])
        else:
            given.append(pair)
    return given, removed


def key_values(pairs: Iterable[str], option: str) -> dict[str, str]:
    """Parse repeated K=V options, keeping the order given."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} {pair!r} is not of the form KEY=VALUE",
                             f"write it like {option} NAME=value")
        if option == "--env" and not _ENV_NAME.match(key):
            raise UsageError(f"{option} {key!r} is not a valid environment variable name",
                             "use letters, digits and '_', not starting with a digit")
        if "\n" in value or "\r" in value:
            raise UsageError(f"{option} {key}: the value has a line break", "pass a single-line value")
        result[key] = value
    return result


def duration(text: str) -> float:
    """'90s', '10m', '1h30m', '500ms' or plain seconds, to seconds."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        pos, seconds = 0, 0.0
        for match in _DURATION.finditer(text):
            if match.start() != pos:
                break
            value, unit = float(match.group(1)), match.group(2)
            seconds += value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
            pos = match.end()
        if pos != len(text) or not text:
            raise UsageError(f"invalid duration {text!r}", "use a number of seconds or e.g. 90s, 10m, 1h30m") from None
    if seconds <= 0:
        raise UsageError(f"invalid duration {text!r}: it must be positive", "e.g. --timeout 10m")
    return seconds


_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def secret_name(name: str, option: str = "Secret") -> str:
    """Secret names are DNS-1123 subdomains (lowercase, digits, '-' and '.')."""
    if not name or len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        raise UsageError(f"invalid {option} name {name!r}: not a lowercase DNS-1123 subdomain",
                         "use lowercase letters, digits, '-' and '.' (e.g. regcred)")
    return name


def domain(name: str) -> str:
    """A custom domain: a lowercase DNS name of at least two labels (Knative's DomainMapping name)."""
    if not name or len(name) > 253 or "." not in name or not _DNS1123_SUBDOMAIN.match(name) \
            or any(len(label) > 63 for label in name.split(".")):
        raise UsageError(f"invalid --domain {name!r}: not a lowercase DNS name such as api.example.com",
                         "give the host name alone: no scheme, port, path or wildcard")
    return name


def source_or_image(source: str, template: str | None, image: bool = False) -> tuple[str, str, str | None]:
    """(source, template, ready-made image) of `deploy service -f SOURCE [--build-template T] [--image]`.

    With a template, SOURCE is built. Without one, SOURCE must be an image reference: `--image`
    says so, otherwise fnctl.registry.image_reference decides without guessing (not an existing
    path, not a git URL, and a registry host or a tag or digest)."""
    from fnctl import registry

    if image and template:
        raise UsageError("--image runs a ready-made image; it cannot be combined with --build-template",
                         "drop --build-template to run the image, or --image to build SOURCE")
    if template:
        return source, template, None
    if image:
        if not registry.valid_reference(source):
            raise UsageError(f"--image {source!r} is not an image reference",
                             "e.g. registry.example.com/team/app:1.0 or app@sha256:<digest>")
        return "", "", source
    if registry.image_reference(source):
        return "", "", source
    from fnctl.source.git import looks_like_git_url

    if not looks_like_git_url(source) and not Path(source).expanduser().exists():
        raise UsageError(f"{source!r} is neither an existing path nor an image reference with a registry host "
                         "or a tag", "give a folder, file or git URL with --build-template, or an image such as "
                         f"{source}:latest or registry.example.com/{source}:1.0 (or add --image)")
    raise UsageError(f"{source!r} is a source to build, but no --build-template was given",
                     "give --build-template (see `fnctl get buildtemplate`); to run a ready-made image, name "
                     "its registry or tag (e.g. gcr.io/team/app:1.0) or add --image")


def memory(value: str | None) -> str | None:
    """--memory: a Kubernetes memory quantity (kept as written: the cluster takes the text)."""
    if value is not None:
        resources.memory_bytes(value, "--memory")
    return value


def cpu(value: str | None) -> str | None:
    """--cpu: a Kubernetes CPU quantity."""
    if value is not None:
        resources.nano_cpus(value, "--cpu")
    return value
