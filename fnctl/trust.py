"""What builds need from this machine to reach the network as the user does: its CA bundle and proxy.

Behind a company proxy that intercepts TLS with its own certificate authority, the host trusts that
CA (it is in the system store) while a fresh base image does not: pip, npm, go and git inside a build
fail with CERTIFICATE_VERIFY_FAILED. So every build gets the machine's CA bundle as a build secret
(a file under /run/secrets for the steps that mount it, never a layer or an ENV of the image), and
the proxy variables the user has set as Docker's predefined proxy build arguments (HTTPS_PROXY and
friends need no ARG line and are kept out of the image's history and config).

Which bundle: --ca-bundle FILE, else the config file's build.ca-bundle, else the machine's
(SSL_CERT_FILE, REQUESTS_CA_BUNDLE, Python's default verify paths, the usual system files);
"none" gives builds no bundle (the image's own store applies).
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
from pathlib import Path
from urllib.parse import urlsplit

from fnctl import config
from fnctl.errors import UsageError

NONE = "none"
PEM_MARKER = b"-----BEGIN CERTIFICATE-----"
# The system stores of the common distributions, after what Python itself was built to use.
SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                  "/etc/ssl/ca-bundle.pem", "/etc/ssl/cert.pem")
# Docker's predefined build arguments for proxies: no ARG line needed, kept out of `docker history`.
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy",
                   "ALL_PROXY", "all_proxy")


def _machine_bundle() -> Path | None:
    """The CA bundle this machine's own tools use, if one exists."""
    candidates = [os.environ.get("SSL_CERT_FILE"), os.environ.get("REQUESTS_CA_BUNDLE"),
                  ssl.get_default_verify_paths().cafile, *SYSTEM_BUNDLES]
    for name in candidates:
        if name and Path(name).is_file():
            return Path(name)
    return None


def ca_bundle(option: str | None = None) -> tuple[str, bytes] | None:
    """(where it came from, PEM bytes) of the CA bundle builds get, or None for no bundle.

    A bundle the user named (option or config file) must be a readable PEM file: exit 2 otherwise.
    """
    named, origin = option, "--ca-bundle"
    if named is None:
        named, origin = config.load().build.ca_bundle, "build.ca-bundle in the config file"
    if named is not None and named.strip().lower() == NONE:
        return None
    if named is None:
        found = _machine_bundle()
        if found is None:
            return None
        try:
            data = found.read_bytes()
        except OSError:
            return None
        return (str(found), data) if PEM_MARKER in data else None
    path = Path(named).expanduser()
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"the CA bundle {path} ({origin}) cannot be read: {e.strerror or e}",
                         "give a PEM file of certificate authorities, e.g. /etc/ssl/certs/ca-certificates.crt, "
                         "or `none` for no bundle") from e
    if PEM_MARKER not in data:
        raise UsageError(f"the CA bundle {path} ({origin}) holds no PEM certificate",
                         "give a file with -----BEGIN CERTIFICATE----- blocks (the system store plus your "
                         "company's CA), e.g. /etc/ssl/certs/ca-certificates.crt")
    return str(path), data


def proxies(for_cluster: bool = False) -> dict[str, str]:
    """The proxy variables the user has set, unless build.proxy is false in the config file.

    For a cluster, a proxy on this machine's loopback means nothing in a build pod: left out.
    """
    if not config.load().build.proxy:
        return {}
    found = {name: value for name in PROXY_VARIABLES if (value := os.environ.get(name, "").strip())}
    if for_cluster:
        found = {k: v for k, v in found.items() if k.lower() == "no_proxy" or not _on_loopback(v)}
        if not any(k.lower() != "no_proxy" for k in found):
            return {}
    return found


def _on_loopback(url: str) -> bool:
    host = urlsplit(url if "://" in url else f"http://{url}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- a build that failed for want of a CA -------------------------------------------------

_TLS_FAILURE = re.compile(
    r"CERTIFICATE_VERIFY_FAILED|x509: certificate signed by unknown authority|SELF_SIGNED_CERT_IN_CHAIN"
    r"|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|unable to get local issuer certificate"
    r"|self[- ]signed certificate in certificate chain|server certificate verification failed"
    r"|SSL certificate problem|x509: certificate is not trusted", re.I)
_HOST = re.compile(r"host='([^']+)'|https://([A-Za-z0-9.-]+)")


def tls_failure(log: str) -> tuple[str, str | None] | None:
    """(what failed, the host if the log names it) when a build step could not verify a TLS certificate."""
    lines = [line for line in log.splitlines() if _TLS_FAILURE.search(line)]
    if not lines:
        return None
    what = _TLS_FAILURE.search(lines[0]).group(0)          # type: ignore[union-attr]
    for text in (*lines, log):
        for match in _HOST.finditer(text):
            return what, match.group(1) or match.group(2)
    return what, None


def tls_hint(host: str | None) -> str:
    where = host or "the server"
    return (f"the build does not trust the certificate of {where}: a proxy or mirror with its own certificate "
            "authority? Builds get this machine's CA bundle (SSL_CERT_FILE, else the system store, e.g. after "
            "update-ca-certificates); add that CA there, or give a bundle that holds it with --ca-bundle FILE "
            "or build.ca-bundle in the config file (docs/configuration.md)")
