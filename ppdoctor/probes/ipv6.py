"""The ipv6 probe: is the probed client IPv6, can the NLB take it (dualstack), and can preservation carry it?

"Target groups for your Network Load Balancers" (client IP preservation): an IPv6 client of a
dualstack NLB reaching an IPv4 target group is translated — the target sees the NLB; only
PROXY protocol v2 (family INET6) carries the client. The connect through the NLB itself is
the http-via-nlb probe's (it sends from ``nlb.client_source``); this probe classifies the
addresses and reads the address types from the aws probe's cached read (no extra call).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from .context import ProbeContext, run_blocking
from .model import Observation


def v6_scope(ip: str | None) -> str | None:
    """What kind of IPv6 address a client has: loopback, link-local, unique-local, ipv4-mapped,
    documentation, global; None for IPv4 or not an address."""
    try:
        addr = ipaddress.ip_address((ip or "").strip("[]"))
    except ValueError:
        return None
    if addr.version != 6:
        return None
    if addr.ipv4_mapped is not None:
        return "ipv4-mapped"
    if addr.is_loopback:
        return "loopback"
    if addr.is_link_local:
        return "link-local"
    if addr in ipaddress.ip_network("2001:db8::/32"):
        return "documentation"
    if addr in ipaddress.ip_network("fc00::/7"):
        return "unique-local"
    return "global"


def _client_ip(ctx: ProbeContext) -> str | None:
    if ctx.config.nlb.client_source:
        return ctx.config.nlb.client_source
    address = ctx.config.nlb.address or ""
    return address[1:address.index("]")] if address.startswith("[") else None


async def probe_ipv6(ctx: ProbeContext) -> Observation:
    from .aws import collect as aws_collect

    obs = Observation("ipv6")
    client = _client_ip(ctx)
    scope = v6_scope(client)
    obs.fact("ipv6.client", scope is not None, client or "no client source configured: IPv4 assumed")
    obs.fact("ipv6.client_scope", scope)
    data: dict[str, Any] = await ctx.cached("aws", lambda: run_blocking(aws_collect, ctx))
    lb_type = data["load_balancer"].get("IpAddressType", "ipv4")
    tg_type = data["target_groups"][0]["tg"].get("IpAddressType", "ipv4")
    obs.fact("lb.ip_address_type", lb_type)
    obs.fact("tg.ip_address_type", tg_type)
    obs.summary = (f"client {client or '(IPv4)'} ({scope or 'IPv4'}); load balancer {lb_type}, target group {tg_type}"
                   + ("; preservation cannot carry IPv6 clients to these targets"
                      if scope and lb_type == "dualstack" and tg_type != "ipv6" else ""))
    return obs
