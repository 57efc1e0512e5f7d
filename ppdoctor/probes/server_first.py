"""The server-first probe (on demand): does a service that speaks first (SMTP, MySQL, SSH) greet the client?

Three silent connections, each waiting ``GREETING_WAIT_S`` for the first bytes: through the NLB,
straight to a registered target behind a PPv2 header (TEST-NET source), and straight to it
without one. With the NLB's default header placement (``on_first_ack_with_payload``) the header
waits for the client's first data while a PROXY-expecting receiver waits for the header: no
greeting through the NLB, a greeting directly behind a header (istio/istio #36104). Runs only
when named (``ppdoctor probe server-first``): an HTTP gateway port never greets, so in ``--all``
it would only cost its waits.
"""

from __future__ import annotations

import asyncio
import contextlib

from .network import TEST_NET_SOURCE
from ..proxyproto import proxy_v2
from .context import ProbeContext, run_blocking
from .model import Observation, Status

GREETING_WAIT_S = 1.5
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


def _greeted(data: bytes | None) -> bool:
    return bool(data)


async def probe_server_first(ctx: ProbeContext) -> Observation:
    from .aws import collect as aws_collect

    obs = Observation("server-first")
    data = await ctx.cached("aws", lambda: run_blocking(aws_collect, ctx))
    group = data["target_groups"][0]
    placement = group["attributes"].get(PLACEMENT_ATTRIBUTE, "on_first_ack_with_payload")
    obs.fact("server_first.header_placement", placement,
             "" if PLACEMENT_ATTRIBUTE in group["attributes"] else "attribute absent: AWS default")
    host, port = ctx.nlb_address()
    targets = [(h["Target"]["Id"], int(h["Target"].get("Port") or group["tg"].get("Port") or 0))
               for h in group["health"] if not h["Target"]["Id"].startswith("i-")]
    jobs = {"via_nlb": first_bytes(host, port, source=ctx.config.nlb.client_source or None)}
    if targets:
        t_ip, t_port = targets[0]
        header = proxy_v2((TEST_NET_SOURCE, 40000), (t_ip, t_port))
        jobs["direct_pp"] = first_bytes(t_ip, t_port, prefix=header)
        jobs["direct_plain"] = first_bytes(t_ip, t_port)
        obs.evidence["direct_target"] = f"{t_ip}:{t_port}"
    results = dict(zip(jobs, await asyncio.gather(*jobs.values())))
    for name, got in results.items():
        obs.fact(f"server_first.{name}_greeting", _greeted(got))
        obs.evidence[f"{name}_first_bytes"] = (got or b"")[:80].decode("latin-1")
    if not any(_greeted(v) for v in results.values()):
        obs.status = Status.SKIPPED
        obs.summary = "no greeting on any path: not a server-first service (or it is down)"
    elif not _greeted(results["via_nlb"]):
        obs.status = Status.FAIL
        obs.summary = f"the service greets directly but not through the NLB (header placement {placement})"
    else:
        obs.summary = "the greeting arrives through the NLB"
    return obs
