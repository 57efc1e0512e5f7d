"""The idle probe (on demand): one request, silence for longer than the NLB's idle timeout, a second request.

"Network Load Balancers" → "Connection idle timeout": a flow silent for the listener's
``tcp.idle_timeout.seconds`` (default 350 s) is forgotten and the next segment is reset
(istio/istio #16572, #28879, #52143). The probe waits that long times ``nlb.time_scale`` (1 for
AWS; the lab compresses time), so it runs only when asked for (``ppdoctor probe idle``), never
in ``--all``: against AWS it takes six minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from ..constants import NLB_DEFAULT_IDLE_TIMEOUT_S
from ..errors import AwsError
from .context import ProbeContext, run_blocking
from .model import FailureClass, Observation, Status

IDLE_MARGIN = 1.2  # wait this much past the timeout: the NLB's clock and ours are not the same
# ELB docs, "Update the TCP idle timeout for your Network Load Balancer listener": 60-6000 s (default in
# constants.py). Without AWS access the probe tests the default, or the
# shortest timeout AWS allows when the default does not fit its budget (a reset then proves the fault;
# a survival says nothing about longer timeouts).
NLB_MIN_IDLE_TIMEOUT_S = 60


def _listener_idle_timeout(ctx: ProbeContext, data: dict) -> tuple[int, str]:
    port = ctx.config.nlb.listener_port
    listener = next((l for l in data["listeners"] if not port or l.get("Port") == port), None)
    if listener is None:
        return NLB_DEFAULT_IDLE_TIMEOUT_S, "no listener found: AWS default"
    attrs = ctx.aws_call("elbv2", "describe_listener_attributes", ListenerArn=listener["ListenerArn"]).get("Attributes", [])
    value = next((a["Value"] for a in attrs if a["Key"] == "tcp.idle_timeout.seconds"), None)
    if value is None or not str(value).isdigit():
        return NLB_DEFAULT_IDLE_TIMEOUT_S, "attribute absent: AWS default"
    return int(value), f"listener {listener.get('Port')}"


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes, timeout: float) -> str:
    """Send one keep-alive GET and read its response; the failure class as text."""
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(timeout):
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length" and value.strip().isdigit():
                    length = int(value.strip())
            if length:
                await reader.readexactly(length)
    except (ConnectionResetError, BrokenPipeError):
        return FailureClass.RESET.value
    except asyncio.IncompleteReadError as exc:
        return FailureClass.EMPTY_REPLY.value if not exc.partial else FailureClass.RESET.value
    except TimeoutError:
        return FailureClass.TIMEOUT_RESPONSE.value
    parts = head.split(None, 2)
    code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return FailureClass.OK.value if 200 <= code < 400 else f"http-{code // 100}xx"


async def probe_idle(ctx: ProbeContext) -> Observation:
    from .aws import collect as aws_collect

    obs = Observation("idle")
    budget = ctx.config.timeouts.total - 2 * ctx.config.timeouts.response
    try:
        data = await ctx.cached("aws", lambda: run_blocking(aws_collect, ctx))
        timeout_s, where = await run_blocking(_listener_idle_timeout, ctx, data)
        obs.fact("idle.timeout_s", timeout_s, where)
    except AwsError as exc:  # the listener's timeout is unknown: test one AWS allows (see NLB_MIN_IDLE_TIMEOUT_S)
        obs.evidence["aws"] = str(exc)
        fits = [t for t in (NLB_DEFAULT_IDLE_TIMEOUT_S, NLB_MIN_IDLE_TIMEOUT_S)
                if t * ctx.config.nlb.time_scale * IDLE_MARGIN <= budget]
        timeout_s = fits[0] if fits else NLB_DEFAULT_IDLE_TIMEOUT_S
        obs.fact("idle.tested_timeout_s", timeout_s, "AWS not readable: the listener's own timeout is unknown")
    wait = timeout_s * ctx.config.nlb.time_scale * IDLE_MARGIN
    if wait > budget:
        obs.status = Status.SKIPPED
        obs.summary = (f"the idle test needs {wait:.0f} s of silence, more than the probe's {ctx.config.timeouts.total:g} s "
                       "budget: raise timeouts.total to run it")
        return obs
    host, port = ctx.nlb_address()
    source = ctx.config.nlb.client_source or None
    t = ctx.config.timeouts
    request = (f"GET {ctx.config.echo.path} HTTP/1.1\r\nHost: {ctx.config.echo.host or host}\r\n"
               "User-Agent: ppdoctor-idle\r\n\r\n").encode("latin-1")
    try:
        async with asyncio.timeout(t.connect):
            reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0) if source else None)
    except (OSError, TimeoutError) as exc:
        obs.status = Status.SKIPPED
        obs.summary = f"cannot connect through the NLB ({exc}); the tcp probe says why"
        return obs
    try:
        first = await _request(reader, writer, request, t.response)
        obs.evidence["first_request"] = first
        if first != FailureClass.OK.value:
            obs.status = Status.SKIPPED
            obs.summary = f"the first request already fails ({first}): nothing to learn about idling"
            return obs
        t0 = time.perf_counter()
        await asyncio.sleep(wait)  # the silence is the measurement
        obs.fact("idle.waited_s", round(time.perf_counter() - t0, 2))
        after = await _request(reader, writer, request, t.response)
    finally:
        writer.transport.abort()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    obs.fact("idle.result", after)
    obs.failure_class = FailureClass(after) if after in {f.value for f in FailureClass} else None
    if after == FailureClass.OK.value:
        obs.summary = f"the connection survived {wait:.1f} s of silence (idle timeout {timeout_s} s × {ctx.config.nlb.time_scale:g})"
    else:
        obs.status = Status.FAIL
        obs.summary = (f"after {wait:.1f} s of silence the next request got {after}: the NLB forgot the flow "
                       f"(idle timeout {timeout_s} s × {ctx.config.nlb.time_scale:g})")
    return obs
