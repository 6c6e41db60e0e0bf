"""Registry credentials in a cluster namespace: one `kubernetes.io/dockerconfigjson` Secret.

kaniko pushes with it (mounted as /kaniko/.docker/config.json, fnctl.builders.buildpod) and
Knative's revisions pull with it (the Service's imagePullSecrets, fnctl.knative). The password
reaches only the Secret's data: fnctl.redact masks it in anything printed afterwards.

The local target has no such Secret: builds and pulls there use the user's own Docker
configuration and credential helpers (`docker login`).
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass

from fnctl import config, labels, redact, validation
from fnctl.cluster import Cluster
from fnctl.errors import UsageError
from fnctl.kube.client import SECRETS
from fnctl.kube.errors import Conflict
from fnctl.model import DeployRequest

SECRET_TYPE = "kubernetes.io/dockerconfigjson"
DATA_KEY = ".dockerconfigjson"
REGISTRY = "fnctl.dev/registry"          # annotation: the registry host the Secret is for


@dataclass
class RegistryAuth:
    """What `set registry-auth` reports: everything but the password."""

    name: str
    namespace: str
    registry: str
    username: str
    type: str = SECRET_TYPE
    created: bool = True                  # False: an existing Secret of that name was replaced

    def to_dict(self) -> dict:
        return asdict(self)


def pull_secret(request: DeployRequest) -> str | None:
    """--registry-secret, else the config file's cluster.registry-secret: kaniko's and Knative's."""
    return request.registry_secret or config.load().cluster.registry_secret


def check(registry: str, username: str, password: str) -> None:
    if not registry or any(c.isspace() for c in registry):
        raise UsageError(f"invalid --registry {registry!r}", "give the registry host, e.g. registry.example.com:5000")
    if not username or ":" in username:
        raise UsageError("invalid --username: it must be non-empty and hold no ':'",
                         "give the user name the registry knows")
    if not password:
        raise UsageError("no password was given on stdin",
                         "pipe it in: `printf %s \"$TOKEN\" | fnctl set registry-auth NAME ... --password-stdin`")


def docker_config(registry: str, username: str, password: str) -> str:
    """The config.json docker, kaniko and the kubelet read: auths.HOST.{username, password, auth}."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {registry: {"username": username, "password": password, "auth": auth}}})


def secret_manifest(name: str, namespace: str, registry: str, username: str, password: str) -> dict:
    data = base64.b64encode(docker_config(registry, username, password).encode()).decode()
    return {"apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE,
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels.MANAGED_BY),
                         "annotations": {REGISTRY: registry}},
            "data": {DATA_KEY: data}}


def store(cluster: Cluster, name: str, registry: str, username: str, password: str) -> RegistryAuth:
    """Create the Secret, or replace the one of that name (no `get` needed: Secrets are not
    read back, so the Role needs only create and update on them)."""
    validation.secret_name(name)
    check(registry, username, password)
    redact.conceal(password)
    redact.conceal(base64.b64encode(f"{username}:{password}".encode()).decode())
    kube = cluster.kube
    body = secret_manifest(name, kube.namespace, registry, username, password)
    try:
        kube.create(SECRETS, body)
        created = True
    except Conflict:
        # A Secret's type cannot change: one of another type is refused by the API server (422).
        kube.replace(SECRETS, body)
        created = False
    return RegistryAuth(name, kube.namespace, registry, username, created=created)
