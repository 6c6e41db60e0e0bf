"""Kubernetes API failures as fnctl errors, each with a message and a hint.

Every refused or failed API call raises an `ApiError` of the kind its HTTP status
names, so callers catch by type (`except Conflict:`) and the CLI still maps each
to its exit code through the one error tree: NotFound is a NotFoundError (3),
NamespaceMissing and KnativeMissing are EnvironmentProblems (4), the rest are
ClusterErrors (8).
"""

from __future__ import annotations

import json
import re

from fnctl.errors import ClusterError, EnvironmentProblem, NotFoundError

KNATIVE_MISSING = "Knative Serving is not installed in this cluster: serving.knative.dev/v1 is not served"


class ApiError(ClusterError):
    """The Kubernetes API answered a request with an error status (`status`)."""

    status = 0

    def __init__(self, message: str, hint: str | None = None, details: str | None = None,
                 status: int | None = None):
        super().__init__(message, hint, details)
        if status is not None:
            self.status = status


class BadRequest(ApiError):
    status = 400          # e.g. the log of a container that is not (or no longer) there


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403          # RBAC


class PodSecurityRefused(Forbidden):
    """403 from Pod Security admission, not from RBAC."""


class NotFound(NotFoundError, ApiError):
    status = 404


class NamespaceMissing(EnvironmentProblem, ApiError):
    status = 404


class KnativeMissing(EnvironmentProblem, ApiError):
    status = 404


class Conflict(ApiError):
    status = 409          # optimistic concurrency lost, or the object exists already


class Invalid(ApiError):
    status = 422


class Unreachable(EnvironmentProblem):
    """No answer at all: the API server cannot be reached."""


def knative_missing(server: str) -> KnativeMissing:
    return KnativeMissing(
        KNATIVE_MISSING,
        f"install Knative Serving in the cluster at {server} (https://knative.dev/docs/install/), "
        "or run without a cluster configuration to deploy to the local Docker engine")


def unreachable(server: str, reason: str) -> Unreachable:
    return Unreachable(
        f"cannot reach the Kubernetes API server at {server}: {reason}",
        "check that the cluster is running and that your kubeconfig context points at it "
        "(`kubectl cluster-info`); use --context to pick another one")


# PodSecurity admission's refusal (k8s.io/pod-security-admission admission/admission.go):
# pods "NAME" is forbidden: violates PodSecurity "restricted:latest": <reason (detail)>, ...
POD_SECURITY = re.compile(r'violates PodSecurity "([^"]+)": (.*)', re.S)


def pod_security_refused(api_message: str, namespace: str | None) -> PodSecurityRefused:
    """A build pod refused by the namespace's Pod Security level (not RBAC): kaniko runs as root."""
    match = POD_SECURITY.search(api_message)
    policy, reasons = (match.group(1), match.group(2).strip()) if match else ("?", api_message)
    level = policy.split(":", 1)[0]
    where = f"namespace {namespace}" if namespace else "the namespace"
    return PodSecurityRefused(
        f"Pod Security admission refused the build pod: {where} enforces the {level!r} level "
        f"(label pod-security.kubernetes.io/enforce={level}, policy {policy}) and kaniko runs as root: {reasons}",
        "builds need a namespace whose pod-security.kubernetes.io/enforce level is baseline (or privileged): "
        "build there with --build-namespace NAME (the Service stays in -n), or ask a cluster admin to label "
        f"{where} pod-security.kubernetes.io/enforce=baseline")


def status_body(body) -> dict:
    """The `kind: Status` document of an error response, or {}."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not body:
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def from_status(status: int, body, *, verb: str, resource: str, name: str | None,
                namespace: str | None, server: str, context: str | None) -> ApiError:
    """The ApiError of an HTTP error status (with its body) of one API call."""
    doc = status_body(body)
    api_message = doc.get("message") or (body.decode("utf-8", "replace").strip()[:300]
                                         if isinstance(body, bytes) else str(body or "").strip()[:300])
    details = doc.get("details") or {}
    where = f" in namespace {namespace}" if namespace else ""
    what = f"{resource} {name!r}" if name else resource
    if status == 401:
        ctx = f" of context {context!r}" if context else ""
        return Unauthorized(
            f"the Kubernetes API server at {server} rejected the credentials{ctx} (401 Unauthorized): "
            "they are invalid or have expired",
            "log in to the cluster again to refresh your kubeconfig credentials (e.g. your cloud CLI's "
            "get-credentials command), then retry")
    if status == 403 and POD_SECURITY.search(api_message or ""):
        return pod_security_refused(api_message, namespace)
    if status == 403:
        ns = f" -n {namespace}" if namespace else ""
        checks = " and ".join(f"`kubectl auth can-i {v} {resource}{ns}`" for v in verb.split(", "))
        return Forbidden(
            f"forbidden: you may not {verb} {resource}{where} "
            + (f"(RBAC denied it: {api_message})" if api_message else "(RBAC denied it)"),
            f"ask a cluster admin for a Role{where} that grants `{verb}` on `{resource}`; check with {checks}")
    if status == 404:
        if details.get("kind") == "namespaces" or (namespace and api_message == f'namespaces "{namespace}" not found'):
            return NamespaceMissing(
                f"namespace {namespace!r} does not exist in the cluster at {server}",
                f"create it (`kubectl create namespace {namespace}`) or pick another with -n/--namespace")
        if resource.endswith("serving.knative.dev") and not doc:
            return knative_missing(server)
        if resource.startswith("services.serving.knative.dev") and name:
            return NotFound(f"service {name!r} not found{where}",
                            "`fnctl get service` lists the services" + where)
        return NotFound(f"{what} not found{where}", "check the name (and -n/--namespace)")
    if status in (409, 422):
        reason = doc.get("reason") or ("Conflict" if status == 409 else "Invalid")
        kind = Conflict if status == 409 else Invalid
        return kind(f"the cluster refused to {verb} {what}{where} ({status} {reason}): {api_message}",
                    "fix what the message names and retry")
    kind = BadRequest if status == 400 else ApiError
    return kind(f"the Kubernetes API failed to {verb} {what}{where} ({status}): {api_message}",
                "retry; if it persists, check the API server's health (`kubectl get --raw /readyz`)",
                status=status)
