"""Asking an image registry (Docker Registry HTTP API v2) whether a manifest still exists.

The only module that talks to registries directly. fnctl asks before reusing an image it
recorded (the runtime-image record, a Service's unchanged function image): a registry that
was wiped would otherwise leave builds failing on `FROM runtime@sha256:…` and revisions
unable to pull. An in-cluster registry is often not reachable from the user's machine;
then the answer is "cannot tell" (None) and the caller goes on as before.
"""

from __future__ import annotations

import urllib.error
import urllib.request

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
    parts = split(image)
    if parts is None:
        return None
    host, repo, ref = parts
    if host.split(":")[0].endswith(_CLUSTER_DNS):
        return None
    scheme = "http" if insecure else "https"
    request = urllib.request.Request(f"{scheme}://{host}/v2/{repo}/manifests/{ref}", method="HEAD",
                                     headers={"Accept": _ACCEPT})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as resp:     # noqa: S310 - http(s) only
            return 200 <= resp.status < 300
    except urllib.error.HTTPError as e:
        return False if e.code == 404 else None
    except (urllib.error.URLError, OSError, ValueError):
        return None
