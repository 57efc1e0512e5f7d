"""The rollout probe (on demand, makes a change): restart the gateway Deployment while a request stream through
the NLB counts what fails.

A rollout replaces the gateway pods; the controller deregisters the old ones, and the NLB keeps sending new
flows to a deregistered target for a while (``constants.NLB_DEREGISTRATION_PROPAGATION_S``: istio/istio
#35964, aws-load-balancer-controller #1719, #2366). A pod that stops accepting sooner — no preStop sleep,
Istio's 5 s drain — loses them: the stream sees resets. The probe patches the pod template the way
``kubectl rollout restart`` does (annotation ``kubectl.kubernetes.io/restartedAt``), so it runs only when
named (``ppdoctor probe rollout``), never in ``--all``: it restarts the gateway. It streams for the
propagation window plus the time a new pod takes to become a healthy target, times ``nlb.time_scale``.
"""

from __future__ import annotations

import asyncio
import datetime
import time

from ..constants import ANN_RESTARTED_AT, NLB_DEREGISTRATION_PROPAGATION_S
from ..errors import ConfigError
from .clientpath import client_path_headers, client_tls
from .context import ProbeContext, run_blocking
from .model import FailureClass, Observation, Status
from .net import http_exchange

# A new pod's start, its registration and its first healthy checks (AWS default: 5 × 10 s...) take this long
# on top of the propagation window before the stream has seen the whole rollout.
ROLLOUT_SETTLE_S = 40
PACE_S = 0.05  # one request every 50 ms: enough to hit a window of seconds, light on the gateway
BASELINE_S = 0.5  # requests before the restart: a failure already there is not the rollout's


def _restart(ctx: ProbeContext) -> str:
    k = ctx.config.kubernetes
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"spec": {"template": {"metadata": {"annotations": {ANN_RESTARTED_AT: now}}}}}
    ctx.kube_call("AppsV1Api", "patch_namespaced_deployment", "patch", "deployments.apps", k.namespace,
                  name=k.gateway_deployment, namespace=k.namespace, body=body)
    return now


async def probe_rollout(ctx: ProbeContext) -> Observation:
    obs = Observation("rollout")
    cfg = ctx.config
    window = (NLB_DEREGISTRATION_PROPAGATION_S + ROLLOUT_SETTLE_S) * cfg.nlb.time_scale
    budget = cfg.timeouts.total - BASELINE_S - 2 * cfg.timeouts.response
    if window > budget:
        raise ConfigError(f"a rollout through this NLB takes about {window:.0f} s to watch; the probe budget is "
                          f"{cfg.timeouts.total:.0f} s", hint=f"raise timeouts.total above {window + 15:.0f} s for this probe")
    host, port = ctx.nlb_address()

    async def one() -> str:
        ex = await http_exchange(host, port, path=cfg.echo.path, host_header=cfg.echo.host or None,
                                 headers=client_path_headers(cfg), source=cfg.nlb.client_source or None,
                                 connect_timeout=cfg.timeouts.connect, total_timeout=cfg.timeouts.response,
                                 **client_tls(cfg))
        return ex.failure_class.value

    async def stream(until: float, results: list[str]) -> None:
        while time.monotonic() < until:
            started = time.monotonic()
            results.append(await one())
            await asyncio.sleep(max(0.0, PACE_S - (time.monotonic() - started)))  # pacing, not a wait for a state

    before: list[str] = []
    await stream(time.monotonic() + BASELINE_S, before)
    if any(r != FailureClass.OK.value for r in before):
        obs.status = Status.SKIP
        obs.summary = (f"requests through the NLB already fail before any rollout ({sorted(set(before))}): "
                       "the rollout would show nothing of its own; fix that first")
        obs.fact("rollout.baseline_failures", sum(r != FailureClass.OK.value for r in before))
        return obs
    during: list[str] = []
    streaming = asyncio.ensure_future(stream(time.monotonic() + window, during))
    try:
        restarted_at = await run_blocking(_restart, ctx)
    except BaseException:
        streaming.cancel()
        raise
    await streaming
    failures = [r for r in during if r != FailureClass.OK.value]
    obs.fact("rollout.restarted_at", restarted_at, f"{ANN_RESTARTED_AT} on the pod template (kubectl rollout restart)")
    obs.fact("rollout.requests", len(during))
    obs.fact("rollout.failures", len(failures))
    obs.fact("rollout.failure_classes", sorted(set(failures)))
    obs.fact("rollout.watched_s", round(window, 2), f"{NLB_DEREGISTRATION_PROPAGATION_S + ROLLOUT_SETTLE_S} s × time scale "
             f"{cfg.nlb.time_scale:g}")
    obs.status = Status.FAIL if failures else Status.OK
    obs.summary = (f"gateway restarted; {len(failures)} of {len(during)} requests through the NLB failed "
                   f"({', '.join(sorted(set(failures)))})" if failures else
                   f"gateway restarted; all {len(during)} requests through the NLB succeeded")
    return obs
