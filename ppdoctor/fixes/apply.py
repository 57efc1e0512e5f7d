"""Applying a fix plan: one change at a time, each verified (bounded wait) before the next; rollback of recorded changes.

If a change fails (API error, conflict, RBAC) or its verification does not pass in time,
the run stops and reports exactly which changes were applied and which were not. Each write
is handed to the caller at once (``on_change``): the session records it in the incident, and
``ppdoctor fix --rollback`` restores the before-values of the incident's changes.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..diagnosis.engine import FactView, gateway_mode
from ..errors import PPDoctorError
from ..probes import run_probe
from ..probes.context import ProbeContext
from ..probes.model import Observation
from .model import Change, FixPlan

# What each verification needs, and when it passes.
CHECKS: dict[str, tuple[tuple[str, ...], Callable[[FactView], bool]]] = {
    "tg-pp-on": (("aws",), lambda f: f.get("tg.pp_v2") is True),
    "tg-preserve-off": (("aws",), lambda f: f.get("tg.preserve_ip") is False),
    "gateway-optional": (("direct-plain", "direct-ppv2"), lambda f: gateway_mode(f)[0] == "optional"),
    "gateway-required": (("direct-plain", "direct-ppv2"), lambda f: gateway_mode(f)[0] == "required"),
    "gateway-pp": (("direct-plain", "direct-ppv2"), lambda f: gateway_mode(f)[0] in ("required", "optional")),
    "client-ip": (("http-via-nlb",), lambda f: f.get("via_nlb.client_ip_class") in ("prober", "external")),
    "hc-pass": (("aws", "health"), lambda f: f.get("hc.would_pass") is True and (f.get("tg.healthy_count") or 0) > 0),
    "no-spoof": (("xff-forge",), lambda f: f.get("xff.spoofable") is False),
    "filter-order": (("envoy",), lambda f: f.get("gateway.pp_after_tls_inspector") is False),
    # restarts the gateway once more while streaming through the NLB (probes/rollout.py): no request may fail
    "rollout-lossless": (("rollout",), lambda f: f.get("rollout.failures") == 0),
}
VERIFY_TIMEOUT_S = 30.0


@dataclass
class VerifyResult:
    check: str
    passed: bool
    seconds: float
    observations: list[Observation] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "passed": self.passed, "seconds": round(self.seconds, 2),
                "observations": [o.as_dict() for o in self.observations]}


async def verify(check: str, ctx: ProbeContext, *, timeout: float = VERIFY_TIMEOUT_S) -> VerifyResult:
    """Re-run the probes a check needs until it passes or the deadline passes (changes take a moment to show)."""
    probes, passes = CHECKS[check]
    t0 = time.monotonic()
    observations: list[Observation] = []
    while True:
        fresh = ProbeContext(ctx.config)  # no cached API answers: read the state anew
        try:
            observations = list(await asyncio.gather(*(run_probe(p, fresh) for p in probes)))
        finally:
            await asyncio.to_thread(fresh.close)
        if passes(FactView(observations)):
            return VerifyResult(check, True, time.monotonic() - t0, observations)
        if time.monotonic() - t0 > timeout:
            return VerifyResult(check, False, time.monotonic() - t0, observations)
        await asyncio.sleep(0.5)


async def diagnose_settled(config: Any, *, timeout: float = 20.0) -> list[Any]:
    """Probe and diagnose; while no rule can decide (the system is between states, e.g. targets
    re-passing health checks after a gateway rollout), probe again until ``timeout``."""
    from ..diagnosis.engine import INCONCLUSIVE, UNEXPLAINED, diagnose, exit_code
    from ..probes import run_probes

    deadline = time.monotonic() + timeout
    while True:
        observations = await run_probes(config)
        # A gateway pod that started moments ago replaced another, which the NLB still sends new flows to for
        # the deregistration's propagation window (PPD021, drain.py): what goes through the NLB until then is a
        # mix of old and new. Wait it out when the deadline allows.
        wait = max(replaced_pods_routed_s(observations, config.nlb.time_scale),
                   FactView(observations).get("gateway.replaced_routed_s") or 0.0)  # Terminating pods (PPD094)
        if wait > 0 and time.monotonic() + wait <= deadline:
            await asyncio.sleep(wait)  # a documented time window: nothing observable ends it sooner
            continue
        findings = diagnose(observations)
        # not decided yet: no rule decided, targets still in initial (PPD092), or a failure nothing explains (PPD090)
        if exit_code(findings) not in (INCONCLUSIVE, UNEXPLAINED) or time.monotonic() > deadline:
            return findings
        await asyncio.sleep(1.0)


def replaced_pods_routed_s(observations: list[Observation], time_scale: float) -> float:
    """Seconds until the NLB stops sending new flows to the pods the newest gateway pod replaced (0: none, or past).

    Counted from the newest pod's start (kube probe's ``gateway.pods``, RFC 3339, one-second resolution): its
    registration follows within seconds; the window is ``NLB_DEREGISTRATION_PROPAGATION_S`` (+20 s for the
    new pod's start and registration), times the lab's time factor (1 on AWS)."""
    import datetime

    from ..constants import NLB_DEREGISTRATION_PROPAGATION_S
    from ..drain import DEREGISTRATION_LAG_S, parse_time

    pods = FactView(observations).get("gateway.pods") or []
    starts = [t for pod in pods if (t := parse_time(pod.get("started"))) is not None]
    if not starts:
        return 0.0
    age = (datetime.datetime.now(datetime.UTC) - max(starts)).total_seconds()
    return max(0.0, (NLB_DEREGISTRATION_PROPAGATION_S + DEREGISTRATION_LAG_S) * time_scale + 1.0 - age)


# Test hook (documented in docs/incident.md): "N:FILE" makes the process, right after the N-th change
# (1-based) is written and recorded, create FILE with its pid and block until it is killed — a
# deterministic point "between two changes" for the crash test. Never set outside tests.
HOLD_ENV = "PPDOCTOR_TEST_HOLD_AFTER_CHANGE"


def _test_hold(index: int) -> None:
    spec = os.environ.get(HOLD_ENV)
    if not spec:
        return
    n, _, path = spec.partition(":")
    if not n.isdigit() or int(n) != index + 1 or not path:
        return
    import signal

    # written beside it and renamed: a test polling for FILE never reads it empty
    tmp = Path(f"{path}.tmp")
    tmp.write_text(str(os.getpid()), encoding="utf-8")
    os.replace(tmp, path)
    while True:  # blocks the whole process until the test kills it
        signal.pause()


def _call(ctx: ProbeContext, payload: dict[str, Any]) -> None:
    if "service" in payload:
        ctx.aws_call(payload["service"], payload["operation"], **payload["kwargs"])
    else:
        ctx.kube_call(payload["api"], payload["method"], payload["verb"], payload["resource"],
                      payload["kwargs"].get("namespace"), **payload["kwargs"])


@dataclass
class ApplyResult:
    plan: FixPlan
    completed: bool
    verifications: list[VerifyResult] = field(default_factory=list)
    error: str | None = None

    @property
    def applied(self) -> list[Change]:
        return [c for c in self.plan.changes if c.status == "applied"]

    @property
    def not_applied(self) -> list[Change]:
        return [c for c in self.plan.changes if c.status in ("pending", "failed")]

    def as_dict(self) -> dict[str, Any]:
        return {"plan": self.plan.as_dict(), "completed": self.completed, "error": self.error,
                "verifications": [v.as_dict() for v in self.verifications]}


async def apply_plan(plan: FixPlan, ctx: ProbeContext, *, verify_timeout: float = VERIFY_TIMEOUT_S,
                     on_progress: Callable[[str], None] | None = None,
                     on_change: Callable[[int, Change], None] | None = None,
                     on_verify: Callable[[int, Change, VerifyResult], None] | None = None) -> ApplyResult:
    """Apply changes in order; stop at the first failure. Caller has already obtained confirmation.

    ``on_change(index, change)`` runs right after each write (applied or failed), before anything
    else happens: the session records the change there, so a process killed between two changes
    leaves a record of exactly the applied part.
    """
    result = ApplyResult(plan, completed=False)
    journal = on_change or (lambda _i, _c: None)
    say = on_progress or (lambda _m: None)
    async def write(index: int, change: Change) -> None:
        try:
            await asyncio.to_thread(_call, ctx, change.payload)
        except PPDoctorError as exc:
            change.status, change.error = "failed", str(exc)
            journal(index, change)
            return
        change.status = "applied"
        journal(index, change)
        _test_hold(index)

    for index, change in enumerate(plan.changes):
        say(f"applying: {change.object} {change.field}")
        # A write and its record go together: cancelling the caller (Ctrl-C, a UI
        # cancel) waits for both, so an applied change can always be rolled back.
        task = asyncio.ensure_future(write(index, change))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            await task
            raise
        if change.status == "failed":
            result.error = f"{change.object} {change.field}: {change.error}"
            break
        if change.verify:
            say(f"verifying: {change.verify}")
            check = await verify(change.verify, ctx, timeout=verify_timeout)
            result.verifications.append(check)
            if on_verify is not None:
                on_verify(index, change, check)
            if not check.passed:
                result.error = (f"the change to {change.object} did not show its effect ({change.verify}) within "
                                f"{verify_timeout:g} s; stopped before the next change")
                break
    else:
        result.completed = True
    return result


@dataclass
class RollbackStep:
    """One recorded change undone (or not): status rolled-back | not-reversible | conflict | failed | unchecked."""

    change: dict[str, Any]
    status: str
    now: Any = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        c = self.change
        out = {"cid": c.get("cid"), "fix": c.get("fix"), "object": c.get("object"), "field": c.get("field"),
               "before": c.get("before"), "ours": c.get("after"), "status": self.status, "error": self.error}
        if self.status == "conflict":
            out["now"] = self.now
        return out


async def rollback_changes(ctx: ProbeContext, changes: list[dict[str, Any]],
                           on_step: Callable[[RollbackStep], None] | None = None) -> list[RollbackStep]:
    """Undo recorded changes, newest first. Before each write the field is read again: if it no longer
    holds what we wrote (someone changed it since), stop there — before / ours / now go to the caller.
    """
    from .live import UNKNOWN, live_value, still_ours
    from .planner import read_state

    steps: list[RollbackStep] = []
    note = on_step or (lambda _s: None)
    for change in sorted(changes, key=lambda c: c.get("at") or 0.0, reverse=True):
        payload = change.get("rollback_payload")
        if payload is None:
            step = RollbackStep(change, "not-reversible")
            steps.append(step)
            note(step)
            continue
        fresh = ProbeContext(ctx.config)  # no cached answers: the value as it is now
        try:
            state = await asyncio.to_thread(read_state, fresh)
        except PPDoctorError as exc:
            step = RollbackStep(change, "failed", error=f"could not read the live value first: {exc}")
            steps.append(step)
            note(step)
            break
        finally:
            await asyncio.to_thread(fresh.close)
        now = live_value(change, state)
        if now is not UNKNOWN and not still_ours(change, now):
            step = RollbackStep(change, "conflict", now=now,
                                error="changed by someone else since ppdoctor wrote it; not overwritten")
            steps.append(step)
            note(step)
            break
        try:
            await asyncio.to_thread(_call, ctx, payload)
        except PPDoctorError as exc:
            step = RollbackStep(change, "failed", error=str(exc))
            steps.append(step)
            note(step)
            break
        step = RollbackStep(change, "rolled-back" if now is not UNKNOWN else "unchecked")
        steps.append(step)
        note(step)
    return steps
