"""The envoy probe: what the running gateway really has, from its admin API (config_dump and stats).

Configuration in the cluster says what *should* be; this says what *is*: whether the
traffic listeners carry the proxy_protocol listener filter, with which options, and in
which order relative to tls_inspector — plus the proxy_proto counters.
"""

from __future__ import annotations

from typing import Any

from ..constants import PP_FILTER_NAMES, PP_TYPE, STATUS_PORTS, TLS_INSPECTOR_NAMES
from ..errors import ProbeError
from .context import ProbeContext
from .model import Observation, Status

TLS_INSPECTOR = TLS_INSPECTOR_NAMES


def _is_pp(f: dict[str, Any]) -> bool:
    return f.get("name") in PP_FILTER_NAMES or PP_TYPE in str((f.get("typed_config") or {}).get("@type", ""))


def listeners_from_config_dump(dump: dict[str, Any]) -> list[dict[str, Any]]:
    """Active listeners (static and dynamic) as plain dicts with name, address, filters, HCM options."""
    out = []
    for section in dump.get("configs", []):
        if "ListenersConfigDump" not in str(section.get("@type", "")):
            continue
        entries = [s.get("listener") for s in section.get("static_listeners", [])]
        entries += [(d.get("active_state") or {}).get("listener") for d in section.get("dynamic_listeners", [])]
        for listener in entries:
            if not listener:
                continue
            sa = (listener.get("address") or {}).get("socket_address") or {}
            filters = listener.get("listener_filters") or []
            hcm = {}
            for chain in listener.get("filter_chains") or []:
                for nf in chain.get("filters") or []:
                    if "http_connection_manager" in nf.get("name", ""):
                        hcm = nf.get("typed_config") or {}
            tls_names = [list((c.get("filter_chain_match") or {}).get("server_names") or [])
                         for c in listener.get("filter_chains") or [] if c.get("transport_socket")]
            pp = next((f for f in filters if _is_pp(f)), None)
            names = [f.get("name") for f in filters]
            out.append({
                "name": listener.get("name"),
                "address": f"{sa.get('address')}:{sa.get('port_value')}",
                "port": sa.get("port_value"),
                "listener_filters": names,
                "pp_filter": pp is not None,
                "pp_options": {k: v for k, v in ((pp or {}).get("typed_config") or {}).items() if k != "@type"},
                "use_remote_address": bool(hcm.get("use_remote_address")),
                "xff_num_trusted_hops": int(hcm.get("xff_num_trusted_hops", 0) or 0),
                "tls_server_names": tls_names,  # per TLS filter chain; [] matches any SNI (or none)
            })
    return out


# Istio's static listeners (constants.STATUS_PORTS): status (/healthz/ready) and Prometheus merge; never traffic.


def _is_status(listener: dict[str, Any]) -> bool:
    name = listener.get("name") or ""
    return (listener.get("port") in STATUS_PORTS or "status" in name.lower()
            or any(name.endswith(f"_{p}") for p in STATUS_PORTS) or not listener.get("listener_filters") and not name)


def pp_after_tls_inspector(names: list[str]) -> bool:
    pp_idx = [i for i, n in enumerate(names) if n in PP_FILTER_NAMES]
    tls_idx = [i for i, n in enumerate(names) if n in TLS_INSPECTOR]
    return bool(pp_idx and tls_idx and min(pp_idx) > min(tls_idx))


async def probe_envoy(ctx: ProbeContext) -> Observation:
    import httpx

    obs = Observation("envoy")
    host, port = await ctx.gateway_endpoint("admin")
    base = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
    t = ctx.config.timeouts
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(t.api, connect=t.connect)) as client:
            dump = await client.get(f"{base}/config_dump")
            dump.raise_for_status()
            stats = await client.get(f"{base}/stats", params={"filter": "proxy_proto|downstream_cx_proxy_proto|lds|no_filter_chain_match"})
    except httpx.HTTPError as exc:
        raise ProbeError(f"cannot read the Envoy admin API at {base}: {exc}",
                         hint="check gateway.admin in the target config (port 15000 of a gateway pod)") from exc
    try:
        config = dump.json()
    except ValueError as exc:
        raise ProbeError(f"{base}/config_dump did not return JSON") from exc
    listeners = listeners_from_config_dump(config)
    counters = {}
    for line in stats.text.splitlines()[:500]:
        name, sep, value = line.partition(": ")
        if sep and value.strip().isdigit():
            counters[name.strip()] = int(value)
    status_listeners = [l for l in listeners if _is_status(l)]
    traffic = [l for l in listeners if not _is_status(l)]
    obs.evidence["listeners"] = listeners
    obs.evidence["stats"] = counters
    # Which ports the gateway listens on (the target port must be one: istio/istio #48492).
    obs.fact("gateway.listener_ports", sorted({int(l["port"]) for l in traffic if l.get("port") is not None}))
    if not traffic:
        obs.status = Status.FAIL  # an observation about the gateway, not a failure of the probe
        obs.summary = "the gateway has no traffic listeners: no Gateway server lands on any of its ports"
        return obs
    pp_live = all(l["pp_filter"] for l in traffic)
    obs.fact("gateway.pp_live", pp_live)
    obs.fact("gateway.pp_live_partial", any(l["pp_filter"] for l in traffic) and not pp_live)
    obs.fact("gateway.pp_allow_without", any(l["pp_options"].get("allow_requests_without_proxy_protocol") for l in traffic))
    obs.fact("gateway.listener_filters", {l["name"]: l["listener_filters"] for l in traffic})
    obs.fact("gateway.pp_after_tls_inspector", any(pp_after_tls_inspector(l["listener_filters"]) for l in traffic))
    obs.fact("gateway.xff_num_trusted_hops", max(l["xff_num_trusted_hops"] for l in traffic))
    obs.fact("gateway.use_remote_address", all(l["use_remote_address"] for l in traffic))
    obs.fact("gateway.status_pp", any(l["pp_filter"] for l in status_listeners))
    obs.fact("gateway.lds_rejected", counters.get("listener_manager.lds.update_rejected", 0))
    obs.fact("gateway.tls_server_names", [names for l in traffic for names in l["tls_server_names"]])
    obs.fact("gateway.no_filter_chain_match", sum(v for k, v in counters.items() if k.endswith(".no_filter_chain_match")))
    names = ", ".join(f"{l['name']} [{' → '.join(l['listener_filters']) or 'no listener filters'}]" for l in traffic)
    obs.summary = f"PROXY filter {'on' if pp_live else 'off'} in the running listeners: {names}"
    return obs
