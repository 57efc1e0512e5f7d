"""Applying a fix plan: one change at a time, each verified (bounded wait) before the next; a journal of before-values for rollback.

If a change fails (API error, conflict, RBAC) or its verification does not pass in time,
the run stops and reports exactly which changes were applied and which were not; the
journal lets ``ppdoctor fix --rollback`` restore every before-value.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
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
        findings = diagnose(await run_probes(config))
        # not decided yet: no rule decided, targets still in initial (PPD092), or a failure nothing explains (PPD090)
        if exit_code(findings) not in (INCONCLUSIVE, UNEXPLAINED) or time.monotonic() > deadline:
            return findings
        await asyncio.sleep(1.0)


def journal_path(ctx: ProbeContext) -> Path:
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "ppdoctor"
    key = hashlib.sha256(f"{ctx.config.name}|{ctx.config.path}".encode()).hexdigest()[:12]
    return base / f"changes-{key}.json"


def load_journal(path: Path) -> list[dict[str, Any]]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except json.JSONDecodeError as exc:
        raise PPDoctorError(f"the change journal {path} is damaged: {exc}",
                            hint="inspect it by hand; it holds the before-values of applied changes") from exc


def _save_journal(path: Path, entries: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)


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


async def apply_plan(plan: FixPlan, ctx: ProbeContext, *, journal: Path | None = None,
                     verify_timeout: float = VERIFY_TIMEOUT_S,
                     on_progress: Callable[[str], None] | None = None) -> ApplyResult:
    """Apply changes in order; stop at the first failure. Caller has already obtained confirmation."""
    journal = journal or journal_path(ctx)
    entries = load_journal(journal)
    result = ApplyResult(plan, completed=False)
    say = on_progress or (lambda _m: None)
    async def write(change: Change) -> None:
        try:
            await asyncio.to_thread(_call, ctx, change.payload)
        except PPDoctorError as exc:
            change.status, change.error = "failed", str(exc)
            return
        change.status = "applied"
        entries.append({"fix": plan.id, "applied_at": time.time(), **change.as_dict()})
        _save_journal(journal, entries)

    for change in plan.changes:
        say(f"applying: {change.object} {change.field}")
        # A write and its journal entry go together: cancelling the caller (Ctrl-C, a UI
        # cancel) waits for both, so an applied change can always be rolled back.
        task = asyncio.ensure_future(write(change))
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
            if not check.passed:
                result.error = (f"the change to {change.object} did not show its effect ({change.verify}) within "
                                f"{verify_timeout:g} s; stopped before the next change")
                break
    else:
        result.completed = True
    return result


async def rollback(ctx: ProbeContext, *, journal: Path | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Undo applied changes newest first; returns (rolled back, could not)."""
    journal = journal or journal_path(ctx)
    entries = load_journal(journal)
    done, failed = [], []
    remaining = list(entries)
    for entry in reversed(entries):
        if entry.get("status") != "applied":
            remaining.remove(entry)
            continue
        payload = entry.get("rollback_payload")
        if payload is None:
            entry["status"] = "not-reversible"
            done.append(entry)
            remaining.remove(entry)
            continue
        try:
            await asyncio.to_thread(_call, ctx, payload)
        except PPDoctorError as exc:
            entry["error"] = str(exc)
            failed.append(entry)
            break
        entry["status"] = "rolled-back"
        done.append(entry)
        remaining.remove(entry)
        _save_journal(journal, remaining)
    _save_journal(journal, remaining)
    return done, failed
