"""The gatewayapi probe: a static check of Gateway API Gateways whose annotations istiod silently drops.

istiod's deployment controller (istio ``pilot/pkg/config/kube/gateway/deploymentcontroller.go``,
``extractInfrastructureMetadata``) copies a Gateway's ``metadata.annotations`` onto the generated
Deployment, pod template and Service only while ``spec.infrastructure.annotations`` is unset; once it
is set (typically for the load balancer annotations), those replace the Gateway's own annotations
entirely. ``proxy.istio.io/config`` left in ``metadata.annotations`` then never reaches the proxy:
the gateway has no PROXY listener filter although its owner "configured" it.
"""

from __future__ import annotations

from typing import Any

from ..constants import GATEWAY_TOPOLOGY, PROXY_CONFIG_ANNOTATION, TOPOLOGY_PROXY_PROTOCOL
from ..errors import KubeError
from .context import ProbeContext, run_blocking
from .model import Observation, Status

GATEWAY_API_GROUP, GATEWAY_API_VERSION, GATEWAYS = "gateway.networking.k8s.io", "v1", "gateways"
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
RESERVED_PREFIX = "gateway.networking.k8s.io/"
ISTIO_CLASS = "istio"


def dropped_annotations(gateway: dict[str, Any]) -> list[str]:
    """metadata.annotations keys istiod ignores because spec.infrastructure.annotations is set."""
    infra = ((gateway.get("spec") or {}).get("infrastructure") or {}).get("annotations")
    if infra is None:
        return []
    own = (gateway.get("metadata") or {}).get("annotations") or {}
    ignored = {"kubectl.kubernetes.io/last-applied-configuration"}
    return sorted(k for k in own if k not in infra and k not in ignored and not k.startswith(RESERVED_PREFIX))


def lost_proxy_protocol(gateway: dict[str, Any]) -> bool:
    """The dropped proxy.istio.io/config asks for PROXY protocol (gatewayTopology.proxyProtocol)."""
    from ..istioconfig import parse_proxy_config

    if PROXY_CONFIG_ANNOTATION not in dropped_annotations(gateway):
        return False
    cfg, _ = parse_proxy_config(((gateway.get("metadata") or {}).get("annotations") or {}).get(PROXY_CONFIG_ANNOTATION))
    return TOPOLOGY_PROXY_PROTOCOL in ((cfg or {}).get(GATEWAY_TOPOLOGY) or {})


def collect(ctx: ProbeContext) -> dict[str, Any]:
    k = ctx.config.kubernetes
    api = ctx.kube()
    dep = api.sanitize_for_serialization(
        ctx.kube_call("AppsV1Api", "read_namespaced_deployment", "get", "deployments.apps", k.namespace,
                      name=k.gateway_deployment, namespace=k.namespace))
    try:
        res = ctx.kube_call("CustomObjectsApi", "list_cluster_custom_object", "list", f"{GATEWAYS}.{GATEWAY_API_GROUP}",
                            group=GATEWAY_API_GROUP, version=GATEWAY_API_VERSION, plural=GATEWAYS)
        gateways = [g for g in res.get("items", []) if (g.get("spec") or {}).get("gatewayClassName") == ISTIO_CLASS]
    except KubeError as exc:
        if getattr(exc, "status", None) != 404:
            raise
        gateways = []  # Gateway API CRDs not installed
    return {"deployment": dep, "gateways": gateways}


async def probe_gatewayapi(ctx: ProbeContext) -> Observation:
    obs = Observation("gatewayapi")
    data = await run_blocking(collect, ctx)
    labels = (data["deployment"].get("metadata") or {}).get("labels") or {}
    ns = (data["deployment"].get("metadata") or {}).get("namespace", "")
    own_name = labels.get(GATEWAY_NAME_LABEL)
    trapped = []
    mine = None
    for gw in data["gateways"]:
        meta = gw.get("metadata") or {}
        ref = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        dropped = dropped_annotations(gw)
        if dropped:
            trapped.append({"gateway": ref, "dropped": dropped, "proxy_protocol_lost": lost_proxy_protocol(gw)})
        if own_name and ref == f"{ns}/{own_name}":
            mine = gw
    obs.evidence["gateways_with_dropped_annotations"] = trapped
    obs.fact("gwapi.trapped_gateways", [t["gateway"] for t in trapped if PROXY_CONFIG_ANNOTATION in t["dropped"]])
    obs.fact("gwapi.gateway", f"{ns}/{own_name}" if mine is not None else "")
    if mine is None:
        obs.summary = ("the gateway is not generated from a Gateway API Gateway" if not own_name else
                       f"Gateway {ns}/{own_name} not found")
        return obs
    infra = ((mine.get("spec") or {}).get("infrastructure") or {}).get("annotations")
    dropped = dropped_annotations(mine)
    obs.evidence["gateway_annotations"] = (mine.get("metadata") or {}).get("annotations") or {}
    obs.evidence["infrastructure_annotations"] = infra
    obs.fact("gwapi.infrastructure_annotations", infra is not None)
    obs.fact("gwapi.dropped_annotations", dropped)
    obs.fact("gwapi.proxy_config_dropped", PROXY_CONFIG_ANNOTATION in dropped)
    obs.fact("gwapi.proxy_protocol_dropped", lost_proxy_protocol(mine))
    if PROXY_CONFIG_ANNOTATION in dropped:
        obs.status = Status.FAIL
        obs.summary = (f"Gateway {ns}/{own_name}: {PROXY_CONFIG_ANNOTATION} is in metadata.annotations, but "
                       "spec.infrastructure.annotations is set, so istiod ignores it")
    else:
        obs.summary = f"Gateway {ns}/{own_name}: no annotation is dropped"
    return obs
