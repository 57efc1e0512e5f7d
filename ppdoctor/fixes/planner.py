"""Building fix plans from the *current* state (read fresh, so every before-value is real).

Changes are routed through the owner of the object: a target group the AWS Load Balancer
Controller manages is changed through the gateway Service's annotations (the controller
would revert a direct edit); otherwise the target group itself. Istio proxy config is
merged into an existing ``proxy.istio.io/config`` on the pod template without losing keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import yaml

from ..errors import PPDoctorError
from ..constants import (ANN_HC_PATH, ANN_HC_PORT, ANN_HC_PROTOCOL, ANN_PROXY_PROTOCOL, ANN_TG_ATTRIBUTES,
                         ATTR_PRESERVE_CLIENT_IP, ATTR_PROXY_PROTOCOL_V2, ENVOYFILTER_VERSION, GATEWAY_TOPOLOGY,
                         HC_TRAFFIC_PORT, ISTIO_NETWORKING_GROUP, LB_ANNOTATION_PREFIX, LBC_TAGS, MESH_DEFAULT_CONFIG,
                         PP_ALLOW_WITHOUT, PP_FILTER, PP_FILTER_NAMES, TOPOLOGY_NUM_TRUSTED_PROXIES,
                         TOPOLOGY_PROXY_PROTOCOL)
from ..constants import PP_TYPE_URL as PP_TYPE_URL
from ..constants import PROXY_CONFIG_ANNOTATION as PROXY_CONFIG
from ..probes.context import ProbeContext
from ..istioconfig import parse_proxy_config
from .model import Change, deployment_patch
from .plans_disc import read_gateway

ANN = LB_ANNOTATION_PREFIX
OPTIONAL_FILTER_NAME = "ppdoctor-proxy-protocol"
ISTIO_GROUP, ISTIO_VERSION = ISTIO_NETWORKING_GROUP, ENVOYFILTER_VERSION


class PlanError(PPDoctorError):
    kind = "fix"


@dataclass
class LiveState:
    tg_arn: str
    tg: dict[str, Any]
    attributes: dict[str, str]
    lbc_owned: bool
    service: dict[str, Any]
    deployment: dict[str, Any]
    mesh: dict[str, Any] | None
    envoy_filters: list[dict[str, Any]]
    # X-Forwarded-For entries the client path appends in front of the NLB (target config nlb.client_headers)
    hops_in_front: int = 0
    gateways: list[dict[str, Any]] | None = None  # Istio Gateways (None: could not be listed)
    gateway_api: dict[str, Any] | None = None  # the Gateway API Gateway the Deployment comes from (plans_disc)

    @property
    def service_annotations(self) -> dict[str, str]:
        return (self.service.get("metadata") or {}).get("annotations") or {}

    @property
    def deployment_annotations(self) -> dict[str, str]:
        return (self.deployment.get("metadata") or {}).get("annotations") or {}

    @property
    def template_annotations(self) -> dict[str, str]:
        return ((self.deployment.get("spec") or {}).get("template") or {}).get("metadata", {}).get("annotations") or {}


def read_state(ctx: ProbeContext) -> LiveState:
    from ..probes.aws import collect as aws_collect
    from ..probes.clientpath import hops_in_front
    from ..probes.kube import collect as kube_collect

    aws = aws_collect(ctx)
    group = aws["target_groups"][0]
    tags = group["tags"]
    kube = kube_collect(ctx)
    filters = kube["envoy_filters"] if isinstance(kube["envoy_filters"], list) else []
    return LiveState(
        tg_arn=group["tg"]["TargetGroupArn"], tg=group["tg"], attributes=group["attributes"],
        lbc_owned=LBC_TAGS[0] in tags and bool(kube.get("lbc_installed") is not False),
        service=kube["service"], deployment=kube["deployment"], mesh=kube["mesh"], envoy_filters=filters,
        hops_in_front=hops_in_front(ctx.config),
        gateways=kube["gateways"] if isinstance(kube.get("gateways"), list) else None,
        gateway_api=read_gateway(ctx, kube["deployment"]),
    )


# --- change builders ----------------------------------------------------------------------

def _ns_name(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", "")


def _service_annotation(st: LiveState, key: str, after: str | None, *, verify: str, note: str = "") -> Change | None:
    before = st.service_annotations.get(key)
    if before == after:
        return None
    ns, name = _ns_name(st.service)
    return Change(
        kind="k8s-merge-patch", object=f"Service {ns}/{name}", field=f'metadata.annotations["{key}"]',
        before=before, after=after,
        api_call=f"PATCH /api/v1/namespaces/{ns}/services/{name} (merge patch)",
        payload={"api": "CoreV1Api", "method": "patch_namespaced_service", "verb": "patch", "resource": "services",
                 "kwargs": {"name": name, "namespace": ns, "body": {"metadata": {"annotations": {key: after}}}}},
        rollback_payload={"api": "CoreV1Api", "method": "patch_namespaced_service", "verb": "patch", "resource": "services",
                          "kwargs": {"name": name, "namespace": ns, "body": {"metadata": {"annotations": {key: before}}}}},
        verify=verify, note=note,
    )


def _tg_attribute(st: LiveState, key: str, after: str, *, verify: str, default: str) -> Change | None:
    before = st.attributes.get(key)
    if (before or default) == after:
        return None
    return Change(
        kind="aws-tg-attributes", object=st.tg_arn, field=key, before=before, after=after,
        api_call=f"elbv2:ModifyTargetGroupAttributes {key}={after}",
        payload={"service": "elbv2", "operation": "modify_target_group_attributes",
                 "kwargs": {"TargetGroupArn": st.tg_arn, "Attributes": [{"Key": key, "Value": after}]}},
        rollback_payload={"service": "elbv2", "operation": "modify_target_group_attributes",
                          "kwargs": {"TargetGroupArn": st.tg_arn, "Attributes": [{"Key": key, "Value": before or default}]}},
        verify=verify,
    )


_LBC_NOTE = "the AWS Load Balancer Controller owns this target group and reconciles the annotation into it"


def tg_pp_on(st: LiveState) -> list[Change]:
    # Verified end to end (the echo sees the prober through the NLB), not by reading the
    # attribute back: the NLB takes a moment to act on it.
    if st.lbc_owned:
        c = _service_annotation(st, ANN_PROXY_PROTOCOL, "*", verify="client-ip", note=_LBC_NOTE)
    else:
        c = _tg_attribute(st, ATTR_PROXY_PROTOCOL_V2, "true", verify="client-ip", default="false")
    return [c] if c else []


def tg_preserve_off(st: LiveState) -> list[Change]:
    if st.lbc_owned:
        current = st.service_annotations.get(ANN_TG_ATTRIBUTES, "")
        items = [i.strip() for i in current.split(",") if i.strip() and not i.strip().startswith(ATTR_PRESERVE_CLIENT_IP + "=")]
        items.append(ATTR_PRESERVE_CLIENT_IP + "=false")
        c = _service_annotation(st, ANN_TG_ATTRIBUTES, ",".join(items), verify="tg-preserve-off", note=_LBC_NOTE)
    else:
        default = "true" if st.tg.get("TargetType") == "instance" else "false"
        c = _tg_attribute(st, ATTR_PRESERVE_CLIENT_IP, "false", verify="tg-preserve-off", default=default)
    return [c] if c else []


def hc_tcp(st: LiveState) -> list[Change]:
    if st.tg.get("HealthCheckProtocol") == "TCP" and st.tg.get("HealthCheckPort") == HC_TRAFFIC_PORT:
        return []
    if st.lbc_owned:
        out = [
            _service_annotation(st, ANN_HC_PROTOCOL, "tcp", verify="", note=_LBC_NOTE),
            _service_annotation(st, ANN_HC_PORT, HC_TRAFFIC_PORT, verify=""),
            _service_annotation(st, ANN_HC_PATH, None, verify=""),
        ]
        out = [c for c in out if c]
        if out:
            out[-1].verify = "hc-pass"
        return out
    before = {"HealthCheckProtocol": st.tg.get("HealthCheckProtocol"), "HealthCheckPort": st.tg.get("HealthCheckPort")}
    after = {"HealthCheckProtocol": "TCP", "HealthCheckPort": HC_TRAFFIC_PORT}
    return [Change(
        kind="aws-tg-healthcheck", object=st.tg_arn, field="HealthCheckProtocol, HealthCheckPort", before=before,
        after=after, api_call="elbv2:ModifyTargetGroup HealthCheckProtocol=TCP HealthCheckPort=traffic-port",
        payload={"service": "elbv2", "operation": "modify_target_group", "kwargs": {"TargetGroupArn": st.tg_arn, **after}},
        rollback_payload={"service": "elbv2", "operation": "modify_target_group",
                          "kwargs": {"TargetGroupArn": st.tg_arn, **{k: v for k, v in before.items() if v}}},
        verify="hc-pass",
    )]


def _template_annotation(st: LiveState, key: str, after: str | None, *, verify: str, note: str) -> Change | None:
    before = st.template_annotations.get(key)
    if before == after:
        return None
    ns, name = _ns_name(st.deployment)
    body = lambda v: {"spec": {"template": {"metadata": {"annotations": {key: v}}}}}  # noqa: E731
    return deployment_patch(ns, name, field=f'spec.template.metadata.annotations["{key}"]', before=before, after=after,
                            body_after=body(after), body_before=body(before), verify=verify, note=note)


def _merged_proxy_config(existing: str | None, update: dict[str, Any], remove: tuple[str, ...] = ()) -> str:
    cfg, err = parse_proxy_config(existing)
    if err:
        raise PlanError(f"the existing {PROXY_CONFIG} annotation cannot be parsed ({err})",
                        hint="fix or remove it by hand, then plan again")
    cfg = dict(cfg or {})
    topo = dict(cfg.get(GATEWAY_TOPOLOGY) or {})
    topo.update(update)
    for key in remove:
        topo.pop(key, None)
    if topo:
        cfg[GATEWAY_TOPOLOGY] = topo
    else:
        cfg.pop(GATEWAY_TOPOLOGY, None)
    return json.dumps(cfg, separators=(",", ":"), sort_keys=True)


_ROLL_NOTE = "changing the pod template rolls the gateway pods"


def gw_pp_on(st: LiveState, extra: str | None = None) -> list[Change]:
    existing = st.template_annotations.get(PROXY_CONFIG)
    base = existing
    if extra and not existing:
        base = extra
    after = _merged_proxy_config(base, {TOPOLOGY_PROXY_PROTOCOL: {}})
    if existing and parse_proxy_config(existing)[0] == json.loads(after):
        return []
    c = _template_annotation(st, PROXY_CONFIG, after, verify="gateway-pp", note=_ROLL_NOTE)
    return [c] if c else []


def gw_rollout(st: LiveState) -> list[Change]:
    ns, name = _ns_name(st.deployment)
    key = "kubectl.kubernetes.io/restartedAt"
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    c = _template_annotation(st, key, now, verify="gateway-pp", note="same as `kubectl rollout restart`")
    assert c is not None
    c.rollback_payload = None
    c.note += "; a restart has nothing to roll back"
    return [c]


def move_annotation(st: LiveState) -> list[Change]:
    misplaced_value = st.service_annotations.get(PROXY_CONFIG) or st.deployment_annotations.get(PROXY_CONFIG)
    changes = gw_pp_on(st, extra=misplaced_value)
    if PROXY_CONFIG in st.service_annotations:
        c = _service_annotation(st, PROXY_CONFIG, None, verify="", note="Istio ignores it here")
        if c:
            changes.append(c)
    if PROXY_CONFIG in st.deployment_annotations:
        ns, name = _ns_name(st.deployment)
        before = st.deployment_annotations[PROXY_CONFIG]
        changes.append(deployment_patch(
            ns, name, field=f'metadata.annotations["{PROXY_CONFIG}"]', before=before, after=None,
            body_after={"metadata": {"annotations": {PROXY_CONFIG: None}}},
            body_before={"metadata": {"annotations": {PROXY_CONFIG: before}}}, note="Istio ignores it here",
            strategic=False))
    return changes


def trusted_hops(st: LiveState) -> list[Change]:
    return set_trusted_hops(st, 0, verify="no-spoof")


def set_trusted_hops(st: LiveState, hops: int, *, verify: str) -> list[Change]:
    """numTrustedProxies = ``hops`` where it is set (pod-template annotation and/or mesh config); 0 removes it.

    Set nowhere and ``hops`` > 0: the pod-template annotation gets it (merged, other keys kept).
    """
    changes: list[Change] = []
    existing = st.template_annotations.get(PROXY_CONFIG)
    cfg, _ = parse_proxy_config(existing)
    in_template = bool(cfg) and TOPOLOGY_NUM_TRUSTED_PROXIES in (cfg.get(GATEWAY_TOPOLOGY) or {})
    mesh_text = ((st.mesh or {}).get("data") or {}).get("mesh") or ""
    mesh = (yaml.safe_load(mesh_text) or {}) if st.mesh else {}
    topo = ((mesh.get(MESH_DEFAULT_CONFIG) or {}).get(GATEWAY_TOPOLOGY) or {})
    in_mesh = TOPOLOGY_NUM_TRUSTED_PROXIES in topo
    if in_template or (hops and not in_mesh):
        after = (_merged_proxy_config(existing, {}, remove=(TOPOLOGY_NUM_TRUSTED_PROXIES,)) if hops == 0
                 else _merged_proxy_config(existing, {TOPOLOGY_NUM_TRUSTED_PROXIES: hops}))
        c = _template_annotation(st, PROXY_CONFIG, after, verify=verify, note=_ROLL_NOTE)
        if c:
            changes.append(c)
    if in_mesh and (topo.get(TOPOLOGY_NUM_TRUSTED_PROXIES) != hops or hops == 0):
        if hops == 0:
            topo.pop(TOPOLOGY_NUM_TRUSTED_PROXIES)
        else:
            topo[TOPOLOGY_NUM_TRUSTED_PROXIES] = hops
        after = yaml.safe_dump(mesh, sort_keys=True)
        ns, name = _ns_name(st.mesh)
        changes.append(Change(
            kind="k8s-merge-patch", object=f"ConfigMap {ns}/{name}", field='data["mesh"] defaultConfig.gatewayTopology.numTrustedProxies',
            before=mesh_text, after=after, api_call=f"PATCH /api/v1/namespaces/{ns}/configmaps/{name}",
            payload={"api": "CoreV1Api", "method": "patch_namespaced_config_map", "verb": "patch", "resource": "configmaps",
                     "kwargs": {"name": name, "namespace": ns, "body": {"data": {"mesh": after}}}},
            rollback_payload={"api": "CoreV1Api", "method": "patch_namespaced_config_map", "verb": "patch",
                              "resource": "configmaps", "kwargs": {"name": name, "namespace": ns, "body": {"data": {"mesh": mesh_text}}}},
            verify="", note="Istio reads the mesh config at proxy start: a rollout follows"))
        changes += gw_rollout(st)
        changes[-1].verify = verify
    return changes


def _pp_filter_value(allow: bool) -> dict[str, Any]:
    cfg: dict[str, Any] = {"@type": PP_TYPE_URL}
    if allow:
        cfg[PP_ALLOW_WITHOUT] = True
    return {"name": PP_FILTER, "typed_config": cfg}


def _patch_custom(obj: dict[str, Any], field: str, before: Any, after: Any, body: dict[str, Any],
                  rollback_body: dict[str, Any], *, verify: str, note: str = "") -> Change:
    ns, name = _ns_name(obj)
    kwargs = {"group": ISTIO_GROUP, "version": ISTIO_VERSION, "namespace": ns, "plural": "envoyfilters", "name": name}
    return Change(
        kind="k8s-merge-patch", object=f"EnvoyFilter {ns}/{name}", field=field, before=before, after=after,
        api_call=f"PATCH /apis/{ISTIO_GROUP}/{ISTIO_VERSION}/namespaces/{ns}/envoyfilters/{name} (merge patch)",
        payload={"api": "CustomObjectsApi", "method": "patch_namespaced_custom_object", "verb": "patch",
                 "resource": "envoyfilters.networking.istio.io", "kwargs": {**kwargs, "body": body}},
        rollback_payload={"api": "CustomObjectsApi", "method": "patch_namespaced_custom_object", "verb": "patch",
                          "resource": "envoyfilters.networking.istio.io", "kwargs": {**kwargs, "body": rollback_body}},
        verify=verify, note=note,
    )


def _allows_without_pp(node: Any) -> bool:
    """True when some PROXY filter config in ``node`` (an EnvoyFilter spec, any depth) accepts plain connections."""
    if isinstance(node, dict):
        return node.get(PP_ALLOW_WITHOUT) is True or any(_allows_without_pp(v) for v in node.values())
    if isinstance(node, list):
        return any(_allows_without_pp(v) for v in node)
    return False


def _require_pp(node: Any) -> Any:
    """A copy of ``node`` in which every ``allow_requests_without_proxy_protocol: true`` becomes false."""
    if isinstance(node, dict):
        return {k: (False if k == PP_ALLOW_WITHOUT and v is True else _require_pp(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_require_pp(v) for v in node]
    return node


def _pp_envoy_filters(st: LiveState) -> list[dict[str, Any]]:
    out = []
    for f in st.envoy_filters:
        for patch in (f.get("spec") or {}).get("configPatches") or []:
            value = (patch.get("patch") or {}).get("value") or {}
            names = [value.get("name")] + [lf.get("name") for lf in value.get("listener_filters") or [] if isinstance(lf, dict)]
            if any(n in PP_FILTER_NAMES for n in names):
                out.append(f)
                break
    return out


def filter_order(st: LiveState) -> list[Change]:
    changes = []
    for f in _pp_envoy_filters(st):
        patches = (f.get("spec") or {}).get("configPatches") or []
        new = []
        changed = False
        for patch in patches:
            value = (patch.get("patch") or {}).get("value") or {}
            lfs = [lf for lf in value.get("listener_filters") or [] if isinstance(lf, dict) and lf.get("name") in PP_FILTER_NAMES]
            if patch.get("applyTo") == "LISTENER" and lfs:
                typed = dict(lfs[0].get("typed_config") or {"@type": PP_TYPE_URL})
                new.append({"applyTo": "LISTENER_FILTER", "match": {**(patch.get("match") or {}), "context": "GATEWAY"},
                            "patch": {"operation": "INSERT_FIRST",
                                      "value": {"name": PP_FILTER, "typed_config": typed}}})
                changed = True
            else:
                new.append(patch)
        if changed:
            changes.append(_patch_custom(f, "spec.configPatches", patches, new, {"spec": {"configPatches": new}},
                                         {"spec": {"configPatches": patches}}, verify="filter-order",
                                         note="LISTENER_FILTER INSERT_FIRST puts the PROXY filter before tls_inspector"))
    return changes


def pp_enable(st: LiveState) -> list[Change]:
    """Gateway optional → target group → verify client IP → gateway strict (KNOWLEDGE.md order)."""
    changes: list[Change] = []
    if st.tg.get("HealthCheckProtocol") in ("HTTP", "HTTPS") and st.tg.get("HealthCheckPort") != HC_TRAFFIC_PORT:
        changes += hc_tcp(st)  # the status port never speaks PROXY protocol
    existing = _pp_envoy_filters(st)
    gw_has_pp = bool(existing) or TOPOLOGY_PROXY_PROTOCOL in ((parse_proxy_config(st.template_annotations.get(PROXY_CONFIG))[0] or {})
                                                       .get(GATEWAY_TOPOLOGY) or {})
    ours = next((f for f in existing if _ns_name(f)[1] == OPTIONAL_FILTER_NAME), None)
    optional = next((f for f in existing if _allows_without_pp(f.get("spec"))), None)
    if not gw_has_pp:
        ns = _ns_name(st.deployment)[0]
        obj = {"apiVersion": f"{ISTIO_GROUP}/{ISTIO_VERSION}", "kind": "EnvoyFilter",
               "metadata": {"name": OPTIONAL_FILTER_NAME, "namespace": ns, "labels": {"app.kubernetes.io/managed-by": "ppdoctor"}},
               "spec": {"workloadSelector": {"labels": {"istio": "ingressgateway"}},
                        "configPatches": [{"applyTo": "LISTENER_FILTER", "match": {"context": "GATEWAY"},
                                           "patch": {"operation": "INSERT_FIRST", "value": _pp_filter_value(True)}}]}}
        kwargs = {"group": ISTIO_GROUP, "version": ISTIO_VERSION, "namespace": ns, "plural": "envoyfilters"}
        changes.append(Change(
            kind="k8s-create", object=f"EnvoyFilter {ns}/{OPTIONAL_FILTER_NAME}", field="(new object)", before=None,
            after="proxy_protocol filter first, allow_requests_without_proxy_protocol: true",
            api_call=f"POST /apis/{ISTIO_GROUP}/{ISTIO_VERSION}/namespaces/{ns}/envoyfilters",
            payload={"api": "CustomObjectsApi", "method": "create_namespaced_custom_object", "verb": "create",
                     "resource": "envoyfilters.networking.istio.io", "kwargs": {**kwargs, "body": obj}},
            rollback_payload={"api": "CustomObjectsApi", "method": "delete_namespaced_custom_object", "verb": "delete",
                              "resource": "envoyfilters.networking.istio.io", "kwargs": {**kwargs, "name": OPTIONAL_FILTER_NAME}},
            verify="gateway-optional", note="step 1: the gateway accepts both, nothing breaks"))
        ours = obj
        optional = obj
    tg_changes = tg_pp_on(st)
    for c in tg_changes:
        c.verify = "client-ip"
        c.note = (c.note + "; " if c.note else "") + "step 2: the target group sends PROXY v2"
    changes += tg_changes
    strict_target = optional or ours
    if strict_target is not None:
        patches = strict_target["spec"]["configPatches"]
        strict = _require_pp(patches)
        changes.append(_patch_custom(strict_target, PP_ALLOW_WITHOUT, True, False,
                                     {"spec": {"configPatches": strict}}, {"spec": {"configPatches": patches}},
                                     verify="gateway-required",
                                     note="step 3: the gateway requires PROXY protocol (connections without it are refused)"))
    return changes


CORE_BUILDERS = {  # the seed catalogue's fixes; every fix: registry.BUILDERS
    "FIX-PP-ENABLE": pp_enable,
    "FIX-TG-PRESERVE-OFF": tg_preserve_off,
    "FIX-GW-PP-ON": gw_pp_on,
    "FIX-TG-PP-ON": tg_pp_on,
    "FIX-HC-TCP": hc_tcp,
    "FIX-GW-ROLLOUT": gw_rollout,
    "FIX-MOVE-ANNOTATION": move_annotation,
    "FIX-TRUSTED-HOPS": trusted_hops,
    "FIX-FILTER-ORDER": filter_order,
}

CORE_WINDOWS = {
    "FIX-PP-ENABLE": "none in this order. Shorter paths break requests: target group first → empty replies (PPD004) "
                     "until the gateway expects PROXY protocol; gateway strict first → 400s (PPD003) until the target "
                     "group sends it.",
    "FIX-GW-PP-ON": "the gateway pods roll; while old and new pods coexist some connections may fail.",
    "FIX-TG-PP-ON": "none if the gateway already expects PROXY protocol; otherwise 400s until it does.",
    "FIX-GW-ROLLOUT": "the gateway pods roll.",
}
