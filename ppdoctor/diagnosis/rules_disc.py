"""Rules of the disc catalogue ids: PPD027 (Gateway API: proxy.istio.io/config dropped by spec.infrastructure).

Sources: istio ``pilot/pkg/config/kube/gateway/deploymentcontroller.go`` (``extractInfrastructureMetadata``:
``spec.infrastructure.annotations``, once set, replace the Gateway's ``metadata.annotations`` on the generated
Deployment, pod template and Service) and the Gateway API spec (GatewayInfrastructure). Measured in the lab
(scenario ``gateway-api-annotations-dropped``): the generated pod template lacks the annotation, the real
Envoy has no PROXY listener filter and answers the NLB's PROXY v2 connections with 400 (as PPD003).
"""

from __future__ import annotations

from .model import Finding, FactView

CATALOGUE = {
    "PPD027": "Gateway API: proxy.istio.io/config in metadata.annotations is dropped (spec.infrastructure.annotations set)",
}


def ppd027(f: FactView) -> Finding | None:
    if f.get("gwapi.proxy_config_dropped") is not True:
        trapped = f.get("gwapi.trapped_gateways") or []
        if not trapped:
            return None
        # Not the probed gateway, but a Gateway in the cluster has the same trap: say so, lower.
        return Finding("PPD027", CATALOGUE["PPD027"], "warning", 0.9,
                       f"Gateway(s) {', '.join(trapped)} set spec.infrastructure.annotations and keep "
                       "proxy.istio.io/config in metadata.annotations, which istiod then ignores: their proxies do "
                       "not get that config.", f.evidence("gwapi.trapped_gateways"), [], [], [])
    pp = f.get("gwapi.proxy_protocol_dropped")
    tg_pp = f.get("tg.pp_v2")
    live = f.get("gateway.pp_live")
    explanation = (
        f"The Gateway {f.get('gwapi.gateway')} sets spec.infrastructure.annotations, so istiod copies only those onto "
        "the generated Deployment, pod template and Service and ignores the Gateway's own metadata.annotations "
        "(deploymentcontroller.go, extractInfrastructureMetadata). proxy.istio.io/config sits in metadata.annotations "
        "and never reaches the proxy"
        + (": the gateway has no PROXY listener filter" if pp else "")
        + (" while the target group sends PROXY v2, so Envoy answers 400 (what PPD003 sees)." if pp and tg_pp else ".")
    )
    confirm = f.missing("gwapi.proxy_protocol_dropped", "gateway.pp_live", "tg.pp_v2")
    severity = "error" if pp and tg_pp is not False else "warning"
    return Finding("PPD027", CATALOGUE["PPD027"], severity, 0.97 if live is False or tg_pp else 0.85, explanation,
                   f.evidence("gwapi.gateway", "gwapi.infrastructure_annotations", "gwapi.dropped_annotations",
                              "gwapi.proxy_protocol_dropped", "gateway.pp_pod_template", "gateway.pp_live", "tg.pp_v2"),
                   list(confirm), ["FIX-GWAPI-INFRA-ANNOTATION"], ["PPD003", "PPD007"])


RULES = [ppd027]
