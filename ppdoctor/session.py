"""An incident session: the target, every probe run, finding and change, in time order.

The TUI, the CLI and the report share it: it is the engine's single entry point for "do
something and remember that it happened". It never prompts; callers confirm before
``apply``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .config import TargetConfig
from .diagnosis.engine import Finding, diagnose
from .probes import default_probes, run_probe
from .probes.context import ProbeContext
from .probes.model import Observation


@dataclass
class TimelineEvent:
    at: float
    kind: str  # probe | diagnosis | plan | change | verify | rollback | note
    summary: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at, "kind": self.kind, "summary": self.summary, "data": self.data}


class IncidentSession:
    def __init__(self, config: TargetConfig) -> None:
        self.config = config
        self.started_at = time.time()
        self.timeline: list[TimelineEvent] = []
        self.observations: dict[str, Observation] = {}
        self.findings: list[Finding] = []
        self.fix_results: list[Any] = []  # ApplyResult
        self._listeners: list[Callable[[TimelineEvent], None]] = []

    def subscribe(self, callback: Callable[[TimelineEvent], None]) -> None:
        """Called for every new timeline event (from whatever thread/loop recorded it)."""
        self._listeners.append(callback)

    def record(self, kind: str, summary: str, **data: Any) -> TimelineEvent:
        event = TimelineEvent(time.time(), kind, summary, data)
        self.timeline.append(event)
        for callback in list(self._listeners):
            callback(event)
        return event

    # --- probes ---------------------------------------------------------------------

    async def probe(self, name: str) -> Observation:
        ctx = ProbeContext(self.config)
        try:
            obs = await run_probe(name, ctx)
        finally:
            await asyncio.to_thread(ctx.close)
        self.observations[name] = obs
        self.record("probe", f"{name}: {obs.status.value} — {obs.summary}", probe=name, observation=obs.as_dict())
        return obs

    async def probe_all(self, names: list[str] | None = None) -> list[Observation]:
        names = names or default_probes()
        ctx = ProbeContext(self.config)
        try:
            results = await asyncio.gather(*(run_probe(n, ctx) for n in names))
        finally:
            await asyncio.to_thread(ctx.close)
        for obs in results:
            self.observations[obs.probe] = obs
            self.record("probe", f"{obs.probe}: {obs.status.value} — {obs.summary}", probe=obs.probe,
                        observation=obs.as_dict())
        return list(results)

    # --- diagnosis --------------------------------------------------------------------

    def diagnose(self) -> list[Finding]:
        self.findings = diagnose(self.observations.values())
        top = self.findings[0] if self.findings else None
        self.record("diagnosis", f"{top.id} {top.title}" if top else "no finding",
                    findings=[f.as_dict() for f in self.findings])
        return self.findings

    # --- fixes ----------------------------------------------------------------------------

    async def plan(self, fix_id: str) -> Any:
        from .fixes import build_plan, read_state

        ctx = ProbeContext(self.config)
        try:
            plan = build_plan(fix_id, await asyncio.to_thread(read_state, ctx))
        finally:
            await asyncio.to_thread(ctx.close)
        self.record("plan", f"{fix_id}: {len(plan.changes)} change(s)", plan=plan.as_dict())
        return plan

    async def apply(self, plan: Any, *, on_progress: Callable[[str], None] | None = None) -> Any:
        """Apply a plan the operator has confirmed; records every change and verification."""
        from .fixes import apply_plan

        self.record("change", f"{plan.id}: confirmed, applying {len(plan.changes)} change(s)", fix=plan.id)
        ctx = ProbeContext(self.config)
        try:
            result = await apply_plan(plan, ctx, on_progress=on_progress)
        finally:
            await asyncio.to_thread(ctx.close)
        self.fix_results.append(result)
        for change in plan.changes:
            self.record("change", f"{change.status}: {change.object} {change.field}: {change.before!r} → {change.after!r}",
                        change=change.as_dict())
        for v in result.verifications:
            self.record("verify", f"{v.check}: {'passed' if v.passed else 'FAILED'} after {v.seconds:.1f} s",
                        verification=v.as_dict())
        if result.error:
            self.record("note", f"stopped: {result.error}")
        return result

    async def rollback(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        from .fixes import rollback

        ctx = ProbeContext(self.config)
        try:
            done, failed = await rollback(ctx)
        finally:
            await asyncio.to_thread(ctx.close)
        self.record("rollback", f"rolled back {len(done)} change(s)" + (f", {len(failed)} failed" if failed else ""),
                    rolled_back=done, failed=failed)
        return done, failed
