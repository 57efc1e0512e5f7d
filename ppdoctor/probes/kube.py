"""The kube probe: where (if anywhere) the cluster asks the gateway for PROXY protocol, and who owns the NLB.

Reads the gateway Service (LB annotations, externalTrafficPolicy), the Deployment
(pod-template vs. its own metadata annotations), the ``istio`` mesh ConfigMap
(``defaultConfig.gatewayTopology``) with its last change, EnvoyFilters touching the
proxy_protocol listener filter (current and deprecated names), the gateway pods and their
start times, TargetGroupBindings and whether the AWS Load Balancer Controller runs.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import yaml

from ..constants import (ANN_PROXY_PROTOCOL, ANN_TARGET_TYPE, ANN_TG_ATTRIBUTES, ANN_TYPE,
                         GATEWAY_TOPOLOGY, ISTIO_NETWORKING_GROUP, LB_ANNOTATION_PREFIX, LBC_DEPLOYMENT_SELECTOR,
                         MESH_CONFIGMAP_KEY, MESH_DEFAULT_CONFIG, PP_ALLOW_WITHOUT, PP_FILTER_DEPRECATED,
                         PP_FILTER_NAMES, PROXY_CONFIG_ANNOTATION, TGB_GROUP, TGB_PLURAL, TGB_VERSION,
                         TOPOLOGY_NUM_TRUSTED_PROXIES, TOPOLOGY_PROXY_PROTOCOL, ENVOYFILTER_VERSION)
from .. import drain
from ..errors import KubeError
from ..istioconfig import parse_proxy_config
from .context import ProbeContext, run_blocking
from .gatewayservers import add_server_facts
from .model import Observation, Status
from .proxyversion import add_proxy_facts

PROXY_CONFIG = PROXY_CONFIG_ANNOTATION  # kept: fixes/planner.py and others import it from here
LB_ANN = LB_ANNOTATION_PREFIX


def _gateway_topology(cfg: dict[str, Any] | None) -> dict[str, Any] | None:
    topo = (cfg or {}).get(GATEWAY_TOPOLOGY)
    return topo if isinstance(topo, dict) else None


_time = drain.parse_time


def _last_change(meta: dict[str, Any]) -> datetime | None:
    times = [_time(m.get("time")) for m in meta.get("managedFields") or []]
    times = [t for t in times if t]
    return max(times) if times else _time(meta.get("creationTimestamp"))


def _pp_patches(envoy_filter: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for patch in (envoy_filter.get("spec") or {}).get("configPatches") or []:
        value = (patch.get("patch") or {}).get("value") or {}
        candidates = []
        if isinstance(value, dict):
            if value.get("name") in PP_FILTER_NAMES:
                candidates.append(value)
            for lf in value.get("listener_filters") or value.get("listenerFilters") or []:
                if isinstance(lf, dict) and lf.get("name") in PP_FILTER_NAMES:
                    candidates.append(lf)
        for filt in candidates:
            typed = filt.get("typed_config") or filt.get("typedConfig") or {}
            found.append({
                "apply_to": patch.get("applyTo"),
                "operation": (patch.get("patch") or {}).get("operation"),
                "filter_name": filt.get("name"),
                "deprecated_name": filt.get("name") == PP_FILTER_DEPRECATED,
                "allow_without_pp": bool(typed.get(PP_ALLOW_WITHOUT)),
                "port": ((patch.get("match") or {}).get("listener") or {}).get("portNumber"),
            })
    return found


def collect(ctx: ProbeContext) -> dict[str, Any]:
    k = ctx.config.kubernetes
    ns = k.namespace
    api = ctx.kube()
    out: dict[str, Any] = {}
    out["service"] = api.sanitize_for_serialization(
        ctx.kube_call("CoreV1Api", "read_namespaced_service", "get", "services", ns, name=k.gateway_service, namespace=ns))
    out["deployment"] = api.sanitize_for_serialization(
        ctx.kube_call("AppsV1Api", "read_namespaced_deployment", "get", "deployments.apps", ns,
                      name=k.gateway_deployment, namespace=ns))
    try:
        out["mesh"] = api.sanitize_for_serialization(
            ctx.kube_call("CoreV1Api", "read_namespaced_config_map", "get", "configmaps", ns,
                          name=k.mesh_configmap, namespace=ns))
    except KubeError as exc:
        if getattr(exc, "status", None) != 404:
            raise
        out["mesh"] = None
    selector = ",".join(f"{a}={b}" for a, b in
                        ((out["deployment"].get("spec") or {}).get("selector") or {}).get("matchLabels", {}).items())
    out["pods"] = api.sanitize_for_serialization(
        ctx.kube_call("CoreV1Api", "list_namespaced_pod", "list", "pods", ns, namespace=ns, label_selector=selector)).get("items", [])
    out["envoy_filters"] = _optional_list(ctx, "envoyfilters", ISTIO_NETWORKING_GROUP, ENVOYFILTER_VERSION)
    # v1beta1: served by every Istio release that has v1 too (istiod translates between them)
    out["gateways"] = _optional_list(ctx, "gateways", ISTIO_NETWORKING_GROUP, "v1beta1")
    out["tgbs"] = _optional_list(ctx, TGB_PLURAL, TGB_GROUP, TGB_VERSION, namespace=ns)
    try:
        lbc = ctx.kube_call("AppsV1Api", "list_namespaced_deployment", "list", "deployments.apps", "kube-system",
                            namespace="kube-system", label_selector=LBC_DEPLOYMENT_SELECTOR)
        out["lbc_installed"] = bool(lbc.items)
    except KubeError as exc:
        out["lbc_installed"] = None
        out["lbc_error"] = str(exc)
    return out


def _optional_list(ctx: ProbeContext, plural: str, group: str, version: str, namespace: str | None = None) -> list[dict[str, Any]] | str:
    try:
        if namespace:
            res = ctx.kube_call("CustomObjectsApi", "list_namespaced_custom_object", "list", f"{plural}.{group}", namespace,
                                group=group, version=version, namespace=namespace, plural=plural)
        else:
            res = ctx.kube_call("CustomObjectsApi", "list_cluster_custom_object", "list", f"{plural}.{group}",
                                group=group, version=version, plural=plural)
    except KubeError as exc:
        if getattr(exc, "status", None) == 404:
            return []  # the CRD is not installed
        return str(exc)
    return res.get("items", [])


async def probe_kube(ctx: ProbeContext) -> Observation:
    obs = Observation("kube")
    data = await run_blocking(collect, ctx)
    svc, dep = data["service"], data["deployment"]
    svc_ann = (svc.get("metadata") or {}).get("annotations") or {}
    dep_ann = (dep.get("metadata") or {}).get("annotations") or {}
    tmpl_ann = (((dep.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("annotations") or {}

    _service_facts(obs, svc, svc_ann)
    tmpl_topo, misplaced = _proxy_config_facts(obs, svc_ann, dep_ann, tmpl_ann)
    mesh_changed, mesh = _mesh_facts(obs, data["mesh"], tmpl_topo)
    pods = _pod_facts(obs, data["pods"], mesh_changed, ctx.config.nlb.time_scale)
    add_proxy_facts(obs, dep, [p for p in data["pods"] if drain.deleted_at(p) is None])  # the serving pods' proxies
    add_server_facts(obs, data["gateways"], svc, dep)
    filters = data["envoy_filters"]
    pp_filters = _envoy_filter_facts(obs, filters)
    _lbc_facts(obs, data)
    _shutdown_facts(obs, dep, mesh)

    where = []
    if obs.facts["gateway.pp_pod_template"].value:
        where.append("pod-template annotation")
    if obs.facts["mesh.pp"].value:
        where.append("mesh config")
    if pp_filters:
        where.append("EnvoyFilter " + ", ".join(f"{p['namespace']}/{p['name']}" for p in pp_filters))
    obs.fact("gateway.pp_configured", where, "EnvoyFilters unknown: " + filters if isinstance(filters, str) else "")
    obs.evidence["deployment_template_annotations"] = {k: v for k, v in tmpl_ann.items() if "istio" in k}
    obs.evidence["pods"] = pods
    obs.summary = ("PROXY protocol requested by: " + "; ".join(where)) if where else "no PROXY protocol configured for the gateway"
    if misplaced:
        obs.summary += f"; {PROXY_CONFIG} misplaced on the {' and '.join(misplaced)} (ignored by Istio)"
        obs.status = Status.FAIL
    return obs


def _shutdown_facts(obs: Observation, dep: dict[str, Any], mesh: dict[str, Any]) -> None:
    """How long a deleted gateway pod keeps accepting (preStop, Istio's drain, the grace period: ppdoctor/drain.py)."""
    from ..drain import pod_shutdown

    shutdown = pod_shutdown((dep.get("spec") or {}).get("template") or {}, mesh)
    obs.fact("gateway.pre_stop_sleep_s", shutdown.pre_stop_sleep_s, "the istio-proxy container's lifecycle.preStop")
    obs.fact("gateway.termination_drain_s", shutdown.drain_s, "terminationDrainDuration (pod template, mesh, Istio default 5 s)")
    obs.fact("gateway.termination_grace_s", shutdown.grace_s, "terminationGracePeriodSeconds (Kubernetes default 30)")
    obs.fact("gateway.serves_after_delete_s", shutdown.serves_for_s)


def _service_facts(obs: Observation, svc: dict[str, Any], svc_ann: dict[str, str]) -> None:
    """The gateway Service's AWS Load Balancer Controller annotations."""
    lb_ann = {k: v for k, v in svc_ann.items() if k.startswith(LB_ANN)}
    obs.evidence["service_annotations"] = lb_ann
    obs.fact("svc.lb_type", lb_ann.get(ANN_TYPE))
    obs.fact("svc.pp_annotation", lb_ann.get(ANN_PROXY_PROTOCOL) == "*")
    obs.fact("svc.tg_attributes_annotation", lb_ann.get(ANN_TG_ATTRIBUTES))
    obs.fact("svc.hc_annotations", {k.removeprefix(LB_ANN): v for k, v in lb_ann.items() if "healthcheck" in k})
    obs.fact("svc.external_traffic_policy", (svc.get("spec") or {}).get("externalTrafficPolicy"))
    obs.fact("svc.target_type_annotation", lb_ann.get(ANN_TARGET_TYPE))


def _proxy_config_facts(obs: Observation, svc_ann: dict[str, str], dep_ann: dict[str, str],
                        tmpl_ann: dict[str, str]) -> tuple[dict[str, Any] | None, list[str]]:
    """``proxy.istio.io/config`` on the pod template (where Istio reads it) and where it is misplaced."""
    tmpl_cfg, tmpl_err = parse_proxy_config(tmpl_ann.get(PROXY_CONFIG))
    tmpl_topo = _gateway_topology(tmpl_cfg)
    obs.fact("gateway.pp_pod_template", tmpl_topo is not None and TOPOLOGY_PROXY_PROTOCOL in tmpl_topo)
    if tmpl_err:
        obs.fact("gateway.proxy_config_error", tmpl_err)
    misplaced = []
    for where, ann in (("Service metadata", svc_ann), ("Deployment metadata", dep_ann)):
        cfg, _ = parse_proxy_config(ann.get(PROXY_CONFIG))
        if cfg is not None:
            misplaced.append(where)
    obs.fact("gateway.proxy_config_misplaced", misplaced)
    return tmpl_topo, misplaced


def _mesh_facts(obs: Observation, mesh_cm: dict[str, Any] | None,
                tmpl_topo: dict[str, Any] | None) -> tuple[datetime | None, dict[str, Any]]:
    """The mesh config's gateway topology, when it last changed, and the trusted hops in effect; returns the
    time of that change and the parsed mesh config ({} when absent or unreadable)."""
    mesh_topo = None
    mesh_changed = None
    mesh: Any = {}
    if mesh_cm:
        mesh_text = (mesh_cm.get("data") or {}).get(MESH_CONFIGMAP_KEY) or ""
        try:
            mesh = yaml.safe_load(mesh_text) or {}
        except yaml.YAMLError:
            mesh = {}
            obs.fact("mesh.error", "the mesh config is not valid YAML")
        mesh_topo = _gateway_topology((mesh or {}).get(MESH_DEFAULT_CONFIG))
        mesh_changed = _last_change(mesh_cm.get("metadata") or {})
    obs.fact("mesh.pp", mesh_topo is not None and TOPOLOGY_PROXY_PROTOCOL in mesh_topo)
    obs.fact("mesh.changed_at", mesh_changed.isoformat() if mesh_changed else None)
    effective_topo = {**(mesh_topo or {}), **(tmpl_topo or {})}
    obs.fact("gateway.num_trusted_proxies", int(effective_topo.get(TOPOLOGY_NUM_TRUSTED_PROXIES, 0) or 0))
    return mesh_changed, mesh if isinstance(mesh, dict) else {}


def _pod_facts(obs: Observation, raw_pods: list[dict[str, Any]], mesh_changed: datetime | None,
               time_scale: float = 1.0) -> list[dict[str, Any]]:
    """The gateway pods: ready or not, Terminating or not, and whether the serving ones started before the mesh
    config last changed; how long the NLB may still send new flows to the Terminating ones (a rollout)."""
    pods = []
    for pod in raw_pods:
        status = pod.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        entry = {"name": pod["metadata"]["name"], "ready": ready, "ip": status.get("podIP"),
                 "started": status.get("startTime")}
        if (deleted := drain.deleted_at(pod)) is not None:
            entry["deleted"] = deleted.strftime("%Y-%m-%dT%H:%M:%SZ")  # Terminating: replaced, still running
        pods.append(entry)
    obs.fact("gateway.pods", pods)
    serving = [p for p in pods if "deleted" not in p]
    if mesh_changed and serving:
        starts = [_time(p["started"]) for p in serving if p["started"]]
        obs.fact("gateway.pods_predate_mesh", bool(starts) and all(s < mesh_changed for s in starts if s))
    obs.fact("gateway.replaced_routed_s",
             round(drain.replaced_routed_s(raw_pods, datetime.now(timezone.utc), time_scale), 1))
    return pods


def _envoy_filter_facts(obs: Observation, filters: list[dict[str, Any]] | str) -> list[dict[str, Any]]:
    """EnvoyFilters that add the PROXY protocol listener filter (an error text when they could not be read)."""
    pp_filters: list[dict[str, Any]] = []
    if isinstance(filters, str):
        obs.fact("envoyfilter.error", filters)  # unknown (e.g. RBAC), not "none": envoyfilter.pp stays absent
    else:
        for f in filters:
            for patch in _pp_patches(f):
                pp_filters.append({"name": f["metadata"]["name"], "namespace": f["metadata"].get("namespace"), **patch})
        obs.fact("envoyfilter.pp", pp_filters)
    return pp_filters


def _lbc_facts(obs: Observation, data: dict[str, Any]) -> None:
    """The AWS Load Balancer Controller: installed, and the TargetGroupBindings it reconciles."""
    tgbs = data["tgbs"]
    if isinstance(tgbs, str):
        obs.fact("lbc.tgbs", None, tgbs)
    else:
        obs.fact("lbc.tgbs", [t.get("spec", {}).get("targetGroupARN") for t in tgbs])
    obs.fact("lbc.installed", data["lbc_installed"], data.get("lbc_error", ""))

