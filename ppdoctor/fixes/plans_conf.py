"""Fix plans for the configuration traps of issue 14 (rules in diagnosis/rules_conf.py)."""

from __future__ import annotations

from .model import Change, deployment_patch
from .planner import LiveState, PlanError, set_trusted_hops



def trusted_hops_cdn(st: LiveState) -> list[Change]:
    if st.hops_in_front <= 0:
        raise PlanError(
            "ppdoctor does not know how many proxies sit in front of the NLB",
            hint="set nlb.client_headers in the target config to what your CDN adds (e.g. \"X-Forwarded-For: "
                 "203.0.113.7\"), then plan again; or set numTrustedProxies by hand",
        )
    # Verified end to end: the backend sees the client behind the proxy, not the proxy.
    return set_trusted_hops(st, st.hops_in_front, verify="client-ip")


BUILDERS = {
    "FIX-TRUSTED-HOPS-CDN": trusted_hops_cdn,
}
WINDOWS: dict[str, str] = {
    "FIX-TRUSTED-HOPS-CDN": "the gateway pods roll; until then the backend keeps seeing the proxy's address.",
}


def status_pp_env(st: LiveState) -> list[Change]:
    """ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL=true on the gateway container (Istio ≥ 1.27, PR #55986).

    A strategic merge patch on the pod template's container env (merged by name): the pods roll,
    and pilot-agent reads the env at their start. Rollback deletes the entry (or restores its value).
    """
    from ..istioversion import STATUS_PORT_PP_ENV, env_true, image_version, supports_status_port_pp
    from ..probes.proxyversion import PROXY_CONTAINER, _env, _proxy_container

    spec = ((st.deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    container = _proxy_container(spec)
    if container is None:
        raise PlanError("the gateway Deployment has no containers", hint="check kubernetes.gateway_deployment in the config")
    version = image_version(container.get("image"))
    if supports_status_port_pp(version) is False:
        raise PlanError(
            f"the gateway runs Istio {'.'.join(map(str, version))}: ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL exists "
            "from Istio 1.27 on", hint="use FIX-HC-TCP, or upgrade the gateway first")
    before = _env(container, STATUS_PORT_PP_ENV)
    if env_true(before):
        return []
    name = container.get("name") or PROXY_CONTAINER
    ns = (st.deployment.get("metadata") or {}).get("namespace", "")
    dep = (st.deployment.get("metadata") or {}).get("name", "")

    def body(entry: dict) -> dict:
        return {"spec": {"template": {"spec": {"containers": [{"name": name, "env": [entry]}]}}}}

    rollback = {"name": STATUS_PORT_PP_ENV, "$patch": "delete"} if before is None else {"name": STATUS_PORT_PP_ENV, "value": before}
    return [deployment_patch(
        ns, dep, field=f'spec.template.spec.containers["{name}"].env["{STATUS_PORT_PP_ENV}"]', before=before,
        after="true", body_after=body({"name": STATUS_PORT_PP_ENV, "value": "true"}), body_before=body(rollback),
        verify="hc-pass",
        note="pilot-agent reads the env at start: changing the pod template rolls the gateway pods",
    )]


BUILDERS["FIX-STATUS-PP-ENV"] = status_pp_env
WINDOWS["FIX-STATUS-PP-ENV"] = "the gateway pods roll; targets stay unhealthy until the new pods pass the checks."


def gw_server_port(st: LiveState) -> list[Change]:
    """Add a Gateway server whose port is the Service port of the target port (so istiod opens that listener).

    The server goes on the first Gateway that already selects the gateway pods (HTTP, hosts ``*``, the
    same VirtualServices then bind); a merge patch replaces ``spec.servers`` with the old list plus it,
    and the rollback writes the old list back.
    """
    from ..probes.gatewayservers import _container_port, selects, server_ports

    if st.gateways is None:
        raise PlanError("the Istio Gateways could not be listed", hint="grant list on gateways.networking.istio.io")
    target_ports = {int(st.tg.get("Port") or 0)}
    labels = (((st.deployment.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
    landed = {p for s in server_ports(st.gateways, st.service, st.deployment) for p in s["container_ports"]}
    missing = target_ports - landed
    if not missing:
        return []
    svc_ports = [p for p in (st.service.get("spec") or {}).get("ports") or []
                 if _container_port(st.deployment, p.get("targetPort", p.get("port"))) in missing]
    if not svc_ports:
        raise PlanError(f"no port of the gateway Service leads to container port {sorted(missing)}",
                        hint="add a Service port for it (or point the target group at a port the gateway serves)")
    owner = next((g for g in st.gateways if selects(g, labels)), None)
    if owner is None:
        raise PlanError("no Istio Gateway selects the gateway pods",
                        hint="create a Gateway with selector " + ", ".join(f"{k}={v}" for k, v in labels.items()))
    meta = owner.get("metadata") or {}
    ns, name = meta.get("namespace", ""), meta.get("name", "")
    before = list((owner.get("spec") or {}).get("servers") or [])
    added = [{"port": {"number": p["port"], "name": f"http-{p['port']}-ppdoctor", "protocol": "HTTP"}, "hosts": ["*"]}
             for p in svc_ports[:1]]
    after = before + added
    group, version = "networking.istio.io", "v1beta1"
    kwargs = {"group": group, "version": version, "namespace": ns, "plural": "gateways", "name": name}
    return [Change(
        kind="k8s-merge-patch", object=f"Gateway {ns}/{name}", field="spec.servers", before=before, after=after,
        api_call=f"PATCH /apis/{group}/{version}/namespaces/{ns}/gateways/{name} (merge patch)",
        payload={"api": "CustomObjectsApi", "method": "patch_namespaced_custom_object", "verb": "patch",
                 "resource": "gateways.networking.istio.io", "kwargs": {**kwargs, "body": {"spec": {"servers": after}}}},
        rollback_payload={"api": "CustomObjectsApi", "method": "patch_namespaced_custom_object", "verb": "patch",
                          "resource": "gateways.networking.istio.io",
                          "kwargs": {**kwargs, "body": {"spec": {"servers": before}}}},
        verify="client-ip",
        note=f"HTTP server on Service port {added[0]['port']['number']} (hosts *): istiod pushes the listener, no restart",
    )]


BUILDERS["FIX-GW-SERVER-PORT"] = gw_server_port
WINDOWS["FIX-GW-SERVER-PORT"] = "none: the port is refused until the listener exists."


def _patch_gateway_servers(st: LiveState, wanted, change, *, verify: str, note: str, nothing: str) -> list[Change]:
    """Rewrite the servers (``wanted(server)``) of the Gateways that land on the target group's port.

    One merge patch per Gateway replaces ``spec.servers`` (old list → new list); rollback writes the old list.
    """
    import copy

    from ..probes.gatewayservers import landing_ports, selects

    if st.gateways is None:
        raise PlanError("the Istio Gateways could not be listed", hint="grant list on gateways.networking.istio.io")
    target_port = int(st.tg.get("Port") or 0)
    labels = (((st.deployment.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
    changes: list[Change] = []
    for gw in st.gateways:
        if not selects(gw, labels):
            continue
        before = list((gw.get("spec") or {}).get("servers") or [])
        after = []
        for server in before:
            number = (server.get("port") or {}).get("number")
            on_target = isinstance(number, int) and target_port in landing_ports(number, st.service, st.deployment)
            after.append(change(copy.deepcopy(server)) if on_target and wanted(server) else server)
        if after == before:
            continue
        meta = gw.get("metadata") or {}
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        group, version = "networking.istio.io", "v1beta1"
        kwargs = {"group": group, "version": version, "namespace": ns, "plural": "gateways", "name": name}
        changes.append(Change(
            kind="k8s-merge-patch", object=f"Gateway {ns}/{name}", field="spec.servers", before=before, after=after,
            api_call=f"PATCH /apis/{group}/{version}/namespaces/{ns}/gateways/{name} (merge patch)",
            payload={"api": "CustomObjectsApi", "method": "patch_namespaced_custom_object", "verb": "patch",
                     "resource": "gateways.networking.istio.io", "kwargs": {**kwargs, "body": {"spec": {"servers": after}}}},
            rollback_payload={"api": "CustomObjectsApi", "method": "patch_namespaced_custom_object", "verb": "patch",
                              "resource": "gateways.networking.istio.io",
                              "kwargs": {**kwargs, "body": {"spec": {"servers": before}}}},
            verify=verify, note=note))
    if not changes and nothing:
        return []
    return changes


def gw_hosts_wildcard(st: LiveState) -> list[Change]:
    """hosts: ["*"] on the TLS servers the NLB's TLS target group reaches: a filter chain without server_names."""
    return _patch_gateway_servers(
        st, lambda s: (s.get("tls") or {}).get("mode", "SIMPLE") in ("SIMPLE", "MUTUAL") and "*" not in (s.get("hosts") or []),
        lambda s: {**s, "hosts": ["*"]}, verify="client-ip",
        note="the NLB sends no SNI; routing by host still works on the HTTP layer (VirtualService hosts)",
        nothing="no TLS server with specific hosts on the target port")


def gw_no_redirect(st: LiveState) -> list[Change]:
    """Drop tls.httpsRedirect on the servers the NLB's plaintext reaches (the NLB already did TLS)."""
    def drop(server: dict) -> dict:
        tls = {k: v for k, v in (server.get("tls") or {}).items() if k != "httpsRedirect"}
        out = {k: v for k, v in server.items() if k != "tls"}
        if tls:
            out["tls"] = tls
        return out

    return _patch_gateway_servers(
        st, lambda s: bool((s.get("tls") or {}).get("httpsRedirect")), drop, verify="client-ip",
        note="redirect plaintext clients at the NLB/CDN instead (an NLB TLS listener only)",
        nothing="no server with httpsRedirect on the target port")


BUILDERS["FIX-GW-HOSTS-WILDCARD"] = gw_hosts_wildcard
WINDOWS["FIX-GW-HOSTS-WILDCARD"] = "none: istiod pushes the listener, no restart."
BUILDERS["FIX-GW-NO-REDIRECT"] = gw_no_redirect
WINDOWS["FIX-GW-NO-REDIRECT"] = "none: istiod pushes the route, no restart."
