"""Image references, and asking an image registry (Docker Registry HTTP API v2) about manifests.

The only module that talks to registries directly. Two questions: does a manifest still exist
(`manifest_exists`), and which digest does a tag name now (`digest`, to pin a ready-made
image's Service by digest, as `kn` and Knative's tag-to-digest resolution do). fnctl asks before reusing an image it
recorded (the runtime-image record, a Service's unchanged function image): a registry that
was wiped would otherwise leave builds failing on `FROM runtime@sha256:…` and revisions
unable to pull. An in-cluster registry is often not reachable from the user's machine;
then the answer is "cannot tell" (None) and the caller goes on as before.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.error
import urllib.request
from pathlib import Path

# Names that resolve only inside a cluster: not worth a lookup (or a timeout) from outside.
_CLUSTER_DNS = (".svc", ".svc.cluster.local", ".cluster.local")
_ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json"])
TIMEOUT = 3.0


def split(image: str) -> tuple[str, str, str] | None:
    """(registry host, repository, reference) of host/repo@sha256:… or host/repo:tag; None without a host."""
    host, _, rest = image.partition("/")
    if not rest or ("." not in host and ":" not in host and host != "localhost"):
        return None
    if "@" in rest:
        repo, _, ref = rest.partition("@")
    elif ":" in rest.rsplit("/", 1)[-1]:
        repo, _, ref = rest.rpartition(":")
    else:
        repo, ref = rest, "latest"
    return host, repo, ref


def manifest_exists(image: str, insecure: bool = False) -> bool | None:
    """True or False when the registry answers for the image's manifest; None when it cannot be asked
    (cluster-internal name, unreachable, needs credentials, or answers something else)."""
    answer = _head_manifest(image, insecure)
    return None if answer is None else answer[0]


def digest(image: str, insecure: bool = False) -> tuple[bool, str | None] | None:
    """What the registry says of `image`'s manifest: (exists, its sha256 digest); None when it cannot
    be asked. The registry computes the digest (Docker-Content-Digest) of the manifest or index the
    reference names now, so a Service pinned by it runs exactly that image from then on."""
    return _head_manifest(image, insecure)


def _head_manifest(image: str, insecure: bool) -> tuple[bool, str | None] | None:
    parts = split(image)
    if parts is None:
        return None
    host, repo, ref = parts
    if host.split(":")[0].endswith(_CLUSTER_DNS):
        return None
    scheme = "http" if insecure or _loopback(host) else "https"
    url = f"{scheme}://{host}/v2/{repo}/manifests/{ref}"
    try:
        try:
            return _head(url, {})
        except urllib.error.HTTPError as e:
            token = _anonymous_token(e.headers.get("WWW-Authenticate", ""), scheme) if e.code == 401 else None
            if token is None:
                raise
            return _head(url, {"Authorization": f"Bearer {token}"})
    except urllib.error.HTTPError as e:
        return (False, None) if e.code == 404 else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _head(url: str, headers: dict[str, str]) -> tuple[bool, str | None]:
    request = urllib.request.Request(url, method="HEAD", headers={"Accept": _ACCEPT, **headers})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as resp:     # noqa: S310 - http(s) only
        found = resp.headers.get("Docker-Content-Digest")
        return 200 <= resp.status < 300, found if found and found.startswith("sha256:") else None


def _anonymous_token(challenge: str, registry_scheme: str) -> str | None:
    """The token a public registry hands anyone for pulling (the Docker token protocol: the 401's
    `Bearer realm=…,service=…,scope=…` challenge, asked at its realm without credentials)."""
    import json
    from urllib.parse import urlencode, urlsplit

    scheme, _, rest = challenge.partition(" ")
    if scheme.lower() != "bearer":
        return None
    fields = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    realm = fields.pop("realm", "")
    if urlsplit(realm).scheme not in ("https", registry_scheme):     # http only for an http registry
        return None
    query = urlencode({k: v for k, v in fields.items() if k in ("service", "scope")})
    with urllib.request.urlopen(f"{realm}?{query}" if query else realm, timeout=TIMEOUT) as resp:  # noqa: S310
        body = json.loads(resp.read(65536) or b"{}")
    token = body.get("token") or body.get("access_token")
    return token if isinstance(token, str) and token else None


def _loopback(host: str) -> bool:
    """A registry on this machine speaks plain HTTP, as Docker and go-containerregistry assume."""
    name = re.sub(r":[0-9]+$", "", host).strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


# -- telling an image reference apart from a path or a git URL ------------------------------

# Docker's reference grammar (distribution/reference): [host[:port]/]path[:tag][@digest].
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    r"^(?:(?P<host>(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(?::[0-9]+)?)/)?"
    rf"(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$")


def image_reference(spec: str) -> bool:
    """Is `spec` an image reference rather than a source? Only when it is not an existing path, is
    not a git URL, follows Docker's reference grammar, and names a registry host (a first component
    with a '.' or ':', or localhost) or a tag or digest. A bare word like `nginx` could be a folder
    name mistyped, so it is not taken for an image (`--image` says it is one)."""
    from fnctl.source.git import looks_like_git_url

    if not spec or looks_like_git_url(spec) or Path(spec).expanduser().exists():
        return False
    match = _REFERENCE.match(spec)
    if match is None:
        return False
    host = match.group("host")
    if host and not ("." in host or ":" in host or host == "localhost"):
        host = None          # docker/library style: the first component is part of the path
    return bool(host or match.group("tag") or match.group("digest"))


def valid_reference(spec: str) -> bool:
    """Does `spec` follow Docker's image reference grammar at all?"""
    return _REFERENCE.match(spec) is not None


def pinned(image: str, found: str) -> str:
    """`image` by digest `found`: host/repo@sha256:… (a tag is dropped, as the digest says it all)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: len(name) - len(last[-1])] + last[-1].split(":", 1)[0]
    return f"{name}@{found}"
