"""Label and field selectors, parsed like the API server does."""
from __future__ import annotations

import re

from .errors import bad_request

_TERM = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(==|=|!=|\s+in\s+|\s+notin\s+)\s*(.*?))?\s*$")


def _split_terms(s: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [t for t in out if t.strip()]


def parse_label_selector(s: str | None):
    """Returns a predicate over a labels dict."""
    if not s:
        return lambda labels: True
    reqs = []
    for term in _split_terms(s):
        m = _TERM.match(term)
        if not m:
            raise bad_request(f"unable to parse requirement: found '{term}', expected: identifier")
        neg, key, op, val = m.group(1), m.group(2), (m.group(3) or "").strip(), (m.group(4) or "").strip()
        if neg and op:
            raise bad_request(f"unable to parse requirement: found '{term}'")
        if neg:
            reqs.append(lambda lb, k=key: k not in lb)
        elif not op:
            reqs.append(lambda lb, k=key: k in lb)
        elif op in ("=", "=="):
            reqs.append(lambda lb, k=key, v=val: lb.get(k) == v)
        elif op == "!=":
            reqs.append(lambda lb, k=key, v=val: lb.get(k) != v)
        else:
            if not (val.startswith("(") and val.endswith(")")):
                raise bad_request(f"unable to parse requirement: found '{val}', expected: '('")
            vals = {v.strip() for v in val[1:-1].split(",") if v.strip()}
            if op == "in":
                reqs.append(lambda lb, k=key, vs=vals: k in lb and lb[k] in vs)
            else:
                reqs.append(lambda lb, k=key, vs=vals: lb.get(k) not in vs)
    return lambda labels: all(r(labels or {}) for r in reqs)


POD_FIELDS = {"status.phase", "spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
              "spec.serviceAccountName", "status.podIP", "status.nominatedNodeName", "spec.hostNetwork"}
EVENT_FIELDS = {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
                "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
                "reason", "reportingComponent", "source", "type"}


def _get_path(obj, path):
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if isinstance(cur, dict):
        return ""
    return str(cur)


def parse_field_selector(s: str | None, rt):
    if not s:
        return lambda obj: True
    allowed = {"metadata.name", "metadata.namespace"}
    if rt.plural == "pods":
        allowed |= POD_FIELDS
    elif rt.plural == "events":
        allowed |= EVENT_FIELDS
    elif rt.plural == "secrets":
        allowed |= {"type"}
    elif rt.plural == "namespaces":
        allowed |= {"status.phase"}
    reqs = []
    for term in s.split(","):
        term = term.strip()
        if not term:
            continue
        m = re.match(r"^([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)$", term)
        if not m:
            raise bad_request(f"invalid selector: '{s}'; can't understand '{term}'")
        key, op, val = m.groups()
        if key not in allowed:
            if rt.is_custom:
                raise bad_request(f'"{key}" is not a known field selector: only "metadata.name", "metadata.namespace"')
            raise bad_request(f'field label not supported: {key}')
        if key == "metadata.namespace" and not rt.namespaced:
            pass
        if op == "!=":
            reqs.append(lambda o, k=key, v=val: _get_path(o, k) != v)
        else:
            reqs.append(lambda o, k=key, v=val: _get_path(o, k) == v)
    return lambda obj: all(r(obj) for r in reqs)
