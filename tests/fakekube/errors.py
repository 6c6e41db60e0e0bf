"""Kubernetes-style API errors (``kind: Status`` bodies)."""
from __future__ import annotations


class ApiError(Exception):
    """An error the fake API server turns into a ``kind: Status`` response."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict:
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(name, rt, causes=None):
    d = {}
    if name:
        d["name"] = name
    if rt is not None:
        if rt.group:
            d["group"] = rt.group
        d["kind"] = rt.plural
    if causes:
        d["causes"] = causes
    return d


def not_found(rt, name) -> ApiError:
    return ApiError(404, "NotFound", f'{rt.qualified_plural} "{name}" not found', _details(name, rt))


def namespace_not_found(name) -> ApiError:
    return ApiError(404, "NotFound", f'namespaces "{name}" not found', {"name": name, "kind": "namespaces"})


def already_exists(rt, name) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{rt.qualified_plural} "{name}" already exists', _details(name, rt))


def conflict(rt, name) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rt.qualified_plural} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        _details(name, rt),
    )


def invalid(rt, name, causes: list[dict]) -> ApiError:
    """422 Invalid; causes are dicts with reason/message/field."""
    parts = [f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes]
    joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return ApiError(422, "Invalid", f'{rt.kind_qualified} "{name}" is invalid: {joined}', _details(name, rt, causes))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def forbidden(message: str, name=None, rt=None) -> ApiError:
    return ApiError(403, "Forbidden", message, _details(name, rt) if rt is not None else {})


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)
