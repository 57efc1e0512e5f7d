"""The fact-name registry: every fact a probe may establish, declared once with its type, meaning and probe.

Probes set facts with ``Observation.fact(name, value)``; rules read them with
``FactView.get/has``. Both go through :func:`check`, so a name that is not declared here
(a typo, a rename on one side only) fails a test instead of silently reading ``None``:
strict checking is on when ``PPDOCTOR_STRICT_FACTS=1`` (``tests/conftest.py`` sets it) or
after :func:`set_strict`. In production an unknown name is tolerated (a probe must not
crash on it), but it still fails the registry test.

To add a fact: one ``_d(name, type, probe, meaning)`` line in the block of the probe that
establishes it (or ``declare`` from your own module, imported before use). A fact a probe
sets per target group beyond the first is written ``tg[1].pp_v2`` and checked as
``tg.pp_v2``. ``probe_for(name)`` answers "which probe would establish this?" for the
"run `probe` to confirm" lines of findings.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any


class UnknownFact(KeyError):
    """A fact name that is not declared in the registry (strict mode only)."""


@dataclass(frozen=True)
class FactSpec:
    name: str
    type: type | tuple[type, ...]  # of the value; None is always allowed (unknown)
    probe: str  # the probe that establishes it
    meaning: str


REGISTRY: dict[str, FactSpec] = {}
_strict = os.environ.get("PPDOCTOR_STRICT_FACTS") == "1"
_INDEX = re.compile(r"^([a-z_]+)\[\d+\]\.")


def set_strict(on: bool = True) -> None:
    global _strict
    _strict = on


def strict() -> bool:
    return _strict


def declare(name: str, type_: type | tuple[type, ...], probe: str, meaning: str) -> FactSpec:
    existing = REGISTRY.get(name)
    if existing is not None and (existing.probe, existing.type) != (probe, type_):
        raise ValueError(f"fact {name!r} is already declared by probe {existing.probe}")
    spec = REGISTRY[name] = FactSpec(name, type_, probe, meaning)
    return spec


def canonical(name: str) -> str:
    """``tg[1].pp_v2`` → ``tg.pp_v2`` (facts of further target groups share the first one's declaration)."""
    return _INDEX.sub(r"\1.", name)


def spec(name: str) -> FactSpec | None:
    return REGISTRY.get(canonical(name))


def check(name: str, value: Any = None, *, with_value: bool = False) -> None:
    """In strict mode: raise UnknownFact for an undeclared name, TypeError for a value of the wrong type."""
    if not _strict:
        return
    s = spec(name)
    if s is None:
        raise UnknownFact(f"fact {name!r} is not declared in ppdoctor/facts.py")
    if with_value and value is not None and not isinstance(value, s.type):
        raise TypeError(f"fact {name!r} = {value!r}: declared type {s.type}, got {type(value).__name__}")


def probe_for(name: str) -> str:
    s = spec(name)
    return s.probe if s else "all probes"


# The permission that lets a probe establish a fact (IAM action / RBAC verb on a resource), named in
# the "confirm" lines of findings reached without it. IAM action names as in probes/context.py
# AWS_ACTIONS (Service Authorization Reference, "Elastic Load Balancing V2"); RBAC verbs as
# kube-apiserver derives them. Longest matching prefix wins.
PERMISSIONS: dict[str, str] = {
    "tg.pp_v2": "IAM elasticloadbalancing:DescribeTargetGroupAttributes",
    "tg.preserve_ip": "IAM elasticloadbalancing:DescribeTargetGroupAttributes",
    "tg.health": "IAM elasticloadbalancing:DescribeTargetHealth",
    "tg.healthy_count": "IAM elasticloadbalancing:DescribeTargetHealth",
    "tg.lbc_managed": "IAM elasticloadbalancing:DescribeTags",
    "tg.": "IAM elasticloadbalancing:DescribeTargetGroups",
    "hc.would_pass": "IAM elasticloadbalancing:DescribeTargetGroups (the health probe reads the check from it)",
    "hc.": "IAM elasticloadbalancing:DescribeTargetGroups",
    "routes.": "IAM ec2:DescribeRouteTables",
    "vpc.": "IAM ec2:DescribeVpcs",
    "nlb.private_ips": "IAM ec2:DescribeNetworkInterfaces",
    "lb.": "IAM elasticloadbalancing:DescribeLoadBalancers",
    "svc.": "RBAC get services (gateway namespace)",
    "gateway.pp_pod_template": "RBAC get deployments.apps (gateway namespace)",
    "gateway.proxy_config": "RBAC get deployments.apps and services (gateway namespace)",
    "gateway.num_trusted_proxies": "RBAC get deployments.apps and configmaps (gateway namespace)",
    "gateway.pods": "RBAC list pods (gateway namespace)",
    "gateway.replaced_routed_s": "RBAC list pods (gateway namespace)",
    "gateway.pre_stop_sleep_s": "RBAC get deployments.apps (gateway namespace)",
    "gateway.termination_": "RBAC get deployments.apps (gateway namespace)",
    "gateway.serves_after_delete_s": "RBAC get deployments.apps and configmaps (gateway namespace)",
    "rollout.": "RBAC patch deployments.apps (gateway namespace): the rollout probe restarts the gateway",
    "gateway.pp_configured": "RBAC get deployments.apps, configmaps; list envoyfilters.networking.istio.io",
    "mesh.": "RBAC get configmaps (istio)",
    "envoyfilter.": "RBAC list envoyfilters.networking.istio.io",
    "lbc.": "RBAC list deployments.apps (kube-system), targetgroupbindings.elbv2.k8s.aws",
    "gateway.": "access to the gateway pod (gateway.direct / gateway.admin, or RBAC get pods/portforward)",
}


def permission_for(name: str) -> str | None:
    base = canonical(name)
    best = max((p for p in PERMISSIONS if base.startswith(p)), key=len, default=None)
    if best is None:
        return None
    s = spec(name)
    if best == "gateway." and s is not None and s.probe == "kube":
        return "RBAC get deployments.apps (gateway namespace)"
    return PERMISSIONS[best]


def _d(name: str, type_: type | tuple[type, ...], probe: str, meaning: str) -> None:
    declare(name, type_, probe, meaning)


_num = (int, float)

# --- aws (ELBv2/EC2 describe calls) ---------------------------------------------------------
_d("lb.arn", str, "aws", "the load balancer's ARN")
_d("lb.type", str, "aws", "load balancer type (network / application)")
_d("nlb.private_ips", list, "aws", "the NLB's private ENI addresses (what targets see without PROXY/preservation)")
_d("vpc.cidrs", list, "aws", "the NLB's VPC CIDR blocks")
_d("tg.arn", str, "aws", "the target group behind the probed listener")
_d("tg.target_type", str, "aws", "ip / instance / alb")
_d("tg.protocol", str, "aws", "TCP / TLS / UDP / TCP_UDP")
_d("tg.pp_v2", bool, "aws", "proxy_protocol_v2.enabled (AWS default false when absent)")
_d("tg.preserve_ip", bool, "aws", "preserve_client_ip.enabled (AWS default by target type/protocol when absent)")
_d("tg.health", list, "aws", "DescribeTargetHealth: [{id, port, state, reason, description}]")
_d("tg.healthy_count", int, "aws", "number of targets in state healthy")
_d("tg.lbc_managed", bool, "aws", "the target group carries the AWS Load Balancer Controller's tags")
_d("hc.protocol", str, "aws", "health check protocol (TCP / HTTP / HTTPS)")
_d("hc.port", str, "aws", "health check port, or 'traffic-port'")
_d("hc.path", str, "aws", "health check path (HTTP/HTTPS checks only)")
_d("hc.interval_s", int, "aws", "HealthCheckIntervalSeconds")
_d("hc.healthy_threshold", int, "aws", "HealthyThresholdCount: consecutive passes before a target is healthy")
_d("routes.private_default", str, "aws", "where the targets' subnet sends 0.0.0.0/0: igw / nat / tgw / other / none")

# --- health (an NLB-style health check done by ppdoctor) ------------------------------------
_d("hc.would_pass", bool, "health", "the NLB's health check, done the NLB's way, passes on every target")
_d("hc.check_status", int, "health", "HTTP status the health check got from the first target (HTTP/HTTPS checks)")
_d("hc.check_port", int, "health", "the port the health check connected to on the first target")
_d("hc.sends_local_header", bool, "health", "health checks carry a PPv2 LOCAL header (PROXY protocol on)")

# --- gatewayapi (Gateway API Gateways and what istiod drops from them) -----------------------
_d("gwapi.gateway", str, "gatewayapi", "NS/NAME of the Gateway the gateway Deployment was generated from ('' if none)")
_d("gwapi.infrastructure_annotations", bool, "gatewayapi", "that Gateway sets spec.infrastructure.annotations")
_d("gwapi.dropped_annotations", list, "gatewayapi", "its metadata.annotations istiod ignores (infrastructure set)")
_d("gwapi.proxy_config_dropped", bool, "gatewayapi", "proxy.istio.io/config is among the dropped annotations")
_d("gwapi.proxy_protocol_dropped", bool, "gatewayapi", "the dropped proxy config asks for PROXY protocol")
_d("gwapi.trapped_gateways", list, "gatewayapi", "every Istio Gateway in the cluster whose proxy config is dropped")

# --- kube (Service, Deployment, mesh config, EnvoyFilters, pods, LBC) -----------------------
_d("svc.lb_type", str, "kube", "aws-load-balancer-type annotation (nlb / external / nlb-ip)")
_d("svc.pp_annotation", bool, "kube", "aws-load-balancer-proxy-protocol: \"*\" on the gateway Service")
_d("svc.tg_attributes_annotation", str, "kube", "aws-load-balancer-target-group-attributes annotation text")
_d("svc.hc_annotations", dict, "kube", "aws-load-balancer-healthcheck-* annotations (prefix removed)")
_d("svc.external_traffic_policy", str, "kube", "the gateway Service's externalTrafficPolicy")
_d("svc.target_type_annotation", str, "kube", "aws-load-balancer-nlb-target-type annotation")
_d("gateway.pp_pod_template", bool, "kube", "proxy.istio.io/config on the pod template asks for PROXY protocol")
_d("gateway.proxy_config_error", str, "kube", "the pod template's proxy.istio.io/config cannot be parsed")
_d("gateway.proxy_config_misplaced", list, "kube", "objects whose own metadata carries proxy.istio.io/config")
_d("gateway.num_trusted_proxies", int, "kube", "numTrustedProxies in effect (pod template over mesh config)")
_d("gateway.pods", list, "kube", "gateway pods: [{name, ready, ip, started, deleted?}] (deleted: Terminating since)")
_d("gateway.replaced_routed_s", float, "kube",
   "seconds the NLB may still send new flows to Terminating gateway pods (deletion + lag + propagation window)")
_d("gateway.pods_predate_mesh", bool, "kube", "every gateway pod started before the mesh config's last change")
_d("gateway.pp_configured", list, "kube", "where the cluster asks for PROXY protocol (template / mesh / EnvoyFilter)")
_d("mesh.pp", bool, "kube", "the mesh config's defaultConfig.gatewayTopology asks for PROXY protocol")
_d("mesh.changed_at", str, "kube", "when the istio ConfigMap last changed (ISO 8601)")
_d("mesh.error", str, "kube", "the mesh config cannot be parsed")
_d("envoyfilter.pp", list, "kube", "EnvoyFilter patches that add the proxy_protocol listener filter")
_d("envoyfilter.error", str, "kube", "EnvoyFilters could not be listed (e.g. RBAC): unknown, not none")
_d("lbc.tgbs", list, "kube", "TargetGroupBinding target group ARNs")
_d("lbc.installed", bool, "kube", "an AWS Load Balancer Controller Deployment runs in kube-system")

# --- envoy (the running gateway's admin API) ------------------------------------------------
_d("gateway.pp_live", bool, "envoy", "every traffic listener has the proxy_protocol listener filter")
_d("gateway.pp_live_partial", bool, "envoy", "some traffic listeners have it, others not")
_d("gateway.pp_allow_without", bool, "envoy", "allow_requests_without_proxy_protocol on a traffic listener")
_d("gateway.listener_filters", dict, "envoy", "listener filter names per traffic listener, in order")
_d("gateway.pp_after_tls_inspector", bool, "envoy", "the proxy_protocol filter runs after tls_inspector")
_d("gateway.xff_num_trusted_hops", int, "envoy", "the HTTP connection manager's xff_num_trusted_hops (max)")
_d("gateway.use_remote_address", bool, "envoy", "use_remote_address on every traffic listener")
_d("gateway.status_pp", bool, "envoy", "a status listener (15021 …) has the proxy_protocol filter")
_d("gateway.lds_rejected", int, "envoy", "listener_manager.lds.update_rejected counter")

# --- tcp / http-via-nlb / xff-forge (through the NLB) ---------------------------------------
_d("nlb.reachable", bool, "tcp", "a TCP handshake with the NLB listener completes")
_d("nlb.handshake_ms", _num, "tcp", "TCP handshake time with the NLB listener (ms), by nlb.handshake_method")
_d("nlb.handshake_method", str, "tcp", "how the handshake was measured: tcp_info-rtt (kernel) or connect-clock")
_d("via_nlb.result", str, "http-via-nlb", "failure class of a GET through the NLB (ok, http-4xx, reset, …)")
_d("via_nlb.status", int, "http-via-nlb", "HTTP status of that GET")
_d("via_nlb.prober_ip", str, "http-via-nlb", "the local address ppdoctor sent from")
_d("via_nlb.client_ip_class", str, "http-via-nlb", "who the backend thinks the client is: prober / external / nlb / vpc-internal / proxy-in-front / unknown")
_d("xff.spoofable", bool, "xff-forge", "a forged X-Forwarded-For entry became the client address")
_d("xff.forged_count_won", int, "xff-forge", "how many forged entries the request that won carried (1 or MAX_FORGED)")
_d("xff.trusted_hops_measured", int, "xff-forge", "trusted hops the gateway applied, from the position of the entry it took")

# --- direct-* (straight to a gateway pod) ---------------------------------------------------
_d("gateway.honours_pp_source", bool, "direct-ppv2", "the backend saw the PROXY header's source address")
for _kind in ("plain", "ppv2", "ppv1", "local"):
    _d(f"gateway.{_kind}_result", str, f"direct-{_kind}", f"failure class of a GET straight to the gateway ({_kind})")
    _d(f"gateway.{_kind}_status", int, f"direct-{_kind}", f"HTTP status of that GET ({_kind})")

# --- what an echo backend reported (http-via-nlb, xff-forge, direct-*) ----------------------
for _prefix, _probe in (("via_nlb", "http-via-nlb"), ("forge", "xff-forge"), ("gateway.plain", "direct-plain"),
                        ("gateway.ppv2", "direct-ppv2"), ("gateway.ppv1", "direct-ppv1"), ("gateway.local", "direct-local")):
    _d(f"{_prefix}.client_ip", str, _probe, "the client address the echo backend reported")
    _d(f"{_prefix}.xff", str, _probe, "X-Forwarded-For as the echo backend saw it")
    _d(f"{_prefix}.external_address", str, _probe, "X-Envoy-External-Address as the echo backend saw it")
    _d(f"{_prefix}.echo_shows_xff", bool, _probe, "the echo's answer shows an X-Forwarded-For header")

# --- syn (raw SYN with scapy) ---------------------------------------------------------------
_d("syn.answer", str, "syn", "who answered a raw SYN to the NLB: nlb / foreign / none")
_d("syn.answer_from", str, "syn", "the address a foreign SYN-ACK came from")

# --- sg / privatelink (network-level field catalogue, rules_net.py) ------------------------
_d("sg.target_groups", list, "sg", "security groups on the ENIs that hold the targets' addresses")
_d("sg.nlb_groups", list, "sg", "the NLB's own security groups (none: an NLB created without them)")
_d("sg.target_ingress_cidrs", list, "sg", "every source CIDR the targets' groups admit")
_d("sg.prober_allowed", bool, "sg", "the groups admit the prober's address as the target would see it")
_d("sg.public_allowed", bool, "sg", "the groups admit a sample public address (TEST-NET-3) as the target would see it")
_d("privatelink.services", list, "privatelink", "VPC endpoint services whose NLB is this one")
_d("ipv6.client", bool, "ipv6", "the probed client (nlb.client_source) is an IPv6 address")
_d("ipv6.client_scope", str, "ipv6", "kind of IPv6 client address: loopback / link-local / unique-local / ipv4-mapped / documentation / global")
_d("lb.ip_address_type", str, "ipv6", "the load balancer's IpAddressType: ipv4 / dualstack / dualstack-without-public-ipv4")
_d("tg.ip_address_type", str, "ipv6", "the target group's IpAddressType: ipv4 / ipv6")
_d("idle.tested_timeout_s", int, "idle", "the idle timeout the probe waited past when the listener's own was not readable (AWS default or minimum)")
_d("idle.timeout_s", int, "idle", "the NLB listener's tcp.idle_timeout.seconds (AWS default 350)")
_d("idle.waited_s", _num, "idle", "seconds of silence the idle probe kept on its connection")
_d("idle.result", str, "idle", "failure class of the request sent after the silence (ok / reset / …)")
_d("server_first.header_placement", str, "server-first", "proxy_protocol_v2.client_to_server.header_placement (default on_first_ack_with_payload)")
_d("server_first.via_nlb_greeting", bool, "server-first", "a silent client got the service's greeting through the NLB")
_d("server_first.direct_pp_greeting", bool, "server-first", "a silent client behind a PPv2 header got the greeting straight from a target")
_d("server_first.direct_plain_greeting", bool, "server-first", "a silent client without a header got the greeting straight from a target")
_d("server_first.via_nlb_nudge_greeting", bool, "server-first", "a client that sent only a line end got the greeting through the NLB")
_d("server_first.pp_v2", bool, "server-first", "proxy_protocol_v2.enabled of that listener's target group")
_d("server_first.listener_port", int, "server-first", "the NLB listener whose service the facts describe (the one that greets, if any)")

# --- configuration traps (rules_conf.py, issue 14) -----------------------------------------
_d("via_nlb.hops_in_front", int, "http-via-nlb", "X-Forwarded-For entries the client path adds before the NLB (nlb.client_headers)")
_d("gateway.istio_version", str, "kube", "the gateway proxy's Istio release, from the istio-proxy image tag (oldest pod)")
_d("gateway.status_pp_env_supported", bool, "kube", "that release honours ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL (>= 1.27)")
_d("gateway.status_pp_env", bool, "kube", "the pod template sets ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL=true")
_d("gateway.status_pp_env_running", bool, "kube", "every running gateway pod started with that env")
_d("gateway.servers", list, "kube", "Istio Gateway servers selecting the pods: [{gateway, number, protocol, hosts, tls_mode, https_redirect, container_ports}]")
_d("gateway.server_container_ports", list, "kube", "container ports the Gateway servers land on (through the Service's ports)")
_d("svc.port_map", list, "kube", "the gateway Service's ports: [{port, name, container_port}]")
_d("gateway.listener_ports", list, "envoy", "ports of the running gateway's traffic listeners")
_d("incluster.plain_result", str, "incluster", "failure class of a header-less GET to the target port through the API's port-forward")
_d("incluster.pp_errors_total", int, "incluster", "Envoy's downstream_cx_proxy_proto_error counter")
_d("incluster.foreign_pp_errors", int, "incluster", "header-less connections from others than ppdoctor within the window")
_d("incluster.window_s", _num, "incluster", "length of that window (s)")
_d("via_nlb.tls", bool, "http-via-nlb", "the request went through a TLS listener (nlb.tls)")
_d("via_nlb.location", str, "http-via-nlb", "the Location of a redirect the GET through the NLB got")
_d("via_nlb.redirect_loop", bool, "http-via-nlb", "following that redirect through the NLB comes back to it (bounded)")
_d("lb.listener_protocols", list, "aws", "protocols of the NLB's listeners (TCP / TLS / UDP / TCP_UDP)")
_d("gateway.tls_server_names", list, "envoy", "server_names of each TLS filter chain of the gateway's listeners ([] = any SNI)")
_d("gateway.no_filter_chain_match", int, "envoy", "connections no filter chain matched (Envoy's no_filter_chain_match)")

# --- rollout drain (PPD021: rules_drain.py) --------------------------------------------------
_d("tg.deregistration_delay_s", int, "aws", "deregistration_delay.timeout_seconds of the target group (AWS default 300)")
_d("gateway.pre_stop_sleep_s", _num, "kube", "seconds the gateway container's preStop hook sleeps (0: none)")
_d("gateway.termination_drain_s", _num, "kube", "Istio terminationDrainDuration in effect (pod template over mesh; default 5 s)")
_d("gateway.termination_grace_s", _num, "kube", "the pod template's terminationGracePeriodSeconds (default 30)")
_d("gateway.serves_after_delete_s", _num, "kube", "how long a deleted gateway pod still accepts: preStop + drain, capped by the grace period")
_d("rollout.restarted_at", str, "rollout", "when the probe restarted the gateway Deployment (kubectl rollout restart)")
_d("rollout.requests", int, "rollout", "requests sent through the NLB while the gateway rolled")
_d("rollout.failures", int, "rollout", "of those, how many failed")
_d("rollout.failure_classes", list, "rollout", "the failure classes seen during the rollout")
_d("rollout.watched_s", _num, "rollout", "seconds the stream ran after the restart")
_d("rollout.baseline_failures", int, "rollout", "requests that failed before the restart (the probe then skips)")
