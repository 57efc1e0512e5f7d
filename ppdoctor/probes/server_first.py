"""The server-first probe (on demand): does a service that speaks first (SMTP, MySQL, SSH) greet the client?

Per listener of the NLB, connections each waiting ``GREETING_WAIT_S`` for the first bytes: a silent
one through the NLB, one through the NLB that sends a bare CRLF first (the "nudge": with the
default placement that is what makes the NLB send its header), and, where the targets are
known (AWS), silent ones straight to a registered target behind a PPv2 header (TEST-NET source)
and without one. With the NLB's default header placement (``on_first_ack_with_payload``) the
header waits for the client's first data while a PROXY-expecting receiver waits for the header:
no greeting for the silent client, a greeting once it spoke, and one directly behind a header
(istio/istio #36104). Without AWS access the listeners are the configured one and the lab
resolver's entries for the same load balancer; the nudge still tells the case apart. Runs only
when named (``ppdoctor probe server-first``): an HTTP gateway port never greets, so in ``--all``
it would only cost its waits.
"""

from __future__ import annotations

import asyncio
import contextlib

from .network import TEST_NET_SOURCE
from .. import drain
from ..proxyproto import proxy_v2
from ..errors import AwsError
from .context import ProbeContext, run_blocking
from .model import Observation, Status

GREETING_WAIT_S = 1.5
# What the nudging client sends: a bare line end, which SMTP/MySQL/SSH servers answer after their greeting
# and an HTTP/1 server skips (RFC 9112 2.2: a server SHOULD ignore at least one empty line before a request).
NUDGE = b"\r\n"
PLACEMENT_ATTRIBUTE = "proxy_protocol_v2.client_to_server.header_placement"


async def first_bytes(host: str, port: int, *, prefix: bytes = b"", source: str | None = None,
                      wait: float = GREETING_WAIT_S) -> bytes | None:
    """Connect, send only ``prefix``, and return what the server sends first (b"": closed; None: silence)."""
    writer = None
    try:
        async with asyncio.timeout(wait):
            reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0) if source else None)
            if prefix:
                writer.write(prefix)
                await writer.drain()
            return await reader.read(512)
    except TimeoutError:
        return None
    except OSError:
        return b""
    finally:
        if writer is not None:
            writer.transport.abort()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def greeted(data: bytes | None) -> bool:
    """Did the server speak first? An HTTP status line is not a greeting: it is an HTTP listener
    answering what it took for a broken request (Envoy without the PROXY filter answers the header
    alone with 400), so an HTTP port never counts as server-first."""
    return bool(data) and not data.startswith(b"HTTP/")


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _listener_address(ctx: ProbeContext, lb: dict, port: int) -> tuple[str, int]:
    """Where a listener port of the NLB is reached: the configured address for its listener port, the
    lab's resolver for the others, else the load balancer's DNS name."""
    if port == ctx.config.nlb.listener_port and ctx.config.nlb.address:
        return ctx.nlb_address()
    found = ctx.config.resolver.lookup(lb.get("DNSName", ""), port)
    return _split(found) if found else (lb.get("DNSName", ""), port)


def _groups(ctx: ProbeContext, data: dict) -> list[tuple[int, dict]]:
    """(listener port, target group as aws.collect shapes it) for every forwarding listener of the NLB;
    the configured group comes first, the others are read here (a TCP service has its own listener)."""
    known = {g["tg"]["TargetGroupArn"]: g for g in data["target_groups"]}
    out: list[tuple[int, dict]] = []
    for listener in data["listeners"]:
        for action in listener.get("DefaultActions", []):
            arn = action.get("TargetGroupArn")
            if not arn:
                continue
            group = known.get(arn)
            if group is None:
                tgs = ctx.aws_call("elbv2", "describe_target_groups", TargetGroupArns=[arn]).get("TargetGroups", [])
                attrs = {a["Key"]: a["Value"] for a in ctx.aws_call(
                    "elbv2", "describe_target_group_attributes", TargetGroupArn=arn).get("Attributes", [])}
                health = ctx.aws_call("elbv2", "describe_target_health", TargetGroupArn=arn).get("TargetHealthDescriptions", [])
                group = {"tg": tgs[0] if tgs else {"TargetGroupArn": arn}, "attributes": attrs, "health": health}
            out.append((int(listener.get("Port") or 0), group))
    if not out:  # listeners not readable: the configured group behind the configured listener
        out = [(ctx.config.nlb.listener_port, g) for g in data["target_groups"][:1]]
    out.sort(key=lambda pg: pg[0] != ctx.config.nlb.listener_port)
    return out


def _configured_listeners(ctx: ProbeContext) -> list[tuple[int, tuple[str, int]]]:
    """Without AWS: the configured listener, and the resolver's other ports of the same load balancer."""
    out = [(ctx.config.nlb.listener_port, ctx.nlb_address())]
    mine = ""
    for entry in ctx.config.resolver.endpoints:
        key, _, target = entry.partition("=")
        if target.strip() == ctx.config.nlb.address:
            mine = key.strip().rpartition(":")[0].lower()
    for entry in ctx.config.resolver.endpoints:
        key, _, target = entry.partition("=")
        name, _, port = key.strip().rpartition(":")
        if mine and name.lower() == mine and port.isdigit() and int(port) != ctx.config.nlb.listener_port:
            out.append((int(port), _split(target.strip())))
    return out


async def _check_listener(ctx: ProbeContext, port: int, address: tuple[str, int], group: dict | None) -> dict:
    host, nlb_port = address
    source = ctx.config.nlb.client_source or None
    jobs = {"via_nlb": first_bytes(host, nlb_port, source=source),
            "via_nlb_nudge": first_bytes(host, nlb_port, prefix=NUDGE, source=source)}
    direct = ""
    if group is not None:
        targets = [(h["Target"]["Id"], int(h["Target"].get("Port") or group["tg"].get("Port") or 0))
                   for h in drain.in_service(group["health"]) if not h["Target"]["Id"].startswith("i-")]
        if targets:
            t_ip, t_port = targets[0]
            header = proxy_v2((TEST_NET_SOURCE, 40000), (t_ip, t_port))
            jobs["direct_pp"] = first_bytes(t_ip, t_port, prefix=header)
            jobs["direct_plain"] = first_bytes(t_ip, t_port)
            direct = f"{t_ip}:{t_port}"
    results = dict(zip(jobs, await asyncio.gather(*jobs.values())))
    return {"port": port, "group": group, "results": results, "direct": direct, "nlb": f"{host}:{nlb_port}"}


async def probe_server_first(ctx: ProbeContext) -> Observation:
    from .aws import collect as aws_collect

    obs = Observation("server-first")
    try:
        data = await ctx.cached("aws", lambda: run_blocking(aws_collect, ctx))
        groups = await run_blocking(_groups, ctx, data)
        listeners = [(port, _listener_address(ctx, data["load_balancer"], port), g) for port, g in groups]
    except AwsError as exc:
        # decide from what is left: the nudge through the NLB needs no access
        obs.evidence["aws"] = str(exc)
        listeners = [(port, address, None) for port, address in _configured_listeners(ctx)]
    # Every listener at once: an HTTP listener never greets (see greeted), a server-first one does somewhere.
    checks = await asyncio.gather(*(_check_listener(ctx, port, address, g) for port, address, g in listeners))
    speaking = [c for c in checks if any(greeted(v) for v in c["results"].values())]
    chosen = next((c for c in speaking if not greeted(c["results"]["via_nlb"])), speaking[0] if speaking else checks[0])
    if chosen["group"] is not None:
        attributes = chosen["group"]["attributes"]
        placement = attributes.get(PLACEMENT_ATTRIBUTE, "on_first_ack_with_payload")
        obs.fact("server_first.header_placement", placement,
                 "" if PLACEMENT_ATTRIBUTE in attributes else "attribute absent: AWS default")
        obs.fact("server_first.pp_v2", attributes.get("proxy_protocol_v2.enabled", "false").strip().lower() == "true")
        obs.evidence["target_group"] = chosen["group"]["tg"].get("TargetGroupArn", "")
    else:
        placement = "unknown (AWS not readable)"
    obs.fact("server_first.listener_port", chosen["port"])
    obs.evidence["listeners_checked"] = [c["port"] for c in checks]
    obs.evidence["via_nlb"] = chosen["nlb"]
    if chosen["direct"]:
        obs.evidence["direct_target"] = chosen["direct"]
    results = chosen["results"]
    for name, got in results.items():
        obs.fact(f"server_first.{name}_greeting", greeted(got))
        obs.evidence[f"{name}_first_bytes"] = (got or b"")[:80].decode("latin-1")
    if not speaking:
        obs.status = Status.SKIPPED
        obs.summary = "no greeting on any listener or path: not a server-first service (or it is down)"
    elif not greeted(results["via_nlb"]):
        obs.status = Status.FAIL
        obs.summary = (f"listener {chosen['port']}: the service greets "
                       + ("directly" if greeted(results.get("direct_pp")) else "once the client has spoken")
                       + f" but not a silent client through the NLB (header placement {placement})")
    else:
        obs.summary = f"listener {chosen['port']}: the greeting arrives through the NLB"
    return obs
