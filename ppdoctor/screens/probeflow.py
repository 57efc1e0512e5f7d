"""The Probes and Diagnosis screens' side of the app: which probes run, which were cancelled, when to diagnose.

Each probe runs as a worker (group ``probes``) that awaits the engine loop; a batch (``a``)
is diagnosed when its last probe ends. Results come back as ``ProbeStarted`` /
``ProbeFinished`` / ``ProbeCancelled`` / ``FindingsReady`` messages, which the app routes to
:meth:`ProbeFlow.handle`; the observations and findings themselves stay on the app (the
UI-thread copies every screen reads). Versions tell whether the findings still describe the
observations (``stale``).
"""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING, Any

from ..probes import PROBES, default_probes
from ..probes.model import Observation, Status
from . import messages as msg

if TYPE_CHECKING:
    from textual.worker import Worker

    from ..diagnosis.model import Finding
    from .host import Host

ProbeUpdate = msg.ProbeStarted | msg.ProbeFinished | msg.ProbeCancelled | msg.FindingsReady


class ProbeFlow:
    """Probe runs and the diagnosis that follows them, for the app's current target."""

    def __init__(self, app: Host) -> None:
        self.app = app
        self.running: dict[str, float] = {}  # probe → monotonic start
        self.cancelled: set[str] = set()
        self._workers: dict[str, Worker[Any]] = {}
        self._batch: set[str] = set()
        self._observed_version = 0
        self._diagnosed_version = -1

    def adopt(self, observed: bool, diagnosed: bool) -> None:
        """A session arrived that already holds observations / findings."""
        self._observed_version = 1 if observed else 0
        self._diagnosed_version = self._observed_version if diagnosed else -1

    def retarget(self) -> None:
        """The target changed: stop what runs against the old one; earlier observations are void."""
        for name in list(self._workers):
            self.cancel(name, quiet=True)
        self._observed_version += 1

    @property
    def stale(self) -> bool:
        """Observations exist that the current findings were not computed from."""
        return bool(self.app.observations) and self._diagnosed_version != self._observed_version

    # --- commands (UI thread) ------------------------------------------------------------------

    def start(self, name: str, *, confirmed: bool = False) -> bool:
        app = self.app
        if app.session is None or name not in PROBES:
            return False
        if name in self.running:
            app.say(f"{name} is already running (c cancels it)", severity="warning")
            return False
        info = PROBES[name]
        if info.changes and not confirmed:  # a probe that changes the target asks first, like a fix
            from .modals import ConfirmModal

            app.push_screen(
                ConfirmModal(f"Run probe {name} on {app.config.name}?", [f"This probe {info.changes}.", info.description],
                             confirm_label=f"Run {name}",
                             warning="The change goes to the live APIs of the target above."),
                lambda ok: self._change_confirmed(name, bool(ok)))
            return False
        self.cancelled.discard(name)
        self.running[name] = time.monotonic()
        worker = app.run_worker(partial(self._probe, name), name=f"probe {name}", group="probes", exit_on_error=False)
        self._workers[name] = worker
        app.post_message(msg.ProbeStarted(name))
        return True

    def _change_confirmed(self, name: str, ok: bool) -> None:
        app = self.app
        session = app.session
        if not ok:
            if session is not None:
                app.in_engine(session.note, f"probe {name} declined by the user; nothing was changed")
            app.say(f"probe {name} declined: nothing was changed")
            return
        if session is not None:
            app.in_engine(session.record, "confirm", f"probe {name} ({PROBES[name].changes}): confirmed by user (TUI)",
                          action="probe", confirmed=True, who="user (TUI)", probe=name)
        self.start(name, confirmed=True)

    def start_all(self, names: list[str] | None = None) -> int:
        """Run several probes concurrently; diagnose when the last of them ends."""
        started = [n for n in (names or default_probes()) if n not in self.running and self.start(n)]
        self._batch.update(started)
        if started:
            self.app.say(f"running {len(started)} probe(s)")
        return len(started)

    async def _probe(self, name: str) -> None:
        app = self.app
        assert app.session is not None
        observation = await app.engine.run(app.session.probe(name))
        app.post_message(msg.ProbeFinished(observation))

    def cancel(self, name: str, *, quiet: bool = False) -> bool:
        worker = self._workers.pop(name, None)
        if worker is None or name not in self.running:
            return False
        worker.cancel()
        self.running.pop(name, None)
        self._batch.discard(name)
        self.cancelled.add(name)
        self.app.note(f"{name}: cancelled by the operator")
        self.app.post_message(msg.ProbeCancelled(name))
        if not quiet:
            self.app.say(f"{name} cancelled")
        return True

    def cancel_all(self) -> int:
        return sum(self.cancel(name, quiet=True) for name in list(self.running))

    def diagnose(self) -> None:
        """Run the rules on what has been observed (a worker; the result arrives as FindingsReady)."""
        self.app.run_worker(partial(self._diagnose), name="diagnosis", group="diagnosis", exclusive=True,
                            exit_on_error=False)

    async def _diagnose(self) -> None:
        app = self.app
        if app.session is None:
            return
        session = app.session
        version = self._observed_version

        async def diagnose() -> list[Finding]:
            return session.diagnose()

        findings = await app.engine.run(diagnose())
        self._diagnosed_version = version
        app.post_message(msg.FindingsReady(findings))

    def worker_failed(self, name: str, error: BaseException | None) -> None:
        """A probe's worker died outside the probe's own error handling: record that as its observation."""
        obs = Observation(name, status=Status.ERROR, summary=f"the probe could not run: {error}")
        obs.error = {"kind": "ui", "message": str(error)}
        self.app.post_message(msg.ProbeFinished(obs))

    # --- updates (UI thread) -------------------------------------------------------------------

    def handle(self, message: ProbeUpdate) -> None:
        app = self.app
        match message:
            case msg.ProbeStarted(name=name) | msg.ProbeCancelled(name=name):
                app.probes_changed.publish(name)
                app.refresh_activity()
                if isinstance(message, msg.ProbeCancelled) and not self._batch and self.stale:
                    self.diagnose()
            case msg.ProbeFinished(observation=obs):
                self._finished(obs)
            case msg.FindingsReady(findings=findings):
                app.findings = list(findings)
                if not app.observations:
                    self._diagnosed_version = self._observed_version
                app.findings_changed.publish(app.findings)

    def _finished(self, obs: Observation) -> None:
        app, name = self.app, obs.probe
        if name in self.cancelled and name not in self.running:
            return  # a result that raced the cancellation
        self.running.pop(name, None)
        self._workers.pop(name, None)
        app.observations[name] = obs
        self._observed_version += 1
        session = app.session
        if session is not None:
            # Observations posted from elsewhere (tests, replays) join the session too.
            app.in_engine(lambda: session.observations.setdefault(name, obs))
        app.probes_changed.publish(name)
        app.refresh_activity()
        if name in self._batch:
            self._batch.discard(name)
            if not self._batch:
                self.diagnose()
