"""Probes that send bytes: tcp, http-via-nlb, xff-forge, and the direct-* family straight to a gateway pod.

The direct probes are the differential evidence the diagnosis relies on: the same GET sent
to the gateway plain, behind a PPv2 PROXY header (TEST-NET source), a PPv1 header and a
PPv2 LOCAL header. Which of them succeed tells whether the gateway expects PROXY protocol
and honours its source address — independent of what the NLB does.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from .clientpath import client_path_headers, client_tls, end_client, hops_in_front
from .context import ProbeContext, run_blocking
from .echo_view import classify_ip, parse_echo
from .model import FailureClass, Observation, Status
from .net import Exchange, http_exchange
from .tcpinfo import METHOD_CLOCK, METHOD_KERNEL, kernel_rtt_ms

TEST_NET_SOURCE = "203.0.113.7"  # TEST-NET-3 (RFC 5737): the source ppdoctor spoofs in its own PROXY headers
FORGED_XFF = "198.51.100.66"  # TEST-NET-2 (RFC 5737): an address no real client has
FORGED_XFF_NET = "198.51.100."
MAX_FORGED = 8  # longer than any trusted-hop count seen in the field (a CDN and a WAF: 2)


def _apply_exchange(obs: Observation, ex: Exchange) -> None:
    obs.failure_class = ex.failure_class
    obs.timings_ms.update(ex.timings_ms)
    obs.evidence.update(ex.evidence())
    if ex.body:
        obs.evidence["response_body_first_bytes"] = ex.body[:4096].decode("utf-8", errors="replace")


def _describe(ex: Exchange) -> str:
    if ex.status is not None:
        return f"HTTP {ex.status} {ex.reason}".strip()
    return f"{ex.failure_class.value}: {ex.detail}" if ex.detail else ex.failure_class.value


async def _aws_network(ctx: ProbeContext) -> dict[str, Any]:
    """NLB ENI addresses and VPC CIDRs, to classify the client IP the backend saw (cached per run)."""

    async def produce() -> dict[str, Any]:
        from .aws import describe_network

        try:
            return await run_blocking(describe_network, ctx)
        except Exception as exc:  # classification degrades to "unknown"; the aws probe reports the error
            return {"error": str(exc), "nlb_ips": [], "vpc_cidrs": []}

    return await ctx.cached("aws-network", produce)


async def _classify(ctx: ProbeContext, obs: Observation, ip: str | None, *, spoofed: str | None, prober: set[str]) -> str:
    aws_configured = bool(ctx.config.aws.region or ctx.config.aws.endpoint_url or ctx.config.nlb.arn or ctx.config.nlb.name)
    net = await _aws_network(ctx) if aws_configured else {}
    cls = classify_ip(ip, nlb_ips=set(net.get("nlb_ips", [])), vpc_cidrs=net.get("vpc_cidrs", []),
                      spoofed=spoofed, prober=prober)
    if net.get("error"):
        obs.evidence["classification_note"] = f"NLB/VPC addresses unknown: {net['error']}"
        if cls == "external":  # without them the NLB's own address cannot be told from a client's
            cls = "unknown"
    return cls


def _echo_facts(obs: Observation, ex: Exchange, prefix: str) -> Any:
    view = parse_echo(ex.body) if ex.status == 200 else None
    if view is None or not view.parsed:
        return None
    obs.fact(f"{prefix}.client_ip", view.client_ip)
    obs.fact(f"{prefix}.xff", view.xff)
    obs.fact(f"{prefix}.external_address", view.external_address)
    obs.fact(f"{prefix}.echo_shows_xff", view.xff is not None)
    return view


# --- via the NLB ---------------------------------------------------------------------

async def probe_tcp(ctx: ProbeContext) -> Observation:
    obs = Observation("tcp")
    host, port = ctx.nlb_address()
    source = ctx.config.nlb.client_source or None
    t0 = time.perf_counter()
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=(source, 0) if source else None), ctx.config.timeouts.connect
        )
    except asyncio.TimeoutError:
        obs.status, obs.failure_class = Status.FAIL, FailureClass.TIMEOUT_CONNECT
        obs.summary = f"no TCP handshake with {host}:{port} within {ctx.config.timeouts.connect:g} s"
    except ConnectionRefusedError:
        obs.status, obs.failure_class = Status.FAIL, FailureClass.REFUSED
        obs.summary = f"{host}:{port} refused the connection"
    except ConnectionResetError:
        obs.status, obs.failure_class = Status.FAIL, FailureClass.RESET
        obs.summary = f"{host}:{port} reset the connection right after the handshake"
    except OSError as exc:
        import socket

        cls = FailureClass.DNS_ERROR if isinstance(exc, socket.gaierror) else FailureClass.TIMEOUT_CONNECT
        obs.status, obs.failure_class = Status.FAIL, cls
        obs.summary = f"cannot connect to {host}:{port}: {exc.strerror or exc}"
    else:
        clock_ms = (time.perf_counter() - t0) * 1000
        kernel_ms = kernel_rtt_ms(writer.get_extra_info("socket"))
        writer.transport.abort()
        # The loop's clock includes time other probes held the loop; the kernel's RTT sample does not.
        method = METHOD_KERNEL if kernel_ms is not None else METHOD_CLOCK
        obs.timings_ms["connect"] = kernel_ms if kernel_ms is not None else clock_ms
        obs.timings_ms["connect_clock"] = clock_ms
        obs.evidence["handshake"] = {"method": method, "kernel_rtt_ms": kernel_ms, "clock_ms": round(clock_ms, 3)}
        obs.failure_class = FailureClass.OK
        obs.summary = f"TCP handshake with {host}:{port} in {obs.timings_ms['connect']:.2f} ms ({method})"
    obs.fact("nlb.reachable", obs.failure_class == FailureClass.OK)
    if "connect" in obs.timings_ms:
        obs.fact("nlb.handshake_ms", round(obs.timings_ms["connect"], 3))
        obs.fact("nlb.handshake_method", obs.evidence["handshake"]["method"])
    obs.evidence["target"] = f"{host}:{port}"
    return obs


async def probe_http_via_nlb(ctx: ProbeContext) -> Observation:
    obs = Observation("http-via-nlb")
    host, port = ctx.nlb_address()
    t = ctx.config.timeouts
    ex = await http_exchange(host, port, path=ctx.config.echo.path, host_header=ctx.config.echo.host or None,
                             headers=client_path_headers(ctx.config),
                             source=ctx.config.nlb.client_source or None,
                             connect_timeout=t.connect, total_timeout=t.response, **client_tls(ctx.config))
    _apply_exchange(obs, ex)
    obs.fact("via_nlb.result", ex.failure_class.value)
    obs.fact("via_nlb.status", ex.status)
    obs.fact("via_nlb.tls", ctx.config.nlb.tls)
    if ex.status in (301, 302, 303, 307, 308) and ex.header("location"):
        await _follow_redirects(ctx, obs, ex.header("location"), host, port)
    obs.fact("via_nlb.hops_in_front", hops_in_front(ctx.config))
    if ex.local:
        obs.fact("via_nlb.prober_ip", ex.local[0])
    view = _echo_facts(obs, ex, "via_nlb")
    if view is not None:
        # The prober's own address; behind a proxy in front of the NLB (nlb.client_headers) the client
        # is whom that proxy names in X-Forwarded-For, and the proxy's address is not the client's.
        prober = {ctx.config.nlb.client_source} if ctx.config.nlb.client_source else set()
        if ex.local:
            prober.add(ex.local[0])
        behind = end_client(ctx.config)
        if behind and view.client_ip in prober:
            cls = "proxy-in-front"
        else:
            cls = await _classify(ctx, obs, view.client_ip, spoofed=None, prober={behind} if behind else prober)
        obs.fact("via_nlb.client_ip_class", cls)
        obs.summary = f"{_describe(ex)}; backend saw client {view.client_ip} ({cls})"
        obs.status = Status.OK if cls in ("prober", "external") else Status.FAIL
    else:
        obs.summary = _describe(ex)
        obs.status = Status.OK if ex.failure_class == FailureClass.OK else Status.FAIL
    return obs


def _forged(count: int) -> list[str]:
    """``count`` distinct TEST-NET-2 (RFC 5737) addresses no real client has, so the one Envoy took names its position."""
    return [f"{FORGED_XFF_NET}{60 + i}" for i in range(count)]


async def _follow_redirects(ctx: ProbeContext, obs: Observation, location: str, host: str, port: int) -> None:
    """Follow the redirect through the NLB (the scheme as the client would: https needs the TLS listener)."""
    from .redirects import follow

    t = ctx.config.timeouts

    async def fetch(scheme: str, path: str) -> tuple[int | None, str | None]:
        if (scheme == "https") != ctx.config.nlb.tls:
            return None, None  # the NLB listener does not speak that scheme: nothing to follow here
        nxt = await http_exchange(host, port, path=path, host_header=ctx.config.echo.host or None,
                                  headers=client_path_headers(ctx.config), source=ctx.config.nlb.client_source or None,
                                  connect_timeout=t.connect, total_timeout=t.response, **client_tls(ctx.config))
        return nxt.status, nxt.header("location")

    result = await follow(location, fetch)
    obs.evidence["redirects"] = result
    obs.fact("via_nlb.location", location)
    obs.fact("via_nlb.redirect_loop", result["loop"])


async def probe_xff_forge(ctx: ProbeContext) -> Observation:
    """Send forged X-Forwarded-For chains of 1 and of MAX_FORGED entries through the NLB; did one become the client?

    Measured with Envoy (tests/gateway/test_gw_xff_and_backends.py): with xff_num_trusted_hops N the
    entry N from the right of what the client sent becomes X-Envoy-External-Address; with fewer than
    N entries Envoy keeps the peer's address. One forged entry is therefore caught only when N = 1;
    a chain of MAX_FORGED entries is at least N + 1 long for any N < MAX_FORGED, and the position of
    the entry Envoy took tells N.
    """
    obs = Observation("xff-forge")
    host, port = ctx.nlb_address()
    t = ctx.config.timeouts
    tries = []
    for count in (1, MAX_FORGED):
        forged = _forged(count)
        ex = await http_exchange(host, port, path=ctx.config.echo.path, host_header=ctx.config.echo.host or None,
                                 headers=client_path_headers(ctx.config, [("X-Forwarded-For", ", ".join(forged))]),
                                 **client_tls(ctx.config),
                                 source=ctx.config.nlb.client_source or None,
                                 connect_timeout=t.connect, total_timeout=t.response)
        view = _echo_facts(obs, ex, "forge")
        if view is None:
            _apply_exchange(obs, ex)
            # Nothing to judge: requests through the NLB fail (another finding explains why).
            obs.status = Status.SKIPPED
            obs.summary = f"cannot test forging: no echo answer through the NLB ({_describe(ex)})"
            return obs
        # Envoy's verdict on the client is X-Envoy-External-Address (set from the trusted hop).
        trusted = (view.external_address or "").strip() or view.client_ip
        won = forged.index(trusted) if trusted in forged else None
        tries.append({"forged_entries": count, "sent": ", ".join(forged), "gateway_took": trusted,
                      "forged_entry_won": won})
        if won is not None:
            _apply_exchange(obs, ex)
            obs.fact("xff.forged_count_won", count)
            # entries right of the one taken: the rest of the forged chain plus what proxies in front appended
            obs.fact("xff.trusted_hops_measured", count - won + hops_in_front(ctx.config))
            break
    else:
        _apply_exchange(obs, ex)
    obs.evidence["forged_xff"] = tries
    spoofable = tries[-1]["forged_entry_won"] is not None
    obs.fact("xff.spoofable", spoofable)
    obs.status = Status.FAIL if spoofable else Status.OK
    last = tries[-1]
    if spoofable:
        obs.summary = (f"with {last['forged_entries']} forged X-Forwarded-For entr{'y' if last['forged_entries'] == 1 else 'ies'} "
                       f"the gateway took {last['gateway_took']} (forged entry {last['forged_entry_won'] + 1}) as the client "
                       f"address: it trusts {last['forged_entries'] - last['forged_entry_won']} hop(s)")
    else:
        obs.summary = f"forged X-Forwarded-For chains of 1 and {MAX_FORGED} entries ignored; gateway took {last['gateway_took']}"
    return obs


# --- straight to a gateway pod -------------------------------------------------------------

async def _direct(ctx: ProbeContext, name: str, kind: str) -> Observation:
    from .. import proxyproto

    obs = Observation(name)
    host, port = await ctx.gateway_endpoint()
    if ctx.config.gateway.direct in ("", "port-forward"):
        obs.evidence["via"] = f"port-forward through the Kubernetes API ({host}:{port})"
    src_port = random.randint(20000, 60000)
    if kind == "ppv2":
        prefix = proxyproto.proxy_v2((TEST_NET_SOURCE, src_port), (host, port))
    elif kind == "ppv1":
        prefix = proxyproto.proxy_v1((TEST_NET_SOURCE, src_port), (host, port))
    elif kind == "local":
        prefix = proxyproto.local_v2()
    else:
        prefix = b""
    if prefix:
        obs.evidence["proxy_header_hex"] = prefix.hex()
    t = ctx.config.timeouts
    if not prefix:
        ctx.plain_sent += 1
        ctx.plain_in_flight += 1
    try:
        ex = await http_exchange(host, port, path=ctx.config.echo.path, host_header=ctx.config.echo.host or None,
                                 prefix=prefix, connect_timeout=t.connect, total_timeout=t.response)
    finally:
        if not prefix:
            ctx.plain_in_flight -= 1
    _apply_exchange(obs, ex)
    key = {"plain": "gateway.plain", "ppv2": "gateway.ppv2", "ppv1": "gateway.ppv1", "local": "gateway.local"}[kind]
    obs.fact(f"{key}_result", ex.failure_class.value)
    obs.fact(f"{key}_status", ex.status)
    view = _echo_facts(obs, ex, key)
    obs.status = Status.OK if ex.failure_class == FailureClass.OK else Status.FAIL
    obs.summary = _describe(ex)
    if kind == "ppv2" and view is not None:
        honoured = TEST_NET_SOURCE in {view.client_ip, (view.external_address or "").strip()}
        obs.fact("gateway.honours_pp_source", honoured)
        obs.summary += f"; backend saw {view.client_ip}" + (" (the PROXY source)" if honoured else "")
    if ex.failure_class == FailureClass.TIMEOUT_CONNECT or ex.failure_class == FailureClass.REFUSED:
        obs.status = Status.ERROR
        obs.summary = f"cannot reach the gateway pod at {host}:{port}: {ex.detail}"
    return obs


async def probe_direct_plain(ctx: ProbeContext) -> Observation:
    return await _direct(ctx, "direct-plain", "plain")


async def probe_direct_ppv2(ctx: ProbeContext) -> Observation:
    return await _direct(ctx, "direct-ppv2", "ppv2")


async def probe_direct_ppv1(ctx: ProbeContext) -> Observation:
    return await _direct(ctx, "direct-ppv1", "ppv1")


async def probe_direct_local(ctx: ProbeContext) -> Observation:
    return await _direct(ctx, "direct-local", "local")
