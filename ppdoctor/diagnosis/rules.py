"""One rule per catalogue id (KNOWLEDGE.md). Each reads facts and returns a Finding or None."""

from __future__ import annotations

import ipaddress

from ..constants import ATTR_PRESERVE_CLIENT_IP, ATTR_PROXY_PROTOCOL_V2, HC_TRAFFIC_PORT

from .model import Finding, FactView, gateway_mode

CATALOGUE = {
    "PPD000": "Healthy: PROXY protocol v2 end to end, client IP correct, health checks pass",
    "PPD001": "No client-IP source: IP targets, PROXY protocol off, preservation off",
    "PPD002": "Client IP preservation with a return path that bypasses the NLB",
    "PPD003": "Target group sends PROXY v2, the gateway listener has no PROXY filter",
    "PPD004": "The gateway expects PROXY protocol, the target group does not send it",
    "PPD005": "PROXY protocol on with an HTTP health check on a port that does not speak it",
    "PPD006": "PROXY protocol set in the mesh config, but the running gateway pods predate it",
    "PPD007": "proxy.istio.io/config placed on the Service / Deployment metadata, not the pod template",
    "PPD008": "The proxy-protocol annotation is ignored (in-tree provider or no Load Balancer Controller)",
    "PPD009": "LBC-managed target group drifted from its Service annotations",
    "PPD010": "numTrustedProxies lets clients forge their IP",
    "PPD011": "The echo backend strips X-Forwarded-For: evidence inconclusive",
    "PPD012": "The gateway accepts connections without PROXY protocol and the target group does not send it",
    "PPD013": "PROXY listener filter placed after tls_inspector",
    "PPD014": "Instance targets + externalTrafficPolicy Local + PROXY protocol: node health checks fail",
    "PPD015": "Hairpin: a client inside the VPC with client IP preservation on",
}


def _finding(fid: str, severity: str, confidence: float, explanation: str, f: FactView, facts: list[str],
             *, fixes: list[str] = (), confirm: list[str] = (), supersedes: list[str] = ()) -> Finding:
    return Finding(fid, CATALOGUE[fid], severity, confidence, explanation, f.evidence(*facts),
                   list(confirm), list(fixes), list(supersedes))


def _timed_out(result: str | None) -> bool:
    return result in ("timeout-response", "timeout-connect")


def _prober_in_vpc(f: FactView) -> bool | None:
    ip, cidrs = f.get("via_nlb.prober_ip"), f.get("vpc.cidrs")
    if not ip or not cidrs:
        return None
    try:
        addr = ipaddress.ip_address(ip)
        return any(addr in ipaddress.ip_network(c, strict=False) for c in cidrs)
    except ValueError:
        return None


def ppd001(f: FactView) -> Finding | None:
    if f.get("tg.pp_v2") is not False or f.get("tg.preserve_ip") is not False:
        return None
    mode, mode_facts = gateway_mode(f)
    if mode in ("required", "optional"):
        return None  # PPD004 / PPD012 explain this path more precisely
    cls = f.get("via_nlb.client_ip_class")
    facts = ["tg.pp_v2", "tg.preserve_ip", "tg.target_type", "via_nlb.client_ip", "via_nlb.client_ip_class", *mode_facts]
    if cls is not None and cls not in ("nlb", "vpc-internal"):
        return None
    confidence = 0.95 if cls in ("nlb", "vpc-internal") else 0.7
    return _finding("PPD001", "error", confidence,
                    "The target group neither preserves the client's address nor sends a PROXY header, and the "
                    "gateway does not expect one: every request reaches the gateway from the NLB's private address, "
                    "so that is all X-Forwarded-For and X-Envoy-External-Address can show.",
                    f, facts, fixes=["FIX-PP-ENABLE"], confirm=f.missing("via_nlb.client_ip_class", "gateway.plain_result"))


def ppd002(f: FactView) -> Finding | None:
    if f.get("tg.preserve_ip") is not True:
        return None
    if _prober_in_vpc(f):
        return None  # PPD015
    route = f.get("routes.private_default")
    via = f.get("via_nlb.result")
    bypass = route in ("nat", "tgw")
    if not bypass and not _timed_out(via):
        return None
    confidence = 0.95 if bypass and _timed_out(via) else 0.75
    return _finding("PPD002", "error", confidence,
                    "Client IP preservation is on, so the gateway's replies are addressed to the client's own IP; the "
                    f"targets' subnet sends 0.0.0.0/0 to {route or 'a path other than the NLB'}, so replies leave "
                    "around the NLB with another source address and the client never gets them: requests hang.",
                    f, ["tg.preserve_ip", "routes.private_default", "via_nlb.result", "syn.answer"],
                    fixes=["FIX-TG-PRESERVE-OFF", "FIX-PP-ENABLE"], confirm=f.missing("via_nlb.result", "routes.private_default"))


def ppd003(f: FactView) -> Finding | None:
    if f.get("tg.pp_v2") is not True:
        return None
    mode, mode_facts = gateway_mode(f)
    if mode != "off":
        return None
    via = f.get("via_nlb.result")
    confidence = 0.95 if via == "http-4xx" else 0.8
    return _finding("PPD003", "error", confidence,
                    "The target group prepends a PROXY v2 header to every connection but the gateway's listener has no "
                    "proxy_protocol filter: Envoy reads the binary header as a broken HTTP request and answers "
                    "400 Bad Request (measured with Envoy 1.40).",
                    f, ["tg.pp_v2", *mode_facts, "via_nlb.result", "via_nlb.status"], fixes=["FIX-GW-PP-ON"],
                    confirm=f.missing("gateway.plain_result", "gateway.ppv2_result", "via_nlb.result"))


def ppd004(f: FactView) -> Finding | None:
    if f.get("tg.pp_v2") is not False or f.get("tg.preserve_ip") is True:
        return None
    mode, mode_facts = gateway_mode(f)
    if mode != "required":
        return None
    via = f.get("via_nlb.result")
    confidence = 0.95 if via in ("reset", "empty-reply") else 0.8
    return _finding("PPD004", "error", confidence,
                    "The gateway requires a PROXY header but the target group does not send one: Envoy closes every "
                    "connection without a byte (empty reply / reset). Port-forwards and in-cluster clients break too.",
                    f, ["tg.pp_v2", *mode_facts, "via_nlb.result"], fixes=["FIX-TG-PP-ON"],
                    confirm=f.missing("gateway.plain_result", "gateway.ppv2_result", "via_nlb.result"))


def ppd005(f: FactView) -> Finding | None:
    if f.get("tg.pp_v2") is not True or f.get("hc.protocol") not in ("HTTP", "HTTPS"):
        return None
    if f.get("hc.port") == HC_TRAFFIC_PORT:
        return None
    health = f.get("tg.health") or []
    unhealthy = [h for h in health if h.get("state") == "unhealthy"]
    would_pass = f.get("hc.would_pass")
    if not unhealthy and would_pass is not False:
        return None
    confidence = 0.95 if unhealthy and would_pass is False else 0.8
    # Istio ≥ 1.27 can put an optional PROXY filter on the status port (rules_conf.status_port_remedy).
    remedy, fixes, remedy_facts = rules_conf.status_port_remedy(f)
    return _finding("PPD005", "error", confidence,
                    f"PROXY protocol is on, and the NLB sends its PPv2 LOCAL header on health checks too; the health "
                    f"check is HTTP on port {f.get('hc.port')} (Istio's status port), which has no PROXY filter, "
                    "so it answers the header with 400 and the targets are marked unhealthy. " + remedy,
                    f, ["tg.pp_v2", "hc.protocol", "hc.port", "hc.path", "tg.health", "hc.would_pass", *remedy_facts],
                    fixes=fixes, confirm=f.missing("hc.would_pass", "gateway.istio_version"))


def ppd006(f: FactView) -> Finding | None:
    if not f.get("mesh.pp") or f.get("gateway.pp_pod_template"):
        return None
    mode, mode_facts = gateway_mode(f)
    if mode not in ("off",) and f.get("gateway.pp_live") is not False:
        return None
    predate = f.get("gateway.pods_predate_mesh")
    confidence = 0.95 if predate else 0.75
    return _finding("PPD006", "error", confidence,
                    "The istio mesh config asks for PROXY protocol (defaultConfig.gatewayTopology), but Istio applies "
                    "ProxyConfig when a proxy starts: the gateway pods started before the change and their listeners "
                    "still lack the filter.",
                    f, ["mesh.pp", "mesh.changed_at", "gateway.pods", "gateway.pods_predate_mesh", "gateway.pp_live", *mode_facts],
                    fixes=["FIX-GW-ROLLOUT", "FIX-GW-PP-ON"], supersedes=["PPD003"],
                    confirm=f.missing("gateway.pp_live", "gateway.pods_predate_mesh"))


def ppd007(f: FactView) -> Finding | None:
    misplaced = f.get("gateway.proxy_config_misplaced") or []
    if not misplaced or f.get("gateway.pp_pod_template"):
        return None
    return _finding("PPD007", "error", 0.95,
                    f"proxy.istio.io/config is on the {' and the '.join(misplaced)}; Istio reads it only from the pod "
                    "template (spec.template.metadata.annotations), so the gateway never got the PROXY filter "
                    "(istioctl analyze: IST0107 MisplacedAnnotation).",
                    f, ["gateway.proxy_config_misplaced", "gateway.pp_pod_template", "gateway.pp_live", "tg.pp_v2"],
                    fixes=["FIX-MOVE-ANNOTATION"], supersedes=["PPD003"])


def ppd008(f: FactView) -> Finding | None:
    if not f.get("svc.pp_annotation") or f.get("tg.pp_v2") is not False:
        return None
    lb_type = f.get("svc.lb_type")
    lbc = f.get("lbc.installed")
    in_tree = lb_type == "nlb" and not f.get("tg.lbc_managed")
    if not in_tree and lbc is not False:
        return None
    return _finding("PPD008", "error", 0.9,
                    "The Service asks for PROXY protocol (aws-load-balancer-proxy-protocol: \"*\") but the target group "
                    "does not send it: " + ("the in-tree cloud provider manages this NLB and ignores that annotation for "
                                            "NLB target groups." if in_tree else "no AWS Load Balancer Controller runs."),
                    f, ["svc.pp_annotation", "svc.lb_type", "tg.pp_v2", "tg.lbc_managed", "lbc.installed"],
                    fixes=["FIX-TG-PP-ON"], supersedes=["PPD004"])


def ppd009(f: FactView) -> Finding | None:
    if not f.get("tg.lbc_managed") or not f.has("svc.pp_annotation") or not f.has("tg.pp_v2"):
        return None
    drift = []
    if f.get("svc.pp_annotation") != f.get("tg.pp_v2"):
        drift.append(ATTR_PROXY_PROTOCOL_V2)
    attrs = f.get("svc.tg_attributes_annotation") or ""
    for item in attrs.split(","):
        key, _, value = item.strip().partition("=")
        if key == ATTR_PRESERVE_CLIENT_IP and f.has("tg.preserve_ip") and (value == "true") != f.get("tg.preserve_ip"):
            drift.append(key)
    if not drift:
        return None
    return _finding("PPD009", "warning", 0.85,
                    "The AWS Load Balancer Controller owns this target group, and its attributes differ from the "
                    f"Service annotations ({', '.join(drift)}): a direct edit will be reverted at the controller's next "
                    "reconcile. Change the Service annotations instead.",
                    f, ["tg.lbc_managed", "svc.pp_annotation", "svc.tg_attributes_annotation", "tg.pp_v2", "tg.preserve_ip"],
                    fixes=["FIX-TG-PP-ON"])


def ppd010(f: FactView) -> Finding | None:
    spoofable = f.get("xff.spoofable")
    hops = f.get("gateway.num_trusted_proxies") or f.get("gateway.xff_num_trusted_hops") or 0
    if spoofable is not True and not (spoofable is None and hops > 0):
        return None
    confidence = 0.95 if spoofable else 0.6
    return _finding("PPD010", "warning", confidence,
                    f"numTrustedProxies is {hops}: Envoy trusts the right-most X-Forwarded-For entries as proxies, but "
                    "nothing trusted sits in front of the NLB, so any client can send X-Forwarded-For and choose its IP.",
                    f, ["xff.spoofable", "gateway.num_trusted_proxies", "gateway.xff_num_trusted_hops", "forge.external_address"],
                    fixes=["FIX-TRUSTED-HOPS"], confirm=f.missing("xff.spoofable"))


def ppd011(f: FactView) -> Finding | None:
    shows = f.get("via_nlb.echo_shows_xff")
    if shows is None:
        shows = f.get("gateway.ppv2.echo_shows_xff", f.get("gateway.plain.echo_shows_xff"))
    if shows is not False:
        return None
    return _finding("PPD011", "warning", 0.9,
                    "The echo backend's answer has no X-Forwarded-For although Envoy sets it (use_remote_address): it "
                    "strips the header (postmanlabs/httpbin does). What the application sees cannot be judged from it; "
                    "deploy mccutchen/go-httpbin or `ppdoctor echo` as the echo.",
                    f, ["via_nlb.echo_shows_xff", "via_nlb.external_address", "gateway.use_remote_address"])


def ppd012(f: FactView) -> Finding | None:
    if f.get("tg.pp_v2") is not False:
        return None
    mode, mode_facts = gateway_mode(f)
    if mode != "optional":
        return None
    return _finding("PPD012", "error", 0.9,
                    "The gateway accepts connections with or without a PROXY header "
                    "(allow_requests_without_proxy_protocol) and the target group sends none: requests work, but the "
                    "client address is the NLB's.",
                    f, ["tg.pp_v2", *mode_facts, "via_nlb.client_ip", "via_nlb.client_ip_class"],
                    fixes=["FIX-TG-PP-ON", "FIX-PP-ENABLE"])


def ppd013(f: FactView) -> Finding | None:
    if not f.get("gateway.pp_after_tls_inspector"):
        return None
    return _finding("PPD013", "error", 0.95,
                    "The proxy_protocol listener filter runs after tls_inspector (an EnvoyFilter MERGE appended it): "
                    "tls_inspector sees the PROXY header instead of a ClientHello, so SNI matching fails on HTTPS "
                    "listeners. The PROXY filter must be first.",
                    f, ["gateway.pp_after_tls_inspector", "gateway.listener_filters", "envoyfilter.pp"],
                    fixes=["FIX-FILTER-ORDER"])


def ppd014(f: FactView) -> Finding | None:
    if f.get("tg.target_type") != "instance" or f.get("svc.external_traffic_policy") != "Local" or not f.get("tg.pp_v2"):
        return None
    return _finding("PPD014", "error", 0.85,
                    "Instance targets with externalTrafficPolicy: Local make the NLB health-check kube-proxy's "
                    "healthCheckNodePort, and with PROXY protocol on it sends a PROXY header there too, which kube-proxy "
                    "does not speak: nodes fail their health checks. Use IP targets.",
                    f, ["tg.target_type", "svc.external_traffic_policy", "tg.pp_v2", "tg.health"])


def ppd015(f: FactView) -> Finding | None:
    if f.get("tg.preserve_ip") is not True or not _prober_in_vpc(f):
        return None
    via = f.get("via_nlb.result")
    confidence = 0.95 if _timed_out(via) else 0.7
    return _finding("PPD015", "error", confidence,
                    f"The prober ({f.get('via_nlb.prober_ip')}) is inside the VPC and client IP preservation is on: the "
                    "target sees the caller's own private address and answers it directly, not through the NLB, so the "
                    "connection hangs (hairpin).",
                    f, ["tg.preserve_ip", "via_nlb.prober_ip", "vpc.cidrs", "via_nlb.result"],
                    fixes=["FIX-TG-PRESERVE-OFF"])


def ppd000(f: FactView) -> Finding | None:
    if f.get("tg.pp_v2") is not True or f.get("tg.preserve_ip") is not False:
        return None
    mode, mode_facts = gateway_mode(f)
    if mode not in ("required", "optional") or f.get("via_nlb.result") != "ok":
        return None
    if f.get("via_nlb.client_ip_class") not in ("prober", "external"):
        return None
    if f.has("tg.healthy_count") and f.get("tg.healthy_count") == 0:
        return None
    facts = ["tg.pp_v2", "tg.preserve_ip", *mode_facts, "via_nlb.client_ip", "via_nlb.client_ip_class", "tg.healthy_count"]
    if mode == "optional":
        return _finding("PPD000", "info", 0.8,
                        "The client IP arrives correctly through the NLB, but the gateway still accepts connections "
                        "without a PROXY header (allow_requests_without_proxy_protocol): anything reaching the pods "
                        "directly is taken at its socket address. Finish the rollout by making PROXY protocol mandatory.",
                        f, facts, fixes=["FIX-PP-ENABLE"])
    return _finding("PPD000", "ok", 0.9,
                    "PROXY protocol v2 end to end: the target group sends it, the gateway requires it, the backend sees "
                    "the client's own address, and the health checks pass.", f, facts)


RULES = [ppd000, ppd001, ppd002, ppd003, ppd004, ppd005, ppd006, ppd007, ppd008, ppd009, ppd010, ppd011,
         ppd012, ppd013, ppd014, ppd015]

# Field catalogue, network level (rules_net.py).
from . import rules_net  # noqa: E402

CATALOGUE.update(rules_net.CATALOGUE)
RULES += rules_net.RULES

# Configuration traps (issue 14) live in their own module.
from . import rules_conf  # noqa: E402

CATALOGUE.update(rules_conf.CATALOGUE)
RULES += rules_conf.RULES

# Gateway API traps (rules_disc.py).
from . import rules_disc  # noqa: E402

CATALOGUE.update(rules_disc.CATALOGUE)
RULES += rules_disc.RULES
