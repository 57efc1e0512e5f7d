"""An incident session: the target, every probe run, finding and change, in time order — kept in the incident record.

The TUI, the CLI and the report share it: it is the engine's single entry point for "do
something and remember that it happened". A session opened with ``IncidentSession.open``
appends every event to the target's current incident on disk (``ppdoctor.incident``), so the
next process — a shell after the TUI, ``report`` after ``fix`` — continues the same story;
the change journal and rollback are part of that record. It never prompts; callers confirm
before ``apply``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .config import TargetConfig
from .diagnosis.engine import Finding, diagnose
from .errors import PPDoctorError
from .incident import IncidentLog, incidents_for, open_current
from .incident.journal import outstanding_changes
from .probes import default_probes, run_probe
from .probes.context import ProbeContext
from .probes.model import Observation


@dataclass
class TimelineEvent:
    at: float
    kind: str  # incident | probe | diagnosis | plan | confirm | change | verify | rollback | bench | note
    summary: str
    data: dict[str, Any] = field(default_factory=dict)
    by: str = ""  # the process that recorded it: "tui", "cli fix", …
    earlier: bool = False  # recorded before this process opened the incident

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at, "kind": self.kind, "summary": self.summary, "data": self.data, "by": self.by}

    @classmethod
    def from_entry(cls, entry: dict[str, Any], *, earlier: bool = False) -> "TimelineEvent":
        return cls(float(entry.get("at") or 0.0), str(entry.get("kind", "")), str(entry.get("summary", "")),
                   dict(entry.get("data") or {}), str(entry.get("by", "")), earlier)


def _top(findings: list[Finding]) -> Finding | None:
    return next((f for f in findings if f.superseded_by is None), findings[0] if findings else None)


class IncidentSession:
    def __init__(self, config: TargetConfig, *, incident: IncidentLog | None = None, by: str = "") -> None:
        self.config = config
        self.by = by
        self.started_at = time.time()
        self.timeline: list[TimelineEvent] = []
        self.observations: dict[str, Observation] = {}
        self.findings: list[Finding] = []
        self.fix_results: list[Any] = []  # ApplyResult
        self.incident: IncidentLog | None = None
        self.load_warnings: list[str] = []
        self._listeners: list[Callable[[TimelineEvent], None]] = []
        if incident is not None:
            self._attach(incident)

    @classmethod
    def open(cls, config: TargetConfig, *, by: str = "") -> "IncidentSession":
        """A session on the target's current incident (opened now if there is none)."""
        return cls(config, incident=open_current(config, by=by), by=by)

    def _attach(self, incident: IncidentLog) -> None:
        self.incident = incident
        result = incident.read()
        self.load_warnings = [str(p) for p in result.problems]
        self.timeline = [TimelineEvent.from_entry(e, earlier=True) for e in result.entries]
        if self.timeline:
            self.started_at = self.timeline[0].at

    def retarget(self, config: TargetConfig) -> None:
        """Point the session at another target: what was observed and concluded no longer describes it; a
        session that keeps a record follows that target's current incident."""
        self.config = config
        self.observations.clear()
        self.findings = []
        if self.incident is not None:
            current = open_current(config, by=self.by)
            if current.path != self.incident.path:
                self._attach(current)
        self.record("note", f"target changed: {config.name} ({config.nlb.address or config.nlb.arn or 'no NLB address'})")

    def subscribe(self, callback: Callable[[TimelineEvent], None]) -> None:
        """Called for every new timeline event (from whatever thread/loop recorded it)."""
        self._listeners.append(callback)

    def record(self, kind: str, summary: str, **data: Any) -> TimelineEvent:
        if self.incident is not None:
            entry = self.incident.append(kind, summary, data, by=self.by)
            event = TimelineEvent(entry["at"], kind, summary, data, self.by)
        else:
            at = time.time()
            if self.timeline and at <= self.timeline[-1].at:
                at = self.timeline[-1].at + 1e-6  # strictly increasing, like the record on disk
            event = TimelineEvent(at, kind, summary, data, self.by)
        self.timeline.append(event)
        for callback in list(self._listeners):
            callback(event)
        return event

    def entries(self) -> list[dict[str, Any]]:
        """The whole incident as recorded — re-read, so other processes' entries are included."""
        if self.incident is not None:
            return self.incident.read().entries
        return [e.as_dict() for e in self.timeline]

    def note(self, text: str, **data: Any) -> TimelineEvent:
        return self.record("note", text, **data)

    # --- probes ---------------------------------------------------------------------

    def _record_probe(self, obs: Observation, run: str) -> None:
        self.observations[obs.probe] = obs
        self.record("probe", f"{obs.probe}: {obs.status.value} — {obs.summary}", probe=obs.probe, run=run,
                    observation=obs.as_dict())

    async def probe(self, name: str) -> Observation:
        ctx = ProbeContext(self.config)
        try:
            obs = await run_probe(name, ctx)
        finally:
            await asyncio.to_thread(ctx.close)
        self._record_probe(obs, secrets.token_hex(4))
        return obs

    async def probe_all(self, names: list[str] | None = None) -> list[Observation]:
        names = names or default_probes()
        ctx = ProbeContext(self.config)
        try:
            results = await asyncio.gather(*(run_probe(n, ctx) for n in names))
        finally:
            await asyncio.to_thread(ctx.close)
        run = secrets.token_hex(4)
        for obs in results:
            self._record_probe(obs, run)
        return list(results)

    def adopt_observations(self, observations: list[Observation]) -> None:
        """Observations made elsewhere (``run_probes``) join the session and the record."""
        run = secrets.token_hex(4)
        for obs in observations:
            self._record_probe(obs, run)

    # --- diagnosis --------------------------------------------------------------------

    def diagnose(self) -> list[Finding]:
        self.findings = diagnose(self.observations.values())
        top = _top(self.findings)
        # What the verdict was decided from: the report shows the failing ones as its evidence.
        basis = [{"probe": o.probe, "status": o.status.value,
                  "failure_class": o.failure_class.value if o.failure_class else None, "summary": o.summary}
                 for o in self.observations.values()]
        self.record("diagnosis", f"{top.id} {top.title}" if top else "no finding",
                    findings=[f.as_dict() for f in self.findings], observations=basis)
        return self.findings

    async def settle(self, *, timeout: float = 20.0) -> list[Finding]:
        """Probe and diagnose; while no rule can decide (the system is between states, e.g. targets
        re-passing health checks after a rollout), probe again until ``timeout``. Only the last
        round joins the record (the rounds before it describe a state that has passed)."""
        from .probes import run_probes

        deadline = time.monotonic() + timeout
        while True:
            observations = await run_probes(self.config)
            if diagnose(observations) or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
        self.observations.clear()
        self.adopt_observations(observations)
        return self.diagnose()

    # --- fixes ----------------------------------------------------------------------------

    async def plan(self, fix_id: str) -> Any:
        from .fixes import build_plan, read_state

        ctx = ProbeContext(self.config)
        try:
            plan = build_plan(fix_id, await asyncio.to_thread(read_state, ctx))
        finally:
            await asyncio.to_thread(ctx.close)
        self.record("plan", f"{fix_id}: {len(plan.changes)} change(s) shown", fix=fix_id, plan=plan.as_dict())
        return plan

    def declined(self, plan: Any, *, by: str = "user") -> None:
        self.record("confirm", f"{plan.id}: declined by {by}; nothing was changed", fix=plan.id, confirmed=False,
                    who=by, changes=len(plan.changes))

    async def apply(self, plan: Any, *, on_progress: Callable[[str], None] | None = None,
                    confirmed_by: str = "user") -> Any:
        """Apply a plan the operator has confirmed; records the confirmation, every change when it is
        written, and every verification."""
        from .fixes import apply_plan

        self.record("confirm", f"{plan.id}: confirmed by {confirmed_by}, applying {len(plan.changes)} change(s)",
                    fix=plan.id, confirmed=True, who=confirmed_by, changes=len(plan.changes))
        cids = [secrets.token_hex(6) for _ in plan.changes]

        def on_change(index: int, change: Any) -> None:
            try:
                self.record("change", f"{change.status}: {change.object} {change.field}: {change.before!r} → "
                            f"{change.after!r}" + (f" — {change.error}" if change.error else ""),
                            fix=plan.id, cid=cids[index], index=index, change=change.as_dict())
            except PPDoctorError as exc:
                # The write happened; say so exactly, since the record cannot (the run stops here).
                raise PPDoctorError(
                    f"{change.object} {change.field} was {change.status} ({change.before!r} → {change.after!r}) "
                    f"but could not be recorded: {exc.message}",
                    hint=(exc.hint or "") + "; `fix --rollback` will not know this change: undo it by hand if needed",
                ) from exc

        def on_verify(index: int, change: Any, v: Any) -> None:
            self.record("verify", f"{v.check}: {'passed' if v.passed else 'FAILED'} after {v.seconds:.1f} s",
                        fix=plan.id, cid=cids[index], verification=v.as_dict())

        ctx = ProbeContext(self.config)
        try:
            result = await apply_plan(plan, ctx, on_progress=on_progress, on_change=on_change, on_verify=on_verify)
        finally:
            await asyncio.to_thread(ctx.close)
        self.fix_results.append(result)
        if result.error:
            self.record("note", f"{plan.id} stopped: {result.error}", fix=plan.id)
        return result

    # --- rollback ----------------------------------------------------------------------------

    def rollback_candidates(self, incident_id: str | None = None) -> list[dict[str, Any]]:
        """Applied, not yet undone changes of this incident (or of the one named), oldest first."""
        if incident_id:
            return outstanding_changes(incidents_for(self.config).find(incident_id).entries())
        if self.incident is not None:
            return outstanding_changes(self.incident.entries())
        return outstanding_changes([e.as_dict() for e in self.timeline])

    def earlier_changes(self) -> list[tuple[Any, list[dict[str, Any]]]]:
        """(incident info, outstanding changes) of this target's other incidents — never rolled back unless named."""
        out = []
        for info in incidents_for(self.config).infos():
            if self.incident is not None and info.path == self.incident.path:
                continue
            changes = outstanding_changes(info_log(info).read().entries)
            if changes:
                out.append((info, changes))
        return out

    async def rollback(self, incident_id: str | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Undo this incident's changes (or the named incident's), newest first, each checked against the live
        value. Returns (undone, stopped) as dicts; a conflict carries before / ours / now."""
        from .fixes import rollback_changes

        target = incidents_for(self.config).find(incident_id) if incident_id else None
        changes = self.rollback_candidates(incident_id)

        def on_step(step: Any) -> None:
            d = step.as_dict()
            if step.status == "conflict":
                summary = (f"stopped: {d['object']} {d['field']} was changed since — before {d['before']!r}, "
                           f"ours {d['ours']!r}, now {d['now']!r}")
            else:
                summary = f"{step.status}: {d['object']} {d['field']}: {d['ours']!r} → {d['before']!r}" + (
                    f" — {step.error}" if step.error else "")
            if target is not None and (self.incident is None or target.path != self.incident.path):
                target.append("rollback", summary, {"step": d, "from_incident": self.incident.id if self.incident else ""},
                              by=self.by)
            self.record("rollback", summary, step=d, incident=target.id if target is not None else
                        (self.incident.id if self.incident else ""))

        ctx = ProbeContext(self.config)
        try:
            steps = await rollback_changes(ctx, changes, on_step)
        finally:
            await asyncio.to_thread(ctx.close)
        done = [s.as_dict() for s in steps if s.status in ("rolled-back", "unchecked", "not-reversible")]
        failed = [s.as_dict() for s in steps if s.status in ("conflict", "failed")]
        return done, failed


def info_log(info: Any) -> IncidentLog:
    return IncidentLog(info.path)
