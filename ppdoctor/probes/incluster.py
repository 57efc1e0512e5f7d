"""The incluster probe: do callers inside the cluster reach the gateway without a PROXY header?

Pods that call the gateway Service's ClusterIP (cert-manager's HTTP-01 self-check, services
calling a public hostname that resolves in-cluster) reach the pods' target port without the
NLB, so without a PROXY header: a gateway that requires one resets them, and Envoy counts
``downstream_cx_proxy_proto_error`` / ``proxy_proto.not_found_disallowed`` (names measured
with Envoy 1.40, docs/diagnosis.md). Two measurements:

* one GET the way a pod would send it: to a pod's target port with no header — straight to the
  pod address when the config has it, else through the Kubernetes API's port-forward
  (``incluster.plain_result``);
* the error counter over a short window, minus ppdoctor's own header-less connections in
  that window (``ProbeContext.plain_sent``): what is left came from someone else
  (``incluster.foreign_pp_errors``). The NLB is not among them when it sends PROXY v2.
"""

from __future__ import annotations

import asyncio
import time

from ..errors import ProbeError
from .context import ProbeContext
from .model import FailureClass, Observation, Status
from .net import http_exchange

PP_ERROR_STATS = ("downstream_cx_proxy_proto_error", "proxy_proto.not_found_disallowed")
WINDOW_S = 1.0  # sees a caller that calls at least once a second (lab callers: every 0.5 s); see docs/probes.md
SETTLE_S = 2.0  # how long to wait for ppdoctor's own header-less connections to end before a reading


async def _pp_errors(ctx: ProbeContext) -> dict[str, int]:
    import httpx

    host, port = await ctx.gateway_endpoint("admin")
    base = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
    try:
        async with httpx.AsyncClient(timeout=ctx.config.timeouts.api, trust_env=False) as client:
            r = await client.get(f"{base}/stats", params={"filter": "proxy_proto"})
            r.raise_for_status()
    except httpx.HTTPError as exc:
        raise ProbeError(f"cannot read Envoy's stats at {base}: {exc}",
                         hint="check gateway.admin in the target config (port 15000 of a gateway pod)") from exc
    out: dict[str, int] = {}
    for line in r.text.splitlines():
        name, sep, value = line.partition(": ")
        name = name.strip()
        if sep and value.strip().isdigit() and any(name == s or name.endswith("." + s) for s in PP_ERROR_STATS):
            key = next(s for s in PP_ERROR_STATS if name == s or name.endswith("." + s))
            out[key] = out.get(key, 0) + int(value)
    return out


async def _reading(ctx: ProbeContext) -> tuple[dict[str, int], int]:
    """Envoy's counters and ppdoctor's own header-less count, taken when none of ours is open."""
    deadline = time.monotonic() + SETTLE_S
    while ctx.plain_in_flight and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    own = ctx.plain_sent
    return await _pp_errors(ctx), own


async def _pod_style_get(ctx: ProbeContext, obs: Observation) -> None:
    """A header-less GET to a pod's target port, as a pod's connection through the ClusterIP arrives."""
    # The pod's way in: kube-proxy DNATs the ClusterIP to a pod's target port. ppdoctor gets there like the
    # direct-* probes do (the pod address when configured, else the API's port-forward, one client shared:
    # a second concurrent port-forward session would race the kube probe's calls on the same ApiClient).
    host, port = await ctx.gateway_endpoint()
    obs.evidence["via"] = (f"port-forward through the Kubernetes API ({host}:{port})"
                           if ctx.config.gateway.direct in ("", "port-forward") else f"the pod address {host}:{port}")
    ctx.plain_sent += 1
    ctx.plain_in_flight += 1
    try:
        t = ctx.config.timeouts
        ex = await http_exchange(host, port, path=ctx.config.echo.path, host_header=ctx.config.echo.host or None,
                                 connect_timeout=t.connect, total_timeout=t.response)
    finally:
        ctx.plain_in_flight -= 1
    obs.fact("incluster.plain_result", ex.failure_class.value)
    obs.evidence["pod_style_get"] = ex.evidence()
    obs.failure_class = ex.failure_class


async def probe_incluster(ctx: ProbeContext) -> Observation:
    obs = Observation("incluster")
    await _pod_style_get(ctx, obs)
    before, own_before = await _reading(ctx)
    await asyncio.sleep(WINDOW_S)  # the window itself: other callers' connections arrive meanwhile
    after, own_after = await _reading(ctx)
    total = after.get(PP_ERROR_STATS[0], after.get(PP_ERROR_STATS[1], 0))
    grown = total - before.get(PP_ERROR_STATS[0], before.get(PP_ERROR_STATS[1], 0))
    foreign = max(0, grown - (own_after - own_before))
    obs.evidence["counters_before"], obs.evidence["counters_after"] = before, after
    obs.evidence["window_s"] = WINDOW_S
    obs.fact("incluster.pp_errors_total", total)
    obs.fact("incluster.foreign_pp_errors", foreign)
    obs.fact("incluster.window_s", WINDOW_S)
    pod_style = obs.facts["incluster.plain_result"].value
    obs.status = Status.FAIL if foreign else Status.OK
    obs.summary = (f"a pod-style GET without a PROXY header: {pod_style}; "
                   f"{foreign} header-less connection(s) from others in {WINDOW_S:g} s "
                   f"(Envoy's {PP_ERROR_STATS[0]} = {total})")
    if obs.failure_class is None:
        obs.failure_class = FailureClass.OK
    return obs
