"""Structural-schema handling for the Knative CRDs: pruning, defaulting and validation.

Mirrors what the API server does for a CRD with a structural OpenAPI v3 schema:
unknown fields are pruned (dropped, with a warning) except under
``x-kubernetes-preserve-unknown-fields: true``; defaults are applied; the result is
validated (type, required, enum, pattern...) and failures are 422 Invalid.
"""
from __future__ import annotations

import copy
import functools
import json
import os

import jsonschema
import yaml

# The pinned Knative Serving release's CRDs, kept in the repository (tests/data/knative/README.md).
KNATIVE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "knative")

_SPECIAL_TOP = ("apiVersion", "kind", "metadata")


@functools.cache
def load_crd_schema(filename: str) -> dict | None:
    path = os.path.join(KNATIVE_DIR, filename)
    with open(path) as f:           # missing: a broken checkout, not a reason to skip validation
        crd = yaml.safe_load(f)
    for v in crd["spec"]["versions"]:
        if v["name"] == "v1":
            return v["schema"]["openAPIV3Schema"]
    # A CRD with no v1 (DomainMapping: v1beta1): its storage version's schema.
    stored = [v for v in crd["spec"]["versions"] if v.get("storage")]
    return stored[0]["schema"]["openAPIV3Schema"] if stored else None


def _fmt_path(parts) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


def prune_and_default(schema: dict, obj, path=(), unknown=None, top=True):
    """Mutates obj in place; returns the list of pruned field paths."""
    if unknown is None:
        unknown = []
    if not isinstance(schema, dict):
        return unknown
    if isinstance(obj, dict):
        props = schema.get("properties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
        addl = schema.get("additionalProperties")
        for key in list(obj.keys()):
            if top and key in _SPECIAL_TOP:
                continue
            if props is not None and key in props:
                prune_and_default(props[key], obj[key], path + (key,), unknown, False)
            elif isinstance(addl, dict):
                prune_and_default(addl, obj[key], path + (key,), unknown, False)
            elif addl is True or preserve or props is None and schema.get("type") != "object":
                continue
            else:
                unknown.append(_fmt_path(path + (key,)))
                del obj[key]
        if props:
            for key, sub in props.items():
                if key not in obj and isinstance(sub, dict) and "default" in sub:
                    obj[key] = copy.deepcopy(sub["default"])
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(obj):
            prune_and_default(schema["items"], item, path + (i,), unknown, False)
    return unknown


def _to_jsonschema(s):
    if isinstance(s, list):
        return [_to_jsonschema(x) for x in s]
    if not isinstance(s, dict):
        return s
    out = {}
    for k, v in s.items():
        if k.startswith("x-kubernetes") or k in ("description", "format", "default", "nullable", "example"):
            continue
        if k in ("properties",):
            out[k] = {pk: _to_jsonschema(pv) for pk, pv in v.items()}
        else:
            out[k] = _to_jsonschema(v)
    if s.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if s.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


@functools.cache
def _validator(filename: str):
    schema = load_crd_schema(filename)
    js = _to_jsonschema(schema)
    # metadata is validated by the API server itself
    js.get("properties", {}).pop("metadata", None)
    return jsonschema.Draft7Validator(js)


def validate(filename: str, obj: dict) -> list[dict]:
    """Returns Kubernetes-style causes ({reason, message, field}) for schema failures."""
    causes = []
    for err in sorted(_validator(filename).iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        field = _fmt_path(err.absolute_path)
        inst = err.instance
        if err.validator == "type":
            expected = err.validator_value
            if isinstance(expected, list):
                expected = expected[0]
            got = _json_type(inst)
            causes.append({
                "reason": "FieldValueTypeInvalid",
                "message": f'Invalid value: "{got}": {field} in body must be of type {expected}: "{got}"',
                "field": field,
            })
        elif err.validator == "required":
            missing = err.message.split("'")[1] if "'" in err.message else err.message
            f = f"{field}.{missing}" if field else missing
            causes.append({"reason": "FieldValueRequired", "message": "Required value", "field": f})
        elif err.validator == "enum":
            vals = ", ".join(json.dumps(v) for v in err.validator_value)
            causes.append({
                "reason": "FieldValueNotSupported",
                "message": f"Unsupported value: {json.dumps(inst)}: supported values: {vals}",
                "field": field,
            })
        else:
            causes.append({
                "reason": "FieldValueInvalid",
                "message": f"Invalid value: {json.dumps(inst)[:80]}: {field} in body {err.message}",
                "field": field,
            })
    return causes


def _json_type(v) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"
