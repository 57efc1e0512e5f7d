"""The three PATCH flavours of the Kubernetes API.

* ``application/merge-patch+json`` — RFC 7386 JSON merge patch.
* ``application/json-patch+json`` — RFC 6902 JSON patch (the ``jsonpatch`` library).
* ``application/strategic-merge-patch+json`` — Kubernetes strategic merge patch for the
  built-in types the lab serves. Lists with a patch merge key (containers by ``name``, ports
  by ``containerPort``, env by ``name``, Service ports by ``port``, …) are merged element by
  element; other lists are replaced; maps merge recursively; ``null`` deletes. Directives:
  ``$patch: replace|delete|merge`` (in maps and in keyed list elements),
  ``$retainKeys``, ``$deleteFromPrimitiveList/<field>`` and ``$setElementOrder/<field>``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import jsonpatch


class PatchError(ValueError):
    """The patch does not apply. ``code`` is the HTTP status the server answers with."""

    def __init__(self, message: str, code: int = 422) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- merge patch


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: returns a new document; ``target`` is not modified."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --------------------------------------------------------------------------- json patch


def json_patch(target: Any, patch: Any) -> Any:
    """RFC 6902. Malformed patches → 400; operations that fail → 422."""
    if not isinstance(patch, list):
        raise PatchError(
            "json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp", 400
        )
    for op in patch:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid JSON patch operation: {op!r}", 400)
    try:
        return jsonpatch.apply_patch(target, patch, in_place=False)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise PatchError(f"the server rejected our request due to an error in our request: {exc}") from None
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise PatchError(f"the server rejected our request due to an error in our request: {exc}") from None


# --------------------------------------------------------------------------- strategic merge


@dataclass
class Field:
    """Patch metadata of one field: list strategy and the schema of its elements/values."""

    merge_key: str | None = None  # lists: merge elements by this key
    merge_primitives: bool = False  # lists of scalars with patchStrategy=merge (set union)
    schema: dict[str, Field] = field(default_factory=dict)  # for maps / list elements


def _f(merge_key: str | None = None, schema: dict[str, Field] | None = None, *, prim: bool = False) -> Field:
    return Field(merge_key, prim, schema or {})


OBJECT_META: dict[str, Field] = {
    "finalizers": _f(prim=True),
    "ownerReferences": _f("uid"),
}
CONTAINER: dict[str, Field] = {
    "ports": _f("containerPort"),
    "env": _f("name"),
    "volumeMounts": _f("mountPath"),
    "volumeDevices": _f("devicePath"),
    "resizePolicy": _f(),
}
POD_SPEC: dict[str, Field] = {
    "containers": _f("name", CONTAINER),
    "initContainers": _f("name", CONTAINER),
    "ephemeralContainers": _f("name", CONTAINER),
    "volumes": _f("name"),
    "imagePullSecrets": _f("name"),
    "hostAliases": _f("ip"),
    "topologySpreadConstraints": _f("topologyKey"),
    "schedulingGates": _f("name"),
    "resourceClaims": _f("name"),
}
CONDITIONS = _f("type")
POD_TEMPLATE: dict[str, Field] = {"metadata": _f(schema=OBJECT_META), "spec": _f(schema=POD_SPEC)}

SCHEMAS: dict[str, dict[str, Field]] = {
    "Pod": {
        "metadata": _f(schema=OBJECT_META),
        "spec": _f(schema=POD_SPEC),
        "status": _f(
            schema={"conditions": CONDITIONS, "podIPs": _f("ip"), "hostIPs": _f("ip")}
        ),
    },
    "Deployment": {
        "metadata": _f(schema=OBJECT_META),
        "spec": _f(schema={"template": _f(schema=POD_TEMPLATE)}),
        "status": _f(schema={"conditions": CONDITIONS}),
    },
    "Service": {
        "metadata": _f(schema=OBJECT_META),
        "spec": _f(schema={"ports": _f("port")}),
        "status": _f(schema={"conditions": CONDITIONS}),
    },
    "Namespace": {
        "metadata": _f(schema=OBJECT_META),
        "status": _f(schema={"conditions": CONDITIONS}),
    },
    "ConfigMap": {"metadata": _f(schema=OBJECT_META)},
    "Endpoints": {"metadata": _f(schema=OBJECT_META)},
}


def strategic_merge_patch(target: dict[str, Any], patch: Any, kind: str) -> dict[str, Any]:
    """Apply a strategic merge patch to a built-in object of ``kind``."""
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object", 400)
    schema = SCHEMAS.get(kind, {"metadata": _f(schema=OBJECT_META)})
    result = _merge_map(copy.deepcopy(target), patch, schema)
    if result is _DELETED:
        raise PatchError("a strategic merge patch cannot delete the whole object", 400)
    return result


_DELETED = object()


def _merge_map(original: Any, patch: dict[str, Any], schema: dict[str, Field]) -> Any:
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETED
    if directive == "replace":
        return _strip_directives(patch)
    if directive not in (None, "merge"):
        raise PatchError(f"Unknown patch type: {directive!r} in map: {patch!r}", 400)
    result: dict[str, Any] = dict(original) if isinstance(original, dict) else {}

    retain = patch.get("$retainKeys")
    order_directives: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            order_directives[key.split("/", 1)[1]] = value if isinstance(value, list) else []
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            fname = key.split("/", 1)[1]
            cur = result.get(fname)
            if isinstance(cur, list) and isinstance(value, list):
                result[fname] = [x for x in cur if x not in value]
            continue
        if key.startswith("$"):
            raise PatchError(f"unknown strategic merge patch directive {key!r}", 400)
        meta = schema.get(key)
        if value is None:
            result.pop(key, None)
            continue
        cur = result.get(key)
        if isinstance(value, dict):
            merged = _merge_map(cur, value, meta.schema if meta else {})
            if merged is _DELETED:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(cur, value, meta)
        else:
            result[key] = value

    for fname, order in order_directives.items():
        meta = schema.get(fname)
        if isinstance(result.get(fname), list):
            result[fname] = _apply_order(result[fname], order, meta.merge_key if meta else None)

    if isinstance(retain, list):
        keep = set(retain)
        result = {k: v for k, v in result.items() if k in keep}
    return result


def _merge_list(original: Any, patch: list[Any], meta: Field | None) -> list[Any]:
    if meta is None or (meta.merge_key is None and not meta.merge_primitives):
        # no patch strategy: the list is replaced (directive elements dropped)
        return [_strip_directives(x) if isinstance(x, dict) else x for x in patch if not _is_list_replace(x)]
    orig = list(original) if isinstance(original, list) else []
    if meta.merge_primitives:
        out = list(orig)
        for item in patch:
            if item not in out:
                out.append(item)
        return out
    key = meta.merge_key
    if any(_is_list_replace(x) for x in patch):
        return [_strip_directives(x) for x in patch if not _is_list_replace(x)]
    out = list(orig)
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f"map: {item!r} does not contain declared merge key: {key}", 400)
        if key not in item:
            raise PatchError(f"map: {item!r} does not contain declared merge key: {key}", 400)
        idx = next(
            (i for i, x in enumerate(out) if isinstance(x, dict) and x.get(key) == item[key]), None
        )
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            merged = _merge_map({}, item, meta.schema)
            if merged is not _DELETED:
                out.append(merged)
        else:
            merged = _merge_map(out[idx], item, meta.schema)
            if merged is _DELETED:
                out.pop(idx)
            else:
                out[idx] = merged
    return out


def _apply_order(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    def ident(x: Any) -> Any:
        if key and isinstance(x, dict):
            return x.get(key)
        return x if not isinstance(x, dict) else None

    wanted = [ident(o) for o in order]
    first = []
    rest = []
    for x in items:
        (first if ident(x) in wanted else rest).append(x)
    first.sort(key=lambda x: wanted.index(ident(x)))
    return first + rest


def _is_list_replace(x: Any) -> bool:
    return isinstance(x, dict) and x.get("$patch") == "replace" and len(x) == 1


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _strip_directives(v)
            for k, v in value.items()
            if not k.startswith("$")
        }
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


# --------------------------------------------------------------------------- dispatch

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_YAML = "application/apply-patch+yaml"

_ALIASES = {
    "merge": MERGE,
    "strategic": STRATEGIC,
    "json": JSON_PATCH,
    MERGE: MERGE,
    STRATEGIC: STRATEGIC,
    JSON_PATCH: JSON_PATCH,
}


def normalize_patch_type(patch_type: str) -> str:
    base = patch_type.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def apply_patch(target: dict[str, Any], patch: Any, patch_type: str, kind: str) -> dict[str, Any]:
    pt = normalize_patch_type(patch_type)
    if pt == MERGE:
        if not isinstance(patch, dict):
            raise PatchError("merge patch must be a JSON object", 400)
        return merge_patch(target, patch)
    if pt == JSON_PATCH:
        result = json_patch(target, patch)
        if not isinstance(result, dict):
            raise PatchError("the patch replaced the object with a non-object", 422)
        return result
    if pt == STRATEGIC:
        return strategic_merge_patch(target, patch, kind)
    raise PatchError(f"unsupported patch type {patch_type!r}", 415)
