"""The live value of a recorded change's field, read fresh, so a rollback never overwrites someone else's edit.

A change recorded in an incident names its object and field; ``live_value`` reads the same field
from the current state (``read_state``) in the form the change recorded it (``after``), so
"still ours" is a plain equality. ``UNKNOWN`` when the field cannot be located; the rollback
then says so instead of pretending it checked.
"""

from __future__ import annotations

import re
from typing import Any

from .planner import PP_ALLOW_WITHOUT, LiveState, _allows_without_pp, _ns_name

UNKNOWN = object()
_ANN = re.compile(r'^(spec\.template\.)?metadata\.annotations\["(.+)"\]$')


def _kind_ns_name(obj: str) -> tuple[str, str, str]:
    kind, _, rest = obj.partition(" ")
    ns, _, name = rest.partition("/")
    return kind, ns, name


def live_value(change: dict[str, Any], st: LiveState) -> Any:
    kind, field = change.get("kind"), str(change.get("field") or "")
    if kind == "aws-tg-attributes":
        return st.attributes.get(field) if change.get("object") == st.tg_arn else UNKNOWN
    if kind == "aws-tg-healthcheck":
        after = change.get("after")
        if change.get("object") != st.tg_arn or not isinstance(after, dict):
            return UNKNOWN
        return {k: st.tg.get(k) for k in after}
    obj_kind, ns, name = _kind_ns_name(str(change.get("object") or ""))
    if obj_kind == "EnvoyFilter":
        found = next((f for f in st.envoy_filters if _ns_name(f) == (ns, name)), None)
        if kind == "k8s-create":
            return change.get("after") if found is not None else None
        if found is None:
            return None
        patches = (found.get("spec") or {}).get("configPatches")
        if field == "spec.configPatches":
            return patches
        if field == PP_ALLOW_WITHOUT:
            return _allows_without_pp(patches)
        return UNKNOWN
    m = _ANN.match(field)
    if m:
        template, key = bool(m.group(1)), m.group(2)
        if obj_kind == "Service" and not template and _ns_name(st.service) == (ns, name):
            return st.service_annotations.get(key)
        if obj_kind == "Deployment" and _ns_name(st.deployment) == (ns, name):
            return (st.template_annotations if template else st.deployment_annotations).get(key)
        return UNKNOWN
    if obj_kind == "ConfigMap" and field.startswith('data["mesh"]') and st.mesh and _ns_name(st.mesh) == (ns, name):
        return (st.mesh.get("data") or {}).get("mesh")
    return UNKNOWN


def still_ours(change: dict[str, Any], now: Any) -> bool:
    """Does the live value equal what our change wrote?"""
    after = change.get("after")
    if change.get("kind") == "aws-tg-attributes" and now is None:
        return False
    return now == after
