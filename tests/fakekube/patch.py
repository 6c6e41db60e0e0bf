"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge (approximation)."""
from __future__ import annotations

import copy

from .errors import ApiError, bad_request


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def strategic_merge_patch(target, patch):
    """Merge patch, except lists of named objects (containers, env, volumes...) merge by 'name'."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if k.startswith("$"):
            continue
        if v is None:
            out.pop(k, None)
        elif (isinstance(v, list) and isinstance(out.get(k), list) and v
              and all(isinstance(i, dict) and "name" in i for i in v)
              and all(isinstance(i, dict) and "name" in i for i in out[k])):
            merged = [copy.deepcopy(i) for i in out[k]]
            for item in v:
                if item.get("$patch") == "delete":
                    merged = [m for m in merged if m["name"] != item["name"]]
                    continue
                for idx, m in enumerate(merged):
                    if m["name"] == item["name"]:
                        merged[idx] = strategic_merge_patch(m, item)
                        break
                else:
                    merged.append(copy.deepcopy(item))
            out[k] = merged
        else:
            out[k] = strategic_merge_patch(out.get(k), v)
    return out


def _unescape(tok: str) -> str:
    return tok.replace("~1", "/").replace("~0", "~")


def _walk(doc, pointer: str):
    if pointer == "":
        return None, None
    if not pointer.startswith("/"):
        raise ValueError(f"invalid JSON pointer {pointer!r}")
    parts = [_unescape(p) for p in pointer[1:].split("/")]
    cur = doc
    for p in parts[:-1]:
        if isinstance(cur, list):
            cur = cur[int(p)]
        elif isinstance(cur, dict):
            cur = cur[p]
        else:
            raise KeyError(p)
    return cur, parts[-1]


def _get(doc, pointer):
    parent, key = _walk(doc, pointer)
    if parent is None:
        return doc
    if isinstance(parent, list):
        return parent[int(key)]
    return parent[key]


def json_patch(doc, ops):
    if not isinstance(ops, list):
        raise bad_request("json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp")
    doc = copy.deepcopy(doc)
    for op in ops:
        try:
            kind = op["op"]
            path = op["path"]
            if kind in ("add", "replace", "test"):
                value = copy.deepcopy(op["value"])
            if kind == "test":
                if _get(doc, path) != value:
                    raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: "
                                   f"testing value {path} failed")
                continue
            if kind in ("move", "copy"):
                value = copy.deepcopy(_get(doc, op["from"]))
                if kind == "move":
                    p, k = _walk(doc, op["from"])
                    if isinstance(p, list):
                        p.pop(int(k))
                    else:
                        del p[k]
                kind = "add"
            parent, key = _walk(doc, path)
            if parent is None:
                if kind in ("add", "replace"):
                    doc = value
                    continue
                raise ValueError("cannot remove root")
            if kind == "add":
                if isinstance(parent, list):
                    if key == "-":
                        parent.append(value)
                    else:
                        idx = int(key)
                        if idx > len(parent):
                            raise IndexError(idx)
                        parent.insert(idx, value)
                else:
                    parent[key] = value
            elif kind == "replace":
                if isinstance(parent, list):
                    parent[int(key)] = value
                else:
                    if key not in parent:
                        raise KeyError(key)
                    parent[key] = value
            elif kind == "remove":
                if isinstance(parent, list):
                    parent.pop(int(key))
                else:
                    del parent[key]
            else:
                raise ValueError(f"unexpected op {kind!r}")
        except ApiError:
            raise
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: "
                           f"json patch {op.get('op') if isinstance(op, dict) else op} operation does not apply: "
                           f"doc is missing path: \"{op.get('path') if isinstance(op, dict) else ''}\": {e}")
    return doc
