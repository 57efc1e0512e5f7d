"""The Textual app: routes messages between the screens and the engine; ``ppdoctor.tui`` runs it.

The app is a thin shell over the engine. It owns UI-side copies of the incident state
(observations, findings, plan, timeline) and starts the engine's work through workers; the
IncidentSession itself lives on the engine loop (``screens/engine.py``). Screens are modes
(the ``MODES`` table: Setup, Probes, Diagnosis, Fix, Report, Timeline, Bench) switched with
1–5, t and 6. Screens see the app only through ``screens.host.Host``; the lab it may own only
through ``screens.host.LabLike`` (``ppdoctor.lab.handle``, imported on the lab path alone).
"""

from __future__ import annotations

import io
import time
from importlib import import_module
from importlib.resources import files
from pathlib import Path
from typing import Any, Callable

from textual import on, work
from textual.app import App
from textual.screen import ModalScreen, Screen
from textual.signal import Signal
from textual.worker import Worker, WorkerState

from .config import TargetConfig
from .diagnosis.model import Finding
from .errors import PPDoctorError
from .probes.model import Observation
from .screens import messages as msg
from .screens.benchctl import BenchController
from .screens.commands import PPDoctorCommands
from .screens.engine import EngineLoop
from .screens.fixflow import FixFlow, FixUpdate
from .screens.probeflow import ProbeFlow, ProbeUpdate
from .screens.help import HelpScreen
from .screens.host import APP_BINDINGS, LabLike
from .screens.modals import ConfirmModal, ErrorModal
from .screens.start import LabBootScreen, StartScreen
from .session import IncidentSession, TimelineEvent
from .widgets.safe import clean

__all__ = ["PPDoctorApp"]

WORKER_TITLES = {
    "diagnosis": "Diagnosis failed",
    "plan": "Could not build the fix plan",
    "apply": "Applying or rolling back failed",
    "report": "Exporting the report failed",
    "report-preview": "Rendering the report failed",
    "lab": "The lab did not start",
    "discovery": "Reading kube contexts / AWS profiles failed",
    "bench": "The bench failed",
}


def _mode(module: str, name: str) -> Callable[[], Screen[Any]]:
    """A mode's screen, imported when first opened: start-up pays only for the screen it lands on."""
    return lambda: getattr(import_module(f"ppdoctor.screens.{module}"), name)()


# --- the app ------------------------------------------------------------------------------------

class PPDoctorApp(App[int]):
    """ppdoctor's TUI. Pass a session to open on a target, or a lab (``LabLike``) to start/attach first."""

    TITLE = "ppdoctor"
    CSS_PATH = str(files("ppdoctor.assets").joinpath("ppdoctor.tcss"))
    COMMANDS = App.COMMANDS | {PPDoctorCommands}
    MODES = {
        "setup": _mode("setup", "SetupScreen"),
        "probes": _mode("probes", "ProbesScreen"),
        "diagnosis": _mode("diagnosis", "DiagnosisScreen"),
        "fix": _mode("fix", "FixScreen"),
        "report": _mode("report", "ReportScreen"),
        "timeline": _mode("timeline", "TimelineScreen"),
        "bench": _mode("bench", "BenchScreen"),
        "pcap": _mode("pcap", "PcapScreen"),
    }
    BINDINGS = APP_BINDINGS

    def __init__(self, session: IncidentSession | None = None, *, lab: LabLike | None = None,
                 landing: str | None = None, start_reason: str = "", scenarios: list[Any] | None = None,
                 report_backend: Any = None, cursor_blink: bool = True) -> None:
        super().__init__()
        self.engine = EngineLoop()
        self.session: IncidentSession | None = None
        self.config = TargetConfig()
        self.observations: dict[str, Observation] = {}
        self.findings: list[Finding] = []
        self.timeline: list[TimelineEvent] = []
        self.lab = lab
        self.lab_status = ""
        self.landing = landing or ("probes" if lab else "setup")
        self.start_reason = start_reason
        self.scenarios = scenarios
        self.report_backend = report_backend
        self.cursor_blink = cursor_blink
        # Screens subscribe to these; payloads are UI-thread copies.
        self.probes_changed: Signal[str] = Signal(self, "probes-changed")
        self.findings_changed: Signal[list[Finding]] = Signal(self, "findings-changed")
        self.plan_changed: Signal[str] = Signal(self, "plan-changed")
        self.timeline_changed: Signal[TimelineEvent] = Signal(self, "timeline-changed")
        self.activity_changed: Signal[str] = Signal(self, "activity-changed")
        self.config_changed: Signal[TargetConfig] = Signal(self, "config-changed")
        self.report_changed: Signal[msg.ReportPreview | msg.ReportWritten] = Signal(self, "report-changed")
        self.bench_changed: Signal[str] = Signal(self, "bench-changed")
        self.bench = BenchController(self)
        self.probes = ProbeFlow(self)
        self.fixes = FixFlow(self)
        if session is not None:
            self._adopt(session)

    # --- session ---------------------------------------------------------------------------

    def _adopt(self, session: IncidentSession) -> None:
        """Take a session: copy what it already holds, then follow its timeline."""
        self.session = session
        self.config = session.config
        self.observations = dict(session.observations)
        self.findings = list(session.findings)
        self.timeline = list(session.timeline)
        self.probes.adopt(observed=bool(self.observations), diagnosed=bool(self.findings))
        session.subscribe(lambda event: self.post_message(msg.TimelineEventAdded(event)))

    def note(self, summary: str, **data: Any) -> None:
        """Record an operator event in the timeline (on the engine thread, which owns the session)."""
        if self.session is not None:
            self.in_engine(self.session.record, "note", summary, **data)

    def in_engine(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Fire-and-forget a session update on the engine thread; a failure ends in an error modal."""

        def done(future: Any) -> None:
            if not future.cancelled() and future.exception() is not None:
                self.post_message(msg.EngineFailed("Updating the incident record failed", str(future.exception())))

        self.engine.call(fn, *args, **kwargs).add_done_callback(done)

    @on(msg.EngineFailed)
    def _engine_failed(self, message: msg.EngineFailed) -> None:
        self.show_error(message.title, message.error)

    def get_default_screen(self) -> Screen[Any]:
        if self.session is not None:
            return Screen()  # replaced by the landing mode on mount
        if self.lab is not None:
            return LabBootScreen(self.lab.name)
        return StartScreen(self.start_reason, self.scenarios)

    def on_mount(self) -> None:
        if self.session is not None:
            self.switch_mode(self.landing)
        elif self.lab is not None:
            self.start_lab_worker()

    def on_unmount(self) -> None:
        self.bench.shutdown()
        self.engine.close(timeout=0.5)

    # --- navigation and feedback -------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "go":
            return (self.session is not None or parameters == ("pcap",)) and not isinstance(self.screen, ModalScreen)
        return True

    def action_go(self, mode: str) -> None:
        if self.session is None and mode != "pcap":  # a capture needs no target
            self.say("start the lab (l) or configure a target first", severity="warning")
            return
        if isinstance(self.screen, ModalScreen):
            return
        self.switch_mode(mode)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_quit(self) -> None:  # type: ignore[override]
        if self.fixes.applying:
            self.push_screen(ConfirmModal("Quit while a fix is being applied?",
                                          ["ppdoctor waits up to 20 s for the change in flight to be written and "
                                           "recorded in the incident, then stops; its verification is not shown. "
                                           "`ppdoctor fix --rollback` undoes applied changes."],
                                          confirm_label="Quit anyway"),
                             lambda ok: self.exit(0) if ok else None)
            return
        self.exit(0)

    def say(self, text: str, *, severity: str = "information", title: str = "", timeout: float | None = None) -> None:
        """notify() for text that may contain remote data: never markup, control codes escaped."""
        self.notify(clean(text, multiline=True, limit=600), title=clean(title), severity=severity,  # type: ignore[arg-type]
                    markup=False, timeout=timeout)

    def show_error(self, title: str, error: BaseException | str) -> None:
        self.push_screen(ErrorModal(title, str(error)))

    def activity_text(self) -> str:
        parts = []
        if running := len(self.probes.running):
            parts.append(f"{running} probe{'s' if running != 1 else ''} running")
        if self.fixes.applying:
            parts.append("applying a fix")
        if self.bench.running:
            parts.append("bench running")
        if self.lab_status:
            parts.append(self.lab_status)
        return " · ".join(parts)

    def refresh_activity(self) -> None:
        self.activity_changed.publish(self.activity_text())

    # --- lab ------------------------------------------------------------------------------

    def launch_lab(self, scenario: str | None) -> None:
        """From the start screen: start a lab this app owns, then open on it."""
        if self.lab is not None and self.lab.running:
            return
        from .lab.handle import LabHandle, scratch_state_dir  # the TUI's lab path: the lab loads only here

        self.lab = LabHandle(scenario, scratch_state_dir())
        self.push_screen(LabBootScreen(self.lab.name))
        self.start_lab_worker()

    @work(thread=True, exclusive=True, exit_on_error=False, group="lab")
    def start_lab_worker(self) -> None:
        assert self.lab is not None
        self.post_message(msg.LabProgress(f"starting lab scenario {self.lab.name} in {self.lab.state_dir}"))
        t0 = time.monotonic()
        try:
            config = self.lab.start_config()
            endpoints = self.lab.endpoints or {}
        except PPDoctorError as exc:
            self.post_message(msg.LabFailed(str(exc)))
            return
        self.post_message(msg.LabProgress(f"lab ready after {time.monotonic() - t0:.1f} s"))
        self.post_message(msg.LabReady(endpoints, config))

    def _boot_screen(self) -> LabBootScreen | None:
        return next((screen for screen in reversed(self.screen_stack) if isinstance(screen, LabBootScreen)), None)

    @on(msg.LabProgress)
    def _lab_progress(self, message: msg.LabProgress) -> None:
        self.lab_status = "" if message.text.startswith("lab ready") else "lab starting"
        self.refresh_activity()
        boot = self._boot_screen()
        if boot is not None:
            boot.show_progress(message.text)

    @on(msg.LabReady)
    def _lab_ready(self, message: msg.LabReady) -> None:
        self.lab_status = ""
        session = IncidentSession.open(message.config, by="tui")
        self._adopt(session)
        scenario = message.endpoints.get("scenario", "")
        self.note(f"lab scenario {scenario} is ready", endpoints={k: message.endpoints.get(k) for k in (
            "nlb", "gateway", "gateway_admin", "aws_endpoint_url", "kubeconfig", "config")})
        self.config_changed.publish(self.config)
        self.switch_mode("probes")

    @on(msg.LabFailed)
    def _lab_failed(self, message: msg.LabFailed) -> None:
        self.lab_status = "lab failed"
        self.refresh_activity()
        boot = self._boot_screen()
        if boot is not None:
            boot.show_failure(message.error)
        else:
            self.show_error("The lab did not start", message.error)

    # --- target ---------------------------------------------------------------------------

    def set_config(self, config: TargetConfig) -> None:
        """The Setup screen changed the target: earlier observations no longer describe it."""
        if self.session is None:
            self._adopt(IncidentSession.open(config, by="tui"))
        elif config == self.config:
            return
        assert self.session is not None
        self.config = config
        self.probes.retarget()
        self.in_engine(self.session.retarget, config)
        self.observations.clear()
        self.findings = []
        self.fixes.reset()
        self.config_changed.publish(config)
        self.probes_changed.publish("")
        self.findings_changed.publish(self.findings)
        self.plan_changed.publish("")

    # --- probes and diagnosis (the state and the workers: screens/probeflow.py) ------------------

    @on(msg.ProbeStarted)
    @on(msg.ProbeFinished)
    @on(msg.ProbeCancelled)
    @on(msg.FindingsReady)
    def _probe_update(self, message: ProbeUpdate) -> None:
        self.probes.handle(message)

    # --- fixes (the state and the workers: screens/fixflow.py) ---------------------------------

    @on(msg.PlanReady)
    @on(msg.ApplyProgress)
    @on(msg.ApplyFinished)
    @on(msg.RollbackFinished)
    def _fix_update(self, message: FixUpdate) -> None:
        self.fixes.handle(message)

    # --- report ------------------------------------------------------------------------------

    def _report(self) -> Any:
        if self.report_backend is not None:
            return self.report_backend
        try:
            from . import report
        except ImportError as exc:
            raise PPDoctorError("the report module is not available in this build",
                                hint="update ppdoctor; the timeline (t) shows the incident meanwhile") from exc
        return report

    @work(thread=True, exclusive=True, exit_on_error=False, group="report-preview")
    def preview_report(self, fmt: str) -> None:
        session = self.session
        if session is None:
            return
        try:
            backend = self._report()
            text = self.engine.call(backend.render_report, session, fmt).result(timeout=30)
        except PPDoctorError as exc:
            text = f"(no preview: {exc})"
        self.post_message(msg.ReportPreview(fmt, text))

    @work(thread=True, exclusive=True, exit_on_error=False, group="report")
    def export_report(self, path: str) -> None:
        session = self.session
        if session is None:
            return
        backend = self._report()
        target = Path(path).expanduser()
        if self.is_web:
            from .report import report_format

            fmt = report_format(target)
            text = self.engine.call(backend.render_report, session, fmt).result(timeout=30)
            self.call_from_thread(self.deliver_text, io.StringIO(text), save_filename=target.name)
            self.post_message(msg.ReportWritten(f"download: {target.name}", len(text.encode())))
            return
        written = Path(self.engine.call(backend.write_report, session, target).result(timeout=30))
        size = written.stat().st_size if written.exists() else 0
        self.note(f"report written to {written}")
        self.post_message(msg.ReportWritten(str(written.resolve()), size))

    @on(msg.ReportPreview)
    @on(msg.ReportWritten)
    def _report_event(self, message: msg.ReportPreview | msg.ReportWritten) -> None:
        self.report_changed.publish(message)

    # --- bench ---------------------------------------------------------------------------------

    @on(msg.BenchStatus)
    @on(msg.BenchPlanned)
    @on(msg.BenchProgressed)
    @on(msg.BenchRunDone)
    @on(msg.BenchFinished)
    @on(msg.BenchFailed)
    def _bench_update(self, message: msg.BenchUpdate) -> None:
        if self.bench.handle(message) != "progress":
            self.refresh_activity()

    # --- timeline and failures -----------------------------------------------------------------

    @on(msg.TimelineEventAdded)
    def _timeline_event(self, message: msg.TimelineEventAdded) -> None:
        self.timeline.append(message.event)
        self.timeline_changed.publish(message.event)

    @on(Worker.StateChanged)
    def _worker_state(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state != WorkerState.ERROR:
            return
        error = worker.error
        if worker.group == "probes":
            self.probes.worker_failed((worker.name or "").removeprefix("probe "), error)
            return
        if worker.group == "apply":
            self.fixes.worker_failed()
        if worker.group == "bench":
            self.bench.failed(error or "unknown error")
            self.refresh_activity()
        self.show_error(WORKER_TITLES.get(worker.group, "Something failed"), error or "unknown error")

