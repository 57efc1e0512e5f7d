"""One rule per catalogue id (KNOWLEDGE.md). Each reads facts and returns a Finding or None."""

from __future__ import annotations

import ipaddress

from ..constants import ATTR_PRESERVE_CLIENT_IP, ATTR_PROXY_PROTOCOL_V2, HC_TRAFFIC_PORT

from .. import facts as registry
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
             *, fixes: list[str] = (), confirm: list[str] = (), supersedes: list[str] = (),
             explains: list[str] = (), alternatives: list[str] = ()) -> Finding:
    """A Finding whose evidence is ``facts``; it explains the probes that established them plus ``explains``."""
    evidence = f.evidence(*facts)
    probes = [registry.probe_for(e["fact"]) for e in evidence]
    return Finding(fid, CATALOGUE[fid], severity, confidence, explanation, evidence,
                   list(confirm), list(fixes), list(supersedes),
                   explains=sorted(set(probes) | set(explains)), alternatives=list(alternatives))


# Which direct-* probes fail as a consequence of the gateway's PROXY mode (not separate problems).
_FAILS_WHEN_OFF = ["direct-ppv2", "direct-ppv1", "direct-local"]
_FAILS_WHEN_REQUIRED = ["direct-plain"]
_NLB_SYMPTOMS = ["http-via-nlb", "xff-forge", "tcp", "syn"]


def _client_not_prober(f: FactView) -> bool | None:
    """Did the backend see someone other than the prober? Decided by class, else by comparing addresses."""
    cls = f.get("via_nlb.client_ip_class")
    if cls in ("nlb", "vpc-internal"):
        return True
    if cls in ("prober", "external", "probe-spoofed"):
        return False
    ip, prober = f.get("via_nlb.client_ip"), f.get("via_nlb.prober_ip")
    if ip and prober:
        return ip != prober
    return None


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
    pp, preserve = f.get("tg.pp_v2"), f.get("tg.preserve_ip")
    if pp is True or preserve is True:
        return None
    mode, mode_facts = gateway_mode(f)
    if mode in ("required", "optional"):
        return None  # PPD004 / PPD012 explain this path more precisely
    cls = f.get("via_nlb.client_ip_class")
    facts = ["tg.pp_v2", "tg.preserve_ip", "tg.target_type", "via_nlb.client_ip", "via_nlb.client_ip_class",
             "via_nlb.prober_ip", *mode_facts]
    if pp is None or preserve is None:
        # Partial access: the target group's attributes are unknown. A request through the NLB that works
        # against a gateway without the PROXY filter, seen from an address that is not ours, says the same.
        if mode != "off" or f.get("via_nlb.result") != "ok" or not _client_not_prober(f):
            return None
        return _finding("PPD001", "error", 0.65,
                        "The backend sees another address than ours through the NLB, and the gateway has no PROXY "
                        "filter while requests work: the target group neither sends PROXY v2 nor preserves the client "
                        "address (its attributes could not be read).",
                        f, facts, fixes=["FIX-PP-ENABLE"], explains=[*_FAILS_WHEN_OFF, "http-via-nlb"],
                        # the NLB's address also reaches the backend for IPv6 clients / PrivateLink with preservation
                        alternatives=["PPD012", "PPD019", "PPD022"], confirm=f.missing("tg.pp_v2", "tg.preserve_ip"))
    if cls is not None and cls not in ("nlb", "vpc-internal"):
        return None
    confidence = 0.95 if cls in ("nlb", "vpc-internal") else 0.7
    return _finding("PPD001", "error", confidence,
                    "The target group neither preserves the client's address nor sends a PROXY header, and the "
                    "gateway does not expect one: every request reaches the gateway from the NLB's private address, "
                    "so that is all X-Forwarded-For and X-Envoy-External-Address can show.",
                    f, facts, fixes=["FIX-PP-ENABLE"], explains=[*_FAILS_WHEN_OFF, "http-via-nlb"],
                    confirm=f.missing("via_nlb.client_ip_class", "gateway.plain_result"))


def ppd002(f: FactView) -> Finding | None:
    preserve = f.get("tg.preserve_ip")
    if preserve is False or _prober_in_vpc(f):
        return None  # PPD015 when the prober is inside the VPC
    route = f.get("routes.private_default")
    via = f.get("via_nlb.result")
    facts = ["tg.preserve_ip", "routes.private_default", "via_nlb.result", "syn.answer"]
    if preserve is None:
        # Partial access: a hang through the NLB while the gateway answers directly is what an asymmetric
        # return path looks like; preservation and the route table could not be read.
        direct = [f.get("gateway.plain_result"), f.get("gateway.ppv2_result")]
        if not _timed_out(via) or (any(d is not None for d in direct) and "ok" not in direct):
            return None
        return _finding("PPD002", "error", 0.55,
                        "Requests through the NLB hang although the gateway answers directly: the pattern of client IP "
                        "preservation with replies leaving around the NLB (preservation and routes could not be read).",
                        f, facts, fixes=["FIX-TG-PRESERVE-OFF", "FIX-PP-ENABLE"], explains=_NLB_SYMPTOMS,
                        alternatives=["PPD015", "PPD017"],  # hairpin; security groups dropping preserved clients
                        confirm=f.missing("tg.preserve_ip", "routes.private_default", "vpc.cidrs"))
    bypass = route in ("nat", "tgw")
    if not bypass and not _timed_out(via):
        return None
    confidence = 0.95 if bypass and _timed_out(via) else 0.75
    return _finding("PPD002", "error", confidence,
                    "Client IP preservation is on, so the gateway's replies are addressed to the client's own IP; the "
                    f"targets' subnet sends 0.0.0.0/0 to {route or 'a path other than the NLB'}, so replies leave "
                    "around the NLB with another source address and the client never gets them: requests hang.",
                    f, facts, fixes=["FIX-TG-PRESERVE-OFF", "FIX-PP-ENABLE"], explains=_NLB_SYMPTOMS,
                    confirm=f.missing("via_nlb.result", "routes.private_default"))


def ppd003(f: FactView) -> Finding | None:
    pp = f.get("tg.pp_v2")
    if pp is False:
        return None
    mode, mode_facts = gateway_mode(f)
    via, status = f.get("via_nlb.result"), f.get("via_nlb.status")
    facts = ["tg.pp_v2", *mode_facts, "via_nlb.result", "via_nlb.status"]
    explains = [*_FAILS_WHEN_OFF, "http-via-nlb", "xff-forge"]
    # without the Kubernetes facts, the ids that name *why* the gateway lacks the filter stay open
    alternatives = [] if f.has("mesh.pp") else ["PPD006", "PPD007", "PPD027"]
    if pp is True and mode == "off":
        confidence = 0.95 if via == "http-4xx" else 0.8
    elif via == "http-4xx" and status == 400 and (mode == "off" or (pp is True and mode is None)):
        confidence = 0.75  # one side read, the other measured through the NLB
    elif via == "http-4xx" and status == 400 and pp is None and mode is None:
        confidence = 0.5  # NLB-level evidence only: Envoy's answer to a binary header it does not expect
    else:
        return None
    return _finding("PPD003", "error", confidence,
                    "The target group prepends a PROXY v2 header to every connection but the gateway's listener has no "
                    "proxy_protocol filter: Envoy reads the binary header as a broken HTTP request and answers "
                    "400 Bad Request (measured with Envoy 1.40).",
                    f, facts, fixes=["FIX-GW-PP-ON"], explains=explains, alternatives=alternatives,
                    confirm=f.missing("tg.pp_v2", "gateway.plain_result", "gateway.ppv2_result", "via_nlb.result"))


def ppd004(f: FactView) -> Finding | None:
    pp = f.get("tg.pp_v2")
    if pp is True or f.get("tg.preserve_ip") is True:
        return None
    mode, mode_facts = gateway_mode(f)
    via = f.get("via_nlb.result")
    closed = via in ("reset", "empty-reply")
    if pp is False and mode == "required":
        confidence = 0.95 if closed else 0.8
    elif closed and (mode == "required" or (pp is False and mode is None)):
        confidence = 0.75
    elif closed and pp is None and mode is None:
        confidence = 0.5
    else:
        return None
    in_tree_possible = not f.has("svc.pp_annotation") and f.get("tg.lbc_managed") is not True
    return _finding("PPD004", "error", confidence,
                    "The gateway requires a PROXY header but the target group does not send one: Envoy closes every "
                    "connection without a byte (empty reply / reset). Port-forwards and in-cluster clients break too.",
                    f, ["tg.pp_v2", *mode_facts, "via_nlb.result"], fixes=["FIX-TG-PP-ON"],
                    explains=[*_FAILS_WHEN_REQUIRED, "http-via-nlb", "xff-forge"],
                    # a reset through the NLB is also what a target port with no listener gives (PPD028)
                    alternatives=(["PPD008"] if in_tree_possible else []) + ([] if pp is False and mode == "required" else ["PPD028"])
                    + (["PPD024"] if f.get("via_nlb.tls") else []),  # a TLS listener resets a client without SNI too
                    confirm=f.missing("tg.pp_v2", "gateway.plain_result", "gateway.ppv2_result", "via_nlb.result"))


def _hc_config(f: FactView) -> tuple[str | None, str | None, str | None, list[str]]:
    """(protocol, port, path) of the health check: from the target group, else the Service's LBC annotations."""
    if f.has("hc.protocol"):
        return f.get("hc.protocol"), f.get("hc.port"), f.get("hc.path"), ["hc.protocol", "hc.port", "hc.path"]
    ann = f.get("svc.hc_annotations")
    if ann and f.get("svc.pp_annotation") is not None:
        proto = (ann.get("healthcheck-protocol") or "").upper() or None
        return proto, ann.get("healthcheck-port"), ann.get("healthcheck-path"), ["svc.hc_annotations"]
    return None, None, None, []


def ppd005(f: FactView) -> Finding | None:
    pp = f.get("tg.pp_v2", f.get("svc.pp_annotation"))
    proto, port, _path, hc_facts = _hc_config(f)
    if pp is not True or proto not in ("HTTP", "HTTPS") or port in (None, HC_TRAFFIC_PORT):
        return None
    if f.get("gateway.status_pp") is True:
        return None  # the status listener takes PROXY headers (ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL)
    health = f.get("tg.health") or []
    unhealthy = [h for h in health if h.get("state") == "unhealthy"]
    would_pass = f.get("hc.would_pass")
    known = f.has("tg.health") or f.has("hc.would_pass")
    if known and not unhealthy and would_pass is not False:
        return None
    confidence = 0.95 if unhealthy and would_pass is False else 0.8 if known else 0.65
    # Istio ≥ 1.27 can put an optional PROXY filter on the status port (rules_conf.status_port_remedy).
    remedy, fixes, remedy_facts = rules_conf.status_port_remedy(f)
    return _finding("PPD005", "error", confidence,
                    f"PROXY protocol is on, and the NLB sends its PPv2 LOCAL header on health checks too; the health "
                    f"check is HTTP on port {port} (Istio's status port), which has no PROXY filter, "
                    "so it answers the header with 400 and the targets are marked unhealthy. " + remedy,
                    f, ["tg.pp_v2", "svc.pp_annotation", *hc_facts, "tg.health", "hc.would_pass", "gateway.status_pp",
                        *remedy_facts],
                    fixes=fixes, explains=["aws", "health"],
                    confirm=f.missing("hc.would_pass", "tg.health", "gateway.istio_version"))


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
                    explains=[*_FAILS_WHEN_OFF, "http-via-nlb", "xff-forge"],
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
                    fixes=["FIX-MOVE-ANNOTATION"], supersedes=["PPD003"],
                    explains=[*_FAILS_WHEN_OFF, "http-via-nlb", "xff-forge", "kube"])


def ppd008(f: FactView) -> Finding | None:
    pp = f.get("tg.pp_v2")
    if not f.get("svc.pp_annotation") or pp is True:
        return None
    lb_type = f.get("svc.lb_type")
    lbc = f.get("lbc.installed")
    in_tree = lb_type == "nlb" and not f.get("tg.lbc_managed")
    if not in_tree and lbc is not False:
        return None
    confidence = 0.9
    if pp is None:
        # Partial access: the attribute is unknown, but the gateway's refusal of plain connections through the
        # NLB says the target group sends no PROXY header.
        if f.get("via_nlb.result") not in ("reset", "empty-reply"):
            return None
        confidence = 0.7
    return _finding("PPD008", "error", confidence,
                    "The Service asks for PROXY protocol (aws-load-balancer-proxy-protocol: \"*\") but the target group "
                    "does not send it: " + ("the in-tree cloud provider manages this NLB and ignores that annotation for "
                                            "NLB target groups." if in_tree else "no AWS Load Balancer Controller runs."),
                    f, ["svc.pp_annotation", "svc.lb_type", "tg.pp_v2", "tg.lbc_managed", "lbc.installed", "via_nlb.result"],
                    fixes=["FIX-TG-PP-ON"], supersedes=["PPD004"],
                    explains=[*_FAILS_WHEN_REQUIRED, "http-via-nlb", "xff-forge"], confirm=f.missing("tg.pp_v2"))


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
    if spoofable is None and (f.get("via_nlb.hops_in_front") or 0) >= hops:
        return None  # as many proxies in front as trusted: nothing to forge (too few: PPD023)
    measured = f.get("xff.trusted_hops_measured")
    if spoofable:
        confidence = 0.95
        how = (f"a request carrying {f.get('xff.forged_count_won')} forged X-Forwarded-For entr"
               f"{'y' if f.get('xff.forged_count_won') == 1 else 'ies'} through the NLB had one of them taken as the "
               "client address")
    else:
        # Not measured (no echo answer through the NLB): config alone, and nothing trusted is known in front.
        confidence = 0.6
        how = "the configuration says so; the forge test could not run"
    n = measured or hops
    return _finding("PPD010", "warning", confidence,
                    f"The gateway trusts {n} X-Forwarded-For hop(s) (numTrustedProxies / xff_num_trusted_hops): Envoy "
                    f"takes the entry {n} from the right as the client, but nothing trusted sits in front of the NLB, so "
                    f"a client sending {n} entries chooses its own IP ({how}).",
                    f, ["xff.spoofable", "xff.forged_count_won", "xff.trusted_hops_measured", "gateway.num_trusted_proxies",
                        "gateway.xff_num_trusted_hops", "forge.external_address"],
                    fixes=["FIX-TRUSTED-HOPS"], explains=["xff-forge"], confirm=f.missing("xff.spoofable"))


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
                    f, ["via_nlb.echo_shows_xff", "gateway.ppv2.echo_shows_xff", "gateway.plain.echo_shows_xff",
                        "via_nlb.external_address", "gateway.use_remote_address"])


def ppd012(f: FactView) -> Finding | None:
    pp = f.get("tg.pp_v2")
    if pp is True:
        return None
    mode, mode_facts = gateway_mode(f)
    if mode != "optional":
        return None
    confidence = 0.9
    if pp is None:
        if f.get("via_nlb.result") != "ok" or not _client_not_prober(f):
            return None
        confidence = 0.7  # the backend sees another address than ours: no PROXY header arrives
    return _finding("PPD012", "error", confidence,
                    "The gateway accepts connections with or without a PROXY header "
                    "(allow_requests_without_proxy_protocol) and the target group sends none: requests work, but the "
                    "client address is the NLB's.",
                    f, ["tg.pp_v2", *mode_facts, "via_nlb.client_ip", "via_nlb.client_ip_class"],
                    fixes=["FIX-TG-PP-ON", "FIX-PP-ENABLE"], explains=["http-via-nlb"], confirm=f.missing("tg.pp_v2"))


def ppd013(f: FactView) -> Finding | None:
    if not f.get("gateway.pp_after_tls_inspector"):
        return None
    return _finding("PPD013", "error", 0.95,
                    "The proxy_protocol listener filter runs after tls_inspector (an EnvoyFilter MERGE appended it): "
                    "tls_inspector sees the PROXY header instead of a ClientHello, so SNI matching fails on HTTPS "
                    "listeners. The PROXY filter must be first.",
                    f, ["gateway.pp_after_tls_inspector", "gateway.listener_filters", "envoyfilter.pp"],
                    fixes=["FIX-FILTER-ORDER"], explains=["envoy", "kube"])


def ppd014(f: FactView) -> Finding | None:
    if f.get("tg.target_type") != "instance" or f.get("svc.external_traffic_policy") != "Local" or not f.get("tg.pp_v2"):
        return None
    return _finding("PPD014", "error", 0.85,
                    "Instance targets with externalTrafficPolicy: Local make the NLB health-check kube-proxy's "
                    "healthCheckNodePort, and with PROXY protocol on it sends a PROXY header there too, which kube-proxy "
                    "does not speak: nodes fail their health checks. Use IP targets.",
                    f, ["tg.target_type", "svc.external_traffic_policy", "tg.pp_v2", "tg.health"], explains=["aws", "health"])


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
                    fixes=["FIX-TG-PRESERVE-OFF"], explains=_NLB_SYMPTOMS)


def ppd000(f: FactView) -> Finding | None:
    pp, preserve = f.get("tg.pp_v2"), f.get("tg.preserve_ip")
    if pp is False or preserve is True:
        return None
    mode, mode_facts = gateway_mode(f)
    if mode not in ("required", "optional") or f.get("via_nlb.result") != "ok":
        return None
    if f.get("via_nlb.client_ip_class") not in ("prober", "external"):
        return None
    if f.has("tg.healthy_count") and f.get("tg.healthy_count") == 0:
        return None
    if rules_drain.undecided_rollout(f):
        return None  # a rollout was asked about and could not be measured: not "healthy" (rules_drain.py)
    if rules_drain.unsettled_rollout(f):
        return None  # a rollout is in progress: the NLB may still reach the replaced pods (PPD094)
    facts = ["tg.pp_v2", "tg.preserve_ip", *mode_facts, "via_nlb.client_ip", "via_nlb.client_ip_class", "tg.healthy_count"]
    confirm: list[str] = []
    confidence = 0.9
    if not f.has("tg.healthy_count"):
        # Target health unseen (AWS refused): "healthy" cannot be claimed — an NLB fails open to unhealthy
        # targets, and the Service's health-check annotations say how targets are checked, not that they pass.
        # PPD093 then ranks what fail-open can hide (PPD005, PPD016, PPD014) before PPD000.
        return None
    if pp is None:
        # Partial access: the client's own address arrives through the NLB with a gateway that expects PROXY
        # protocol, so the target group must send it.
        confidence = 0.7
        confirm = f.missing("tg.pp_v2", "tg.preserve_ip", "tg.healthy_count")
    if mode == "optional":
        return _finding("PPD000", "info", min(confidence, 0.8),
                        "The client IP arrives correctly through the NLB, but the gateway still accepts connections "
                        "without a PROXY header (allow_requests_without_proxy_protocol): anything reaching the pods "
                        "directly is taken at its socket address. Finish the rollout by making PROXY protocol mandatory.",
                        f, facts, fixes=["FIX-PP-ENABLE"], confirm=confirm, explains=_FAILS_WHEN_REQUIRED)
    return _finding("PPD000", "ok", confidence,
                    "PROXY protocol v2 end to end: the target group sends it, the gateway requires it, the backend sees "
                    "the client's own address, and the health checks pass.", f, facts, confirm=confirm,
                    explains=_FAILS_WHEN_REQUIRED)


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

# Rollout drain (rules_drain.py).
from . import rules_drain  # noqa: E402

CATALOGUE.update(rules_drain.CATALOGUE)
RULES += rules_drain.RULES
