"""The Fix screen's side of the app: the current plan, confirm-then-apply, rollback, and what happened so far.

State lives here, on the app (``app.fixes``), so it survives switching screens; the Fix
screen redraws from it when ``plan_changed`` fires. Planning, applying and rolling back run
on the engine loop (which owns the session) from workers in the groups ``plan`` and
``apply``; their results come back as ``PlanReady`` / ``ApplyProgress`` / ``ApplyFinished``
/ ``RollbackFinished`` messages, which the app routes to :meth:`FixFlow.handle`.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from . import messages as msg
from .modals import ConfirmModal

if TYPE_CHECKING:
    from ..fixes.apply import ApplyResult
    from ..fixes.model import FixPlan
    from .host import Host

FixUpdate = msg.PlanReady | msg.ApplyProgress | msg.ApplyFinished | msg.RollbackFinished


class FixFlow:
    """Plan → confirm → apply → verify → roll back, for the app's current target."""

    def __init__(self, app: Host) -> None:
        self.app = app
        self.plan: FixPlan | None = None
        self.apply_result: ApplyResult | None = None
        self.apply_log: list[str] = []
        self.applying = False

    def reset(self) -> None:
        """The target changed: a plan for the old one must not be applied to the new one."""
        self.plan = None

    # --- commands (UI thread) ------------------------------------------------------------------

    def plan_fix(self, fix_id: str) -> None:
        self.app.run_worker(partial(self._plan, fix_id), name=f"plan {fix_id}", group="plan", exclusive=True,
                            exit_on_error=False)

    async def _plan(self, fix_id: str) -> None:
        app = self.app
        if app.session is None:
            return
        if self.applying:
            app.say("a fix is being applied: plan the next one once it has finished", severity="warning")
            return
        self.plan, self.apply_result, self.apply_log = None, None, []
        app.plan_changed.publish("planning")
        plan = await app.engine.run(app.session.plan(fix_id))
        app.post_message(msg.PlanReady(plan))

    def request_apply(self) -> None:
        app, plan = self.app, self.plan
        if plan is None:
            app.say("no plan yet: pick a fix and press Enter to plan it", severity="warning")
            return
        if self.applying:
            app.say("a fix is already being applied", severity="warning")
            return
        if self.apply_result is not None:
            app.say(f"{plan.id} was already applied; plan it again to apply it once more", severity="warning")
            return
        if app.bench.running:
            app.say("a bench is running: its numbers would mix the states before and after the fix — stop it "
                    "(ctrl+x on the Bench screen) or let it finish, then apply", severity="warning")
            return
        if not plan.changes:
            app.say(f"{plan.id}: nothing to change — the live state already matches", severity="information")
            return
        from ..widgets.plan import plan_lines  # the plan widgets load with the Fix screen, not at start-up

        n = len(plan.changes)
        app.push_screen(
            ConfirmModal(f"Apply {plan.id} to {app.config.name}?", plan_lines(plan),
                         confirm_label=f"Apply {n} change{'s' if n != 1 else ''}",
                         warning="These writes go to the live AWS / Kubernetes APIs of the target above."),
            lambda ok: self._apply_confirmed(plan, bool(ok)))

    def _apply_confirmed(self, plan: FixPlan, ok: bool) -> None:
        app = self.app
        if not ok:
            if app.session is not None:
                app.in_engine(app.session.declined, plan, by="user")
            app.say(f"{plan.id} declined: nothing was changed")
            return
        if self.applying:
            app.say("a fix is already being applied", severity="warning")
            return
        self.applying = True
        self.apply_log = []
        app.refresh_activity()
        app.run_worker(partial(self._apply, plan), name=f"apply {plan.id}", group="apply", exclusive=True,
                       exit_on_error=False)

    async def _apply(self, plan: FixPlan) -> None:
        app = self.app
        assert app.session is not None
        try:
            result = await app.engine.run(
                app.session.apply(plan, on_progress=lambda text: app.post_message(msg.ApplyProgress(text))),
                protect=True)
        finally:
            self.applying = False
        app.post_message(msg.ApplyFinished(result))

    def request_rollback(self) -> None:
        """Ask, then roll back this incident's applied changes (never while a fix is being applied)."""
        if self.app.session is None:
            return
        if self.applying:
            self.app.say("a fix is being applied: roll back once it has finished", severity="warning")
            return
        self.app.run_worker(partial(self._rollback), name="rollback", group="apply", exclusive=True, exit_on_error=False)

    async def _rollback(self) -> None:
        app = self.app
        if app.session is None:
            return
        from ..widgets.plan import short_value

        session = app.session
        entries = await app.engine.run(_in_engine(session.rollback_candidates))
        if not entries:
            app.say("nothing to roll back: this incident has no applied change (`ppdoctor fix --rollback` lists "
                    "earlier incidents' changes)")
            return
        lines = [f"{e.get('object')}\n   {e.get('field')}: {short_value(e.get('after'))} → {short_value(e.get('before'))}"
                 for e in reversed(entries)]
        ok = await app.push_screen_wait(ConfirmModal(
            f"Roll back {len(entries)} change(s)?", lines, confirm_label=f"Roll back {len(entries)}",
            warning="Restores this incident's before-values, newest first; stops if someone changed a value since."))
        if not ok:
            app.note("rollback declined by the operator; nothing was changed")
            return
        self.applying = True
        app.refresh_activity()
        try:
            done, failed = await app.engine.run(app.session.rollback(), protect=True)
        finally:
            self.applying = False
        app.post_message(msg.RollbackFinished(done, failed))

    def worker_failed(self) -> None:
        """An apply or rollback worker died: nothing is being applied any more."""
        self.applying = False
        self.app.refresh_activity()

    # --- updates (UI thread) -------------------------------------------------------------------

    def handle(self, message: FixUpdate) -> None:
        app = self.app
        match message:
            case msg.PlanReady(plan=plan):
                self.plan, self.apply_result, self.apply_log = plan, None, []
                app.plan_changed.publish(plan.id if plan is not None else "")
            case msg.ApplyProgress(text=text):
                self.apply_log.append(text)
                app.plan_changed.publish("progress")
            case msg.ApplyFinished(result=result):
                self._finished(result)
                app.plan_changed.publish("result")
            case msg.RollbackFinished(done=done, failed=failed):
                app.refresh_activity()
                self.apply_log.append(f"rolled back {len(done)} change(s)" + (f"; {len(failed)} failed" if failed else ""))
                if failed:
                    f = failed[0]
                    detail = str(f.get("error") or f)
                    if f.get("status") == "conflict":
                        from ..widgets.plan import short_value

                        detail = (f"{f.get('object')} {f.get('field')} was changed by someone else since ppdoctor "
                                  f"wrote it:\nbefore: {short_value(f.get('before'))}\nours:   {short_value(f.get('ours'))}"
                                  f"\nnow:    {short_value(f.get('now'))}")
                    app.show_error("Rollback incomplete", detail)
                else:
                    app.say(f"rolled back {len(done)} change(s); re-running the probes")
                    app.probes.start_all()
                self.apply_result = None
                app.plan_changed.publish("rollback")

    def _finished(self, result: ApplyResult) -> None:
        app = self.app
        self.applying = False
        self.apply_result = result
        app.refresh_activity()
        if result.completed:
            checks = ", ".join(f"{v.check} {'passed' if v.passed else 'FAILED'}" for v in result.verifications)
            self.apply_log.append(f"done: {len(result.applied)} change(s) applied" + (f"; {checks}" if checks else ""))
            app.say(f"{result.plan.id} applied and verified; re-running the probes", title="Fix applied")
            app.probes.start_all()
        else:
            self.apply_log.append(f"stopped: {result.error}")
            app.show_error(f"{result.plan.id} stopped", f"{result.error}\n\nApplied: "
                           + ("; ".join(f"{c.object} {c.field}" for c in result.applied) or "nothing")
                           + "\nRoll back with r on the Fix screen.")


async def _in_engine(fn: Callable[[], Any]) -> Any:
    return fn()
