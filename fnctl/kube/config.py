"""Where the cluster configuration lives, read without importing `kubernetes`.

`has_cluster_config()` runs on every CLI start to choose between the cluster
and the local Docker target, so it only looks at the environment and files.
"""

from __future__ import annotations

import os
from pathlib import Path

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def kubeconfig_files() -> list[Path]:
    """The kubeconfig files in effect: $KUBECONFIG's list, else ~/.kube/config (existing ones only)."""
    env = os.environ.get("KUBECONFIG")
    if env:
        candidates = [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]
    else:
        candidates = [Path.home() / ".kube" / "config"]
    return [p for p in candidates if p.is_file()]


def kubeconfig_path() -> str | None:
    """The kubeconfig file list as the kubernetes loader takes it, or None."""
    files = kubeconfig_files()
    return os.pathsep.join(str(p) for p in files) if files else None


def in_cluster() -> bool:
    """Running in a pod: the service-account environment is set."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and bool(os.environ.get("KUBERNETES_SERVICE_PORT"))


def _documents() -> list[dict]:
    import yaml

    docs = []
    for path in kubeconfig_files():
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict):
            docs.append(data)
    return docs


def has_cluster_config() -> bool:
    """True when a kubeconfig with at least one context exists, or fnctl runs in a pod."""
    if any(doc.get("contexts") for doc in _documents()):
        return True
    return in_cluster()


def context_namespace(context: str | None = None) -> tuple[str | None, str | None]:
    """(context name, its namespace) from the kubeconfig files, as kubectl merges them.

    The first file that sets a value wins. No API call; None where not set.
    """
    docs = _documents()
    if not docs:
        if in_cluster():
            try:
                return None, (SERVICE_ACCOUNT_DIR / "namespace").read_text().strip() or None
            except OSError:
                return None, None
        return None, None
    name = context
    if name is None:
        name = next((d.get("current-context") for d in docs if d.get("current-context")), None)
    for doc in docs:
        for entry in doc.get("contexts") or []:
            if isinstance(entry, dict) and entry.get("name") == name:
                return name, (entry.get("context") or {}).get("namespace") or None
    return name, None
