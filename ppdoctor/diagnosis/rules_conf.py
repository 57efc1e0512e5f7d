"""Configuration traps operators report again and again (issue 14, ../shared/FIELD.md): one rule per id.

Each rule reads facts and returns a Finding or None, like ``rules.py``; every rule decides from
whichever of its facts are present and says which probe would confirm the rest.
"""

from __future__ import annotations

from .. import facts as registry
from .model import FactView, Finding, gateway_mode

CATALOGUE = {
    "PPD028": "No gateway listener on the target port: no Gateway server lands there",
    "PPD026": "In-cluster callers reach the gateway without the NLB and send no PROXY header: reset",
    "PPD024": "TLS target group re-encrypts without SNI; the gateway's TLS server matches specific hosts",
    "PPD025": "TLS terminated at the NLB and the gateway redirects plaintext to https: redirect loop",
    "PPD023": "numTrustedProxies does not match the proxies in front of the NLB (one too high behind a CDN)",
}


def _finding(fid: str, severity: str, confidence: float, explanation: str, f: FactView, facts: list[str],
             *, fixes: list[str] = (), confirm: list[str] = (), supersedes: list[str] = (),
             explains: list[str] = ()) -> Finding:
    """A Finding whose evidence is ``facts``; it explains the probes that established them plus ``explains``."""
    evidence = f.evidence(*facts)
    probes = {registry.probe_for(e["fact"]) for e in evidence}
    return Finding(fid, CATALOGUE[fid], severity, confidence, explanation, evidence,
                   list(confirm), list(fixes), list(supersedes), explains=sorted(probes | set(explains)))


# Probes that fail through the NLB (or at the pod) as a consequence of the finding, not as separate problems.
_NLB_SYMPTOMS = ["tcp", "syn", "http-via-nlb", "xff-forge"]


def _xff_entries(value: str | None) -> list[str]:
    return [e.strip() for e in (value or "").split(",") if e.strip()]


def status_port_remedy(f: FactView) -> tuple[str, list[str], list[str]]:
    """PPD005's remedy by proxy release: (sentence, fixes, facts).

    Istio ≥ 1.27 reads ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL at pod start and puts a PROXY filter with
    allow_requests_without_proxy_protocol on 15021 (istio/istio PR #55986, fixes #39868); older releases
    ignore it and need the TCP health check (or a second health port through an EnvoyFilter, #39868).
    """
    facts = ["gateway.istio_version", "gateway.status_pp_env_supported", "gateway.status_pp_env",
             "gateway.status_pp_env_running", "gateway.status_pp"]
    version = f.get("gateway.istio_version") or "of unknown release"
    supported = f.get("gateway.status_pp_env_supported")
    if supported is True and f.get("gateway.status_pp_env") and f.get("gateway.status_pp_env_running") is False:
        return ("The pod template sets ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL, but pilot-agent reads it at start "
                "and the running pods started without it: restart them.", ["FIX-GW-ROLLOUT", "FIX-HC-TCP"], facts)
    if supported is True:
        return (f"The gateway runs Istio {version} (≥ 1.27): ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL=true on the "
                "gateway container gives the status port an optional PROXY filter (the pods restart to read it); "
                "or health-check the traffic port over TCP.", ["FIX-STATUS-PP-ENV", "FIX-HC-TCP"], facts)
    if supported is False:
        return (f"The gateway runs Istio {version}, before 1.27: ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL does not "
                "exist there" + (" (it is set, and ignored)" if f.get("gateway.status_pp_env") else "")
                + "; health-check the traffic port over TCP, or upgrade to 1.27 and set it.", ["FIX-HC-TCP"], facts)
    return ("Health-check the traffic port over TCP (from Istio 1.27 on, ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL is "
            "another way; the proxy's release is not known).", ["FIX-HC-TCP"], facts)


def ppd023(f: FactView) -> Finding | None:
    """CDN → NLB → gateway: with PROXY protocol (or preservation) the NLB adds no XFF entry, so
    numTrustedProxies must be the number of proxies in front of the NLB (istio/istio #31704).

    Measured with Envoy 1.40 (docs/diagnosis.md): XFF ``client`` from a CDN peer with
    xff_num_trusted_hops 2 gives X-Envoy-External-Address = the CDN's address; with 1 the client's.
    """
    hops = f.get("gateway.xff_num_trusted_hops")
    hops_fact = "gateway.xff_num_trusted_hops"
    if hops is None:
        hops, hops_fact = f.get("gateway.num_trusted_proxies"), "gateway.num_trusted_proxies"
    # Proxies in front: the X-Forwarded-For entries the request reached Envoy with (the backend's view
    # minus the one Envoy appended itself), else what the client path is configured to add.
    seen = _xff_entries(f.get("via_nlb.xff"))
    in_front = len(seen) - 1 if seen else f.get("via_nlb.hops_in_front")
    if hops is None or not in_front or hops == in_front:
        return None
    cls = f.get("via_nlb.client_ip_class")
    if cls not in ("proxy-in-front", None) and not (hops > in_front and f.get("xff.spoofable")):
        return None
    confidence = 0.95 if cls == "proxy-in-front" else 0.7
    direction = "one too many" if hops == in_front + 1 else ("too many" if hops > in_front else "too few")
    return _finding(
        "PPD023", "error", confidence,
        f"numTrustedProxies is {hops}, but {in_front} prox{'y' if in_front == 1 else 'ies'} (a CDN) append"
        f"{'s' if in_front == 1 else ''} to X-Forwarded-For in front of the NLB, and the NLB itself adds no entry "
        "(it passes the client address in the PROXY header, or preserves it): that is "
        f"{direction}. Envoy then takes {f.get('via_nlb.external_address') or 'the wrong entry'} as the client "
        f"(X-Envoy-External-Address), the proxy in front rather than the client behind it. Set numTrustedProxies "
        f"to {in_front}.",
        f, [hops_fact, "via_nlb.hops_in_front", "via_nlb.xff", "via_nlb.external_address", "via_nlb.client_ip_class",
            "xff.spoofable", "tg.pp_v2"],
        fixes=["FIX-TRUSTED-HOPS-CDN"], supersedes=["PPD010"],
        confirm=f.missing("via_nlb.client_ip_class", "gateway.xff_num_trusted_hops"))


def _target_ports(f: FactView) -> list[int]:
    if f.get("tg.target_type") not in ("ip", None):
        return []  # instance targets: the target port is a NodePort, not the gateway's
    return sorted({h["port"] for h in f.get("tg.health") or [] if isinstance(h.get("port"), int)})


def ppd028(f: FactView) -> Finding | None:
    """The target port has no listener: no Gateway server selects the pods on it (istio/istio #48492).

    Decided from the running Envoy (gateway.listener_ports) when the admin API answered, else from the
    Gateways and the Service (gateway.server_container_ports). The symptom is refusal, not a PROXY
    protocol mismatch: the NLB's connections and its TCP health checks are refused.
    """
    ports = _target_ports(f)
    if not ports:
        return None
    if f.has("gateway.listener_ports"):
        open_ports, source = set(f.get("gateway.listener_ports")), "gateway.listener_ports"
    elif f.has("gateway.server_container_ports"):
        open_ports, source = set(f.get("gateway.server_container_ports")), "gateway.server_container_ports"
    else:
        return None
    missing = [p for p in ports if p not in open_ports]
    if not missing:
        return None
    refused = f.get("via_nlb.result") in ("reset", "refused", "empty-reply") or f.get("gateway.plain_result") == "refused"
    unhealthy = f.has("tg.healthy_count") and f.get("tg.healthy_count") == 0
    confidence = 0.95 if source == "gateway.listener_ports" and (refused or unhealthy) else 0.8
    servers = f.get("gateway.servers") or []
    declared = ", ".join(f"{s['gateway']} port {s['number']} → {s['container_ports']}" for s in servers) or "none"
    return _finding(
        "PPD028", "error", confidence,
        f"The target group sends to port {', '.join(map(str, missing))} of the gateway pods, but Envoy has no "
        f"listener there (it listens on {', '.join(map(str, sorted(open_ports))) or 'no traffic port'}): istiod opens "
        "a gateway listener only for a Gateway server that selects the pods, and a server's port lands on the "
        f"targetPort of the gateway Service port with that number. Servers: {declared}. Connections and TCP health "
        "checks are refused, so the targets are unhealthy; this is not a PROXY protocol problem. Add a Gateway "
        "server whose port is the Service port of that target port.",
        f, [source, "tg.health", "tg.healthy_count", "tg.target_type", "gateway.servers", "svc.port_map",
            "via_nlb.result", "gateway.plain_result"],
        fixes=["FIX-GW-SERVER-PORT"], supersedes=["PPD001", "PPD003", "PPD004", "PPD005", "PPD012"],
        # nothing listens on the port: the NLB's connections, its health checks and the direct probes all fail
        explains=[*_NLB_SYMPTOMS, "health", "direct-plain", "direct-ppv2", "direct-ppv1", "direct-local", "incluster"],
        confirm=f.missing("gateway.listener_ports", "gateway.servers"))


def ppd026(f: FactView) -> Finding | None:
    """Pods calling the gateway Service's ClusterIP send no PROXY header and are reset (kgateway-dev/kgateway
    #1668, cert-manager #656). Fires only on evidence of such callers: header-less connections counted by
    Envoy (downstream_cx_proxy_proto_error) that ppdoctor did not make, while the NLB sends PROXY v2 — so
    the NLB is not their source and a healthy setup without such callers stays PPD000.
    """
    foreign = f.get("incluster.foreign_pp_errors")
    if not foreign or f.get("tg.pp_v2") is False:
        return None
    mode, mode_facts = gateway_mode(f)
    if mode == "optional" or mode == "off":
        return None  # accepted (optional) or a PPD003 world: not the in-cluster trap
    # The target group unread (AWS refused): a gateway that requires PROXY protocol and answers through the
    # NLB shows that the NLB sends it, so the header-less connections are not the NLB's.
    inferred = not f.has("tg.pp_v2")
    if inferred and not (mode == "required" and f.get("via_nlb.result") == "ok"):
        return None
    pod_style = f.get("incluster.plain_result")
    confidence = 0.9 if pod_style in ("reset", "empty-reply") else 0.75
    if inferred:
        confidence -= 0.2
    window = f.get("incluster.window_s")
    return _finding(
        "PPD026", "warning", confidence,
        f"Envoy reset {foreign} connection(s) without a PROXY header"
        + (f" within {window:g} s" if window else "")
        + " that neither the NLB (it sends PROXY v2) nor ppdoctor made: something inside the cluster calls the "
        "gateway's ClusterIP (kube-proxy sends it straight to the pods' target port, no header) — typically "
        "cert-manager's HTTP-01 self-check or a service calling a public hostname that resolves in-cluster. "
        "A pod-style call ppdoctor made the same way got: " + (pod_style or "unknown") + ". Remedies, by hand: "
        "call the backend Service instead of the gateway from inside the cluster; or give internal callers a "
        "separate listener (another Gateway server port and Service port, with an EnvoyFilter putting "
        "allow_requests_without_proxy_protocol on that listener only — never on the NLB's port, where it "
        "would accept forged client addresses); or, on Kubernetes >= 1.30, a LoadBalancer ipMode: Proxy "
        "status (KEP-1860) so in-cluster traffic goes through the NLB.",
        f, ["incluster.foreign_pp_errors", "incluster.window_s", "incluster.pp_errors_total", "incluster.plain_result",
            "tg.pp_v2", "via_nlb.result", *mode_facts],
        confirm=f.missing("incluster.foreign_pp_errors", "tg.pp_v2"))


def _servers_on_target(f: FactView) -> list[dict]:
    ports = set(_target_ports(f))
    return [s for s in f.get("gateway.servers") or [] if ports & set(s.get("container_ports") or [])]


def ppd024(f: FactView) -> Finding | None:
    """A TLS target group: the NLB opens TLS to the target without SNI, so a gateway TLS server whose hosts
    are specific (filter chains with server_names) matches no chain: filter_chain_not_found, the connection
    closes (istio/istio #22795; AWS "Target groups for your Network Load Balancers": no SNI to targets).
    """
    protocol = f.get("tg.protocol")
    # Without the target group (elasticloadbalancing:DescribeTargetGroups refused), the client's own TLS
    # handshake with the NLB's listener says TLS is terminated there; whether it re-encrypts is then inferred.
    inferred = protocol is None and f.get("via_nlb.tls") is True
    if protocol != "TLS" and not inferred:
        return None
    names = f.get("gateway.tls_server_names")
    servers = [s for s in _servers_on_target(f) if (s.get("tls_mode") or "").upper() in ("SIMPLE", "MUTUAL")]
    if names is not None:
        specific = bool(names) and all(n for n in names)  # no chain without server_names
        hosts = sorted({h for n in names for h in n})
    else:
        specific = bool(servers) and all("*" not in s.get("hosts", []) for s in servers)
        hosts = sorted({h for s in servers for h in s.get("hosts", [])})
    if not specific:
        return None
    failed = f.get("via_nlb.result") in ("reset", "empty-reply", "tls-error", "timeout-response")
    confidence = 0.95 if failed or (f.get("gateway.no_filter_chain_match") or 0) > 0 else 0.8
    if inferred:
        if not failed:
            return None
        confidence = 0.65
    return _finding(
        "PPD024", "error", confidence,
        "The target group's protocol is TLS: the NLB re-encrypts to the gateway without SNI. The gateway's TLS "
        f"server only has filter chains for {', '.join(hosts) or 'specific hosts'} (server_names), so a ClientHello "
        "without SNI matches none: Envoy closes the connection (filter_chain_not_found, counted as "
        "no_filter_chain_match) and clients get a reset after their own TLS handshake with the NLB. Give the "
        "server the NLB uses hosts \"*\" (a filter chain without server_names), or make the target group TCP "
        "and let the gateway terminate TLS with the client's SNI.",
        f, ["tg.protocol", "lb.listener_protocols", "gateway.tls_server_names", "gateway.no_filter_chain_match",
            "gateway.servers", "via_nlb.result"],
        fixes=["FIX-GW-HOSTS-WILDCARD"], supersedes=["PPD003", "PPD004"], explains=_NLB_SYMPTOMS,
        confirm=f.missing("tg.protocol", "gateway.tls_server_names", "via_nlb.result"))


def ppd025(f: FactView) -> Finding | None:
    """TLS terminated at the NLB, plaintext to a gateway server with tls.httpsRedirect: Envoy sets
    x-forwarded-proto from the (plaintext) downstream connection, so every request is redirected to https
    again (istio/istio #16778, envoyproxy/envoy #43031).
    """
    protocols = f.get("lb.listener_protocols") or []
    tls_at_nlb = f.get("via_nlb.tls") is True or "TLS" in protocols
    if not tls_at_nlb or f.get("tg.protocol") not in ("TCP", None):
        return None
    loop = f.get("via_nlb.redirect_loop")
    redirecting = [s for s in _servers_on_target(f) if s.get("https_redirect")]
    if loop is not True and not (loop is None and redirecting):
        return None
    confidence = 0.95 if loop else 0.75
    where = ", ".join(f"{s['gateway']} port {s['number']}" for s in redirecting) or "the server on the target port"
    return _finding(
        "PPD025", "error", confidence,
        "The NLB terminates TLS and sends plaintext to the gateway, and the gateway's server there has "
        f"tls.httpsRedirect ({where}): Envoy sets x-forwarded-proto from the plaintext connection (http) and "
        f"answers every request with a redirect to https — which arrives as plaintext again: a redirect loop "
        f"({f.get('via_nlb.location') or 'Location: https://…'}). Drop httpsRedirect on the port the NLB uses "
        "(redirect at the NLB/CDN instead), or keep TLS to the gateway (TCP listener and target group).",
        f, ["lb.listener_protocols", "via_nlb.tls", "tg.protocol", "via_nlb.status", "via_nlb.location",
            "via_nlb.redirect_loop", "gateway.servers"],
        fixes=["FIX-GW-NO-REDIRECT"], confirm=f.missing("via_nlb.redirect_loop", "gateway.servers"))


RULES = [ppd023, ppd024, ppd025, ppd026, ppd028]
