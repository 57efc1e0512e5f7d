"""Network-level rules from the field (FIELD.md "Network level"): security groups, PrivateLink.

Same shape as ``rules.py``: each rule reads facts and returns a Finding or None; a rule
decides from whichever facts are present and names the probe that would confirm the rest.
"""

from __future__ import annotations

from .. import facts as registry
from ..constants import NLB_DEFAULT_IDLE_TIMEOUT_S, PLACEMENT_FIRST_PAYLOAD
from .model import FactView, Finding, gateway_mode

CATALOGUE = {
    "PPD017": "Client IP preservation on, and the targets' security groups drop clients",
    "PPD018": "A server-first protocol behind PROXY protocol: the NLB holds the header until the client speaks",
    "PPD019": "IPv6 clients on a dualstack NLB with IPv4 targets: preservation cannot carry their address",
    "PPD020": "The NLB resets connections left idle longer than its idle timeout",
    "PPD022": "PrivateLink clients with client IP preservation on: preservation cannot carry their address",
}

# Sources the explanations cite (FIELD.md; stored copies via the search tool).
SG_SOURCES = "aws-load-balancer-controller #3521, #4632, #3935, #3771"
SERVER_FIRST_SOURCES = "istio/istio #36104; pires/go-proxyproto #25; pingcap/tidb #36312"
IPV6_SOURCES = 'AWS "Target groups for your Network Load Balancers" (client IP preservation table)'
IDLE_SOURCES = 'istio/istio #16572, #28879, #52143; AWS "Network Load Balancers" (connection idle timeout)'
PRIVATELINK_SOURCES = 'AWS "Target groups for your Network Load Balancers" (client IP preservation); hashicorp/vault #9450'


# Probes whose failing observations each finding accounts for, besides those its evidence came from (the
# engine's "nothing unexplained" check, PPD090): a dropped SYN times out every path through the NLB.
_NLB_TIMEOUTS = ["tcp", "syn", "http-via-nlb", "xff-forge"]


def _finding(fid: str, severity: str, confidence: float, explanation: str, f: FactView, facts: list[str],
             *, fixes: list[str] = (), confirm: list[str] = (), supersedes: list[str] = (),
             explains: list[str] = ()) -> Finding:
    evidence = f.evidence(*facts)
    probes = {registry.probe_for(e["fact"]) for e in evidence}
    return Finding(fid, CATALOGUE[fid], severity, confidence, explanation, evidence,
                   list(confirm), list(fixes), list(supersedes), explains=sorted(probes | set(explains)))


def _timed_out(result: str | None) -> bool:
    return result in ("timeout-response", "timeout-connect")


def ppd017(f: FactView) -> Finding | None:
    if f.get("tg.preserve_ip") is not True:
        return None
    prober, public = f.get("sg.prober_allowed"), f.get("sg.public_allowed")
    if prober is not False and public is not False:
        return None
    if f.get("privatelink.services"):
        return None  # PPD022: preservation does not apply to PrivateLink clients
    via = f.get("via_nlb.result")
    confidence = 0.95 if prober is False and _timed_out(via) else 0.85 if prober is False else 0.8
    groups = ", ".join(f.get("sg.target_groups") or []) or "the targets' security group"
    allowed = ", ".join(f.get("sg.target_ingress_cidrs") or []) or "nothing"
    who = "the prober and public clients" if prober is False and public is False else (
        "the prober" if prober is False else "public clients")
    fixes = ["FIX-TG-PRESERVE-OFF"] if f.get("tg.pp_v2") is True else ["FIX-TG-PRESERVE-OFF", "FIX-PP-ENABLE"]
    route = f.get("routes.private_default")
    return _finding(
        "PPD017", "error", confidence,
        "Client IP preservation is on, so the targets see each client's own address, and "
        f"{groups} admits only {allowed}: it drops {who}, whose connections time out while callers "
        "inside those ranges work. The AWS Load Balancer Controller >= 2.6 manages rules for the VPC range "
        "only when the NLB has no security group of its own, and briefly revokes rules when attributes "
        f"change ({SG_SOURCES}). The automatic fix turns preservation off"
        + (" — PROXY protocol v2 already carries the client address" if f.get("tg.pp_v2") else
           " and turns PROXY protocol v2 on end to end, which carries the client address")
        + ". Alternatives, by hand: allow the client ranges on the traffic port "
        "(ec2 authorize-security-group-ingress on " + groups + "), or list them in the Service's "
        "spec.loadBalancerSourceRanges so the controller manages the rules.",
        f, ["tg.preserve_ip", "sg.prober_allowed", "sg.public_allowed", "sg.target_groups", "sg.target_ingress_cidrs",
            "sg.nlb_groups", "via_nlb.result", "tg.pp_v2"],
        fixes=fixes, supersedes=[] if route in ("nat", "tgw") else ["PPD002"], explains=["sg", *_NLB_TIMEOUTS],
        confirm=f.missing("via_nlb.result", "sg.prober_allowed"))


def ppd018(f: FactView) -> Finding | None:
    direct, nudged = f.get("server_first.direct_pp_greeting"), f.get("server_first.via_nlb_nudge_greeting")
    if f.get("server_first.via_nlb_greeting") is not False or (direct is not True and nudged is not True):
        return None
    # the greeting listener's own target group decides (it may not be the configured one)
    if f.get("server_first.pp_v2", f.get("tg.pp_v2")) is False:
        return None  # no header at all: the greeting's absence has another cause
    placement = f.get("server_first.header_placement")
    if placement is not None and placement != PLACEMENT_FIRST_PAYLOAD:
        return None  # on_first_ack: the header goes out with the handshake, the NLB holds nothing back
    # The receiver must wait for PROXY: a gateway without the filter proxies the connection at once and the
    # greeting flows back (an Envoy 400 to a header is PPD003's symptom, never a greeting). On that port: it
    # greets only behind a header; else the gateway's mode, or — unknown — the greeting a line end releases.
    mode, mode_facts = gateway_mode(f)
    header_only = direct is True and f.get("server_first.direct_plain_greeting") is False
    if not header_only and (mode == "off" or (mode is None and nudged is not True)):
        return None
    lazy_why = ("the NLB sends the PROXY header only with the client's first data (header placement "
                "on_first_ack_with_payload, the default), while the gateway waits for the header before it lets "
                "the service speak. ")
    if placement is None:  # the target group is not readable
        confidence, why = 0.8, ("most likely " + lazy_why + "Reading the target group's attributes (header "
                                "placement) confirms it. ")
    else:
        confidence, why = 0.95 if direct is True else 0.85, "with " + lazy_why
    port = f.get("server_first.listener_port")
    seen = ("its greeting arrives when a PROXY header is sent straight to the target" if direct is True else
            "its greeting arrives through the NLB as soon as the client has sent a line end")
    return _finding(
        "PPD018", "error", confidence,
        (f"On NLB listener {port}, the" if port else "The")
        + f" service speaks first ({seen}), but a silent client through the NLB never gets it: " + why
        + "No automatic fix: ask AWS support to set proxy_protocol_v2.client_to_server.header_placement="
        "on_first_ack on the target group (not in the public attribute list), or serve that port from a target "
        f"group without PROXY protocol and a gateway listener without the filter ({SERVER_FIRST_SOURCES}).",
        f, ["server_first.via_nlb_greeting", "server_first.via_nlb_nudge_greeting", "server_first.direct_pp_greeting",
            "server_first.direct_plain_greeting", "server_first.header_placement", "server_first.listener_port",
            "server_first.pp_v2", "tg.pp_v2", *mode_facts],
        explains=["server-first"], confirm=f.missing("server_first.header_placement", "server_first.direct_pp_greeting"))


def ppd019(f: FactView) -> Finding | None:
    if f.get("ipv6.client") is not True or f.get("tg.pp_v2") is not False:
        return None
    if f.get("lb.ip_address_type", "dualstack") == "ipv4" or f.get("tg.ip_address_type") == "ipv6":
        return None  # no IPv6 path to this NLB, or IPv6 targets where preservation works
    cls = f.get("via_nlb.client_ip_class")
    if cls is not None and cls not in ("nlb", "vpc-internal"):
        return None
    preserve = f.get("tg.preserve_ip")
    fixes = ["FIX-PP-ENABLE", "FIX-TG-PRESERVE-OFF"] if preserve else ["FIX-PP-ENABLE"]
    return _finding(
        "PPD019", "error", 0.95 if cls == "nlb" else 0.8,
        "The client is IPv6 and reaches a dualstack NLB whose target group is IPv4: the NLB translates the "
        "connection, so the gateway sees the NLB's IPv4 address"
        + (" even though client IP preservation is on" if preserve else "")
        + ". Preservation cannot carry an IPv6 source to an IPv4 target; PROXY protocol v2 can (the header's "
        "family is INET6). Turn PROXY protocol v2 on end to end, or put the gateway behind an IPv6 target "
        f"group ({IPV6_SOURCES}).",
        f, ["ipv6.client", "ipv6.client_scope", "lb.ip_address_type", "tg.ip_address_type", "tg.pp_v2",
            "tg.preserve_ip", "via_nlb.client_ip", "via_nlb.client_ip_class"],
        fixes=fixes, supersedes=["PPD001", "PPD012"], confirm=f.missing("via_nlb.client_ip_class", "lb.ip_address_type"))


def ppd020(f: FactView) -> Finding | None:
    result = f.get("idle.result")
    if result not in ("reset", "empty-reply"):
        return None
    timeout_s = f.get("idle.timeout_s")
    tested = f.get("idle.tested_timeout_s")
    if timeout_s is not None:
        what, after = f"the NLB listener's idle timeout ({timeout_s} s)", f"~{timeout_s} s"
    else:  # the listener's attribute was not readable: the probe waited past a timeout AWS allows
        what = f"{tested or NLB_DEFAULT_IDLE_TIMEOUT_S} s (the listener's own idle timeout was not readable; it is at most that)"
        after = f"at most {tested or NLB_DEFAULT_IDLE_TIMEOUT_S} s"
    return _finding(
        "PPD020", "error", 0.9 if timeout_s is not None else 0.8,
        f"A connection that stayed silent longer than {what} was reset "
        "on its next request: the NLB forgets idle flows. Long-lived idle connections through the gateway "
        f"(database pools, gRPC streams, websockets) see resets after {after}. No automatic fix: "
        "turn TCP keepalive on for the gateway listener with an EnvoyFilter (LISTENER patch, socket_options "
        "SO_KEEPALIVE=1, TCP_KEEPIDLE below the idle timeout, e.g. 60 s, with TCP_KEEPINTVL/TCP_KEEPCNT), "
        "and keepalive on the clients; or raise the listener's tcp.idle_timeout.seconds (ModifyListenerAttributes, "
        f"60-6000 s), which only postpones the reset ({IDLE_SOURCES}).",
        f, ["idle.result", "idle.timeout_s", "idle.tested_timeout_s", "idle.waited_s"], explains=["idle"],
        # the reset after the silence is the symptom; only the configured timeout (the keepalive to set) is open
        confirm=[] if timeout_s is not None else [
            "idle.timeout_s unknown: the listener's tcp.idle_timeout.seconds could not be read; IAM "
            "elasticloadbalancing:DescribeListeners and elasticloadbalancing:DescribeListenerAttributes would confirm it"])


def ppd022(f: FactView) -> Finding | None:
    services = f.get("privatelink.services")
    if not services or f.get("tg.preserve_ip") is not True:
        return None
    pp = f.get("tg.pp_v2")
    cls = f.get("via_nlb.client_ip_class")
    severity = "error" if pp is False or cls == "nlb" else "warning"
    confidence = 0.95 if cls == "nlb" else 0.85
    fixes = ["FIX-TG-PRESERVE-OFF"] if pp else ["FIX-PP-ENABLE", "FIX-TG-PRESERVE-OFF"]
    return _finding(
        "PPD022", severity, confidence,
        f"The NLB is behind a VPC endpoint service ({', '.join(services)}). Client IP preservation has no "
        "effect on PrivateLink traffic: the targets see the NLB's private address, and consumers' addresses "
        "may overlap across their VPCs anyway. Only PROXY protocol v2 identifies these clients: its source "
        "address together with TLV 0xEA (the VPC endpoint id) is the only source of truth. Istio's built-in "
        "gatewayTopology.proxyProtocol parses the header but keeps no TLV; to use the endpoint id, add an "
        "EnvoyFilter proxy_protocol listener filter with `rules` (TLV 0xEA to metadata) or `pass_through_tlvs` "
        f"({PRIVATELINK_SOURCES}).",
        f, ["privatelink.services", "tg.preserve_ip", "tg.pp_v2", "via_nlb.client_ip", "via_nlb.client_ip_class"],
        fixes=fixes, supersedes=["PPD002", "PPD015", "PPD017"],
        confirm=f.missing("via_nlb.client_ip_class"))


RULES = [ppd017, ppd018, ppd019, ppd020, ppd022]
