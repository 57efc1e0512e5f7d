"""The Textual TUI: ``run_default`` (plain ``ppdoctor``), ``run_lab`` (``ppdoctor --lab``) and the app they run.

The app is a thin shell over the engine. It owns UI-side copies of the incident state
(observations, findings, plan, timeline) and starts the engine's work through workers; the
IncidentSession itself lives on the engine loop (``screens/engine.py``). Screens are modes
(Setup, Probes, Diagnosis, Fix, Report, Timeline, Bench) switched with 1–5, t and 6.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
import threading
import time
from importlib.resources import files
from pathlib import Path
from typing import Any, Callable

from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.screen import ModalScreen, Screen
from textual.signal import Signal
from textual.worker import Worker, WorkerState

from .config import TargetConfig, load_config
from .errors import LabError, PPDoctorError
from .probes import PROBES
from .probes.model import Observation, Status
from .screens import messages as msg
from .screens.benchctl import BenchController
from .screens.commands import PPDoctorCommands
from .screens.diagnosis import DiagnosisScreen
from .screens.engine import EngineLoop
from .screens.fix import FixScreen
from .screens.help import HelpScreen
from .screens.modals import ConfirmModal, ErrorModal
from .screens.probes import ProbesScreen
from .screens.report import ReportScreen
from .screens.setup import SetupScreen
from .screens.start import LabBootScreen, StartScreen
from .screens.timeline import TimelineScreen
from .session import IncidentSession, TimelineEvent
from .widgets.safe import clean

__all__ = ["PPDoctorApp", "LabHandle", "run_default", "run_lab", "target_configured", "aws_credentials_source"]

ATTACH_ENV = "PPDOCTOR_LAB_ATTACH"  # state dir of an already running lab (`ppdoctor lab up --detach`)
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


def _bench_screen() -> Screen[Any]:
    """The Bench screen, imported when first opened (its widgets are not needed at start-up)."""
    from .screens.bench import BenchScreen

    return BenchScreen()


def _css_path() -> str:
    return str(files("ppdoctor.assets").joinpath("ppdoctor.tcss"))


# --- what to open on -----------------------------------------------------------------------

def target_configured(config: TargetConfig) -> bool:
    """True when the config names something to probe (an NLB, AWS or Kubernetes settings)."""
    nlb, aws, kube = config.nlb, config.aws, config.kubernetes
    return bool(nlb.address or nlb.arn or nlb.name or aws.profile or aws.endpoint_url or aws.target_group_arns
                or kube.kubeconfig or kube.context)


def aws_credentials_source(env: dict[str, str] | None = None) -> str | None:
    """Where AWS credentials would come from, judged without boto3 and without the network (no IMDS query)."""
    env = dict(os.environ if env is None else env)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        if env.get(var):
            return f"${var}"
    home = Path(env.get("HOME") or Path.home())
    for var, default in (("AWS_SHARED_CREDENTIALS_FILE", home / ".aws" / "credentials"),
                         ("AWS_CONFIG_FILE", home / ".aws" / "config")):
        path = Path(env.get(var) or default)
        if path.is_file():
            return str(path)
    return None


# --- the lab the TUI may own -------------------------------------------------------------------

class LabHandle:
    """A lab the TUI starts and must stop, or (``attach``) an already running one it leaves alone."""

    def __init__(self, scenario: str | None, state_dir: Path, *, owned: bool = True,
                 endpoints: dict[str, Any] | None = None) -> None:
        self.scenario = scenario
        self.state_dir = state_dir
        self.owned = owned
        self.endpoints = endpoints
        self.proc: subprocess.Popen[bytes] | None = None
        self._closing = False
        self._lock = threading.Lock()

    @classmethod
    def attach(cls, state_dir: Path) -> "LabHandle":
        from .lab.cli import read_endpoints

        endpoints = read_endpoints(state_dir)
        if not endpoints:
            raise LabError(f"no running lab in {state_dir}", hint="start one with `ppdoctor lab up --detach --state-dir DIR`")
        return cls(endpoints.get("scenario"), state_dir, owned=False, endpoints=endpoints)

    @property
    def name(self) -> str:
        from .lab.scenario import DEFAULT_SCENARIO

        return self.scenario or DEFAULT_SCENARIO

    def start(self) -> dict[str, Any]:
        """Blocking (a worker thread): start the lab and wait until it is ready."""
        if self.endpoints is not None:
            return self.endpoints
        from .lab.cli import start_lab

        with self._lock:
            if self._closing:
                raise LabError("ppdoctor is quitting; the lab was not started")
        proc, endpoints = start_lab(self.scenario, self.state_dir, owner_pid=os.getpid(),
                                    scratch=self.state_dir.name.startswith("ppdoctor-lab-"))
        with self._lock:
            self.proc, self.endpoints = proc, endpoints
            closing = self._closing
        if closing:  # the app quit while the lab was starting
            self._stop_process(proc)
            raise LabError("ppdoctor quit while the lab was starting; it has been stopped")
        return endpoints

    def stop(self) -> None:
        """Tear the lab down (idempotent; also stops a lab that is still starting)."""
        with self._lock:
            self._closing = True
            proc = self.proc
        if not self.owned:
            return
        if proc is not None:
            self._stop_process(proc)
        else:
            from .lab.cli import stop_lab

            stop_lab(self.state_dir)  # a start in progress: the supervisor has written its pid file

    def _stop_process(self, proc: subprocess.Popen[bytes]) -> None:
        from .lab.cli import stop_lab

        stop_lab(self.state_dir, pid=proc.pid)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass


def _lab_state_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR")
    return Path(tempfile.mkdtemp(prefix="ppdoctor-lab-", dir=base if base and os.path.isdir(base) else None))


# --- the app ------------------------------------------------------------------------------------

class PPDoctorApp(App[int]):
    """ppdoctor's TUI. Pass a session to open on a target, or a LabHandle to start/attach a lab first."""

    TITLE = "ppdoctor"
    CSS_PATH = _css_path()
    COMMANDS = App.COMMANDS | {PPDoctorCommands}
    MODES = {
        "setup": SetupScreen,
        "probes": ProbesScreen,
        "diagnosis": DiagnosisScreen,
        "fix": FixScreen,
        "report": ReportScreen,
        "timeline": TimelineScreen,
        "bench": _bench_screen,
    }
    BINDINGS = [
        Binding("1", "go('setup')", "Setup", show=False, id="go.setup",
                tooltip="Target, kube context, AWS profile and the topology"),
        Binding("2", "go('probes')", "Probes", show=False, id="go.probes",
                tooltip="Run probes one by one or all at once; see their evidence"),
        Binding("3", "go('diagnosis')", "Diagnosis", show=False, id="go.diagnosis",
                tooltip="Findings ranked by severity and confidence, the PP × preservation matrix, the broken hop"),
        Binding("4", "go('fix')", "Fix", show=False, id="go.fix",
                tooltip="Plan a fix, confirm it, apply it, verify it, roll it back"),
        Binding("5", "go('report')", "Report", show=False, id="go.report",
                tooltip="Export the incident as Markdown, JSON or HTML"),
        Binding("t", "go('timeline')", "Timeline", show=False, id="go.timeline",
                tooltip="Every probe, finding and change of this incident, in order"),
        Binding("6", "go('bench')", "Bench", show=False, id="go.bench",
                tooltip="Does PROXY protocol v2 cost latency? PP off vs PP on under load"),
        Binding("question_mark,f1", "help", "Help", id="app.help", key_display="?",
                tooltip="Keys of every screen and the workflow"),
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Quit ppdoctor (a lab it started is torn down)"),
    ]

    def __init__(self, session: IncidentSession | None = None, *, lab: LabHandle | None = None,
                 landing: str | None = None, start_reason: str = "", scenarios: list[Any] | None = None,
                 report_backend: Any = None, cursor_blink: bool = True) -> None:
        super().__init__()
        self.engine = EngineLoop()
        self.session: IncidentSession | None = None
        self.config = TargetConfig()
        self.observations: dict[str, Observation] = {}
        self.findings: list[Any] = []
        self.timeline: list[TimelineEvent] = []
        self.plan: Any = None
        self.apply_result: Any = None
        self.apply_log: list[str] = []
        self.applying = False
        self.running: dict[str, float] = {}  # probe → monotonic start
        self.cancelled: set[str] = set()
        self._probe_workers: dict[str, Worker[Any]] = {}
        self._batch: set[str] = set()
        self._observed_version = 0
        self._diagnosed_version = -1
        self.lab = lab
        self.lab_status = ""
        self.landing = landing or ("probes" if lab else "setup")
        self.start_reason = start_reason
        self.scenarios = scenarios
        self.report_backend = report_backend
        self.cursor_blink = cursor_blink
        # Screens subscribe to these; payloads are UI-thread copies.
        self.probes_changed: Signal[str] = Signal(self, "probes-changed")
        self.findings_changed: Signal[list[Any]] = Signal(self, "findings-changed")
        self.plan_changed: Signal[str] = Signal(self, "plan-changed")
        self.timeline_changed: Signal[TimelineEvent] = Signal(self, "timeline-changed")
        self.activity_changed: Signal[str] = Signal(self, "activity-changed")
        self.config_changed: Signal[TargetConfig] = Signal(self, "config-changed")
        self.report_changed: Signal[Any] = Signal(self, "report-changed")
        self.bench_changed: Signal[str] = Signal(self, "bench-changed")
        self.bench = BenchController(self)
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
        self._observed_version = 1 if self.observations else 0
        self._diagnosed_version = self._observed_version if self.findings else -1
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

    @property
    def diagnosis_stale(self) -> bool:
        return bool(self.observations) and self._diagnosed_version != self._observed_version

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
            return self.session is not None and not isinstance(self.screen, ModalScreen)
        return True

    def action_go(self, mode: str) -> None:
        if self.session is None:
            self.say("start the lab (l) or configure a target first", severity="warning")
            return
        if isinstance(self.screen, ModalScreen):
            return
        self.switch_mode(mode)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_quit(self) -> None:  # type: ignore[override]
        if self.applying:
            self.push_screen(ConfirmModal("Quit while a fix is being applied?",
                                          ["ppdoctor waits up to 20 s for the change in flight to be written and "
                                           "journalled, then stops; its verification is not shown. "
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
        if self.running:
            parts.append(f"{len(self.running)} probe{'s' if len(self.running) != 1 else ''} running")
        if self.applying:
            parts.append("applying a fix")
        if self.bench.running:
            parts.append("bench running")
        if self.lab_status:
            parts.append(self.lab_status)
        return " · ".join(parts)

    def _activity(self) -> None:
        self.activity_changed.publish(self.activity_text())

    # --- lab ------------------------------------------------------------------------------

    def launch_lab(self, scenario: str | None) -> None:
        """From the start screen: start a lab this app owns, then open on it."""
        if self.lab is not None and self.lab.proc is not None:
            return
        self.lab = LabHandle(scenario, _lab_state_dir())
        self.push_screen(LabBootScreen(self.lab.name))
        self.start_lab_worker()

    @work(thread=True, exclusive=True, exit_on_error=False, group="lab")
    def start_lab_worker(self) -> None:
        assert self.lab is not None
        self.post_message(msg.LabProgress(f"starting lab scenario {self.lab.name} in {self.lab.state_dir}"))
        t0 = time.monotonic()
        try:
            endpoints = self.lab.start()
            config = load_config(endpoints["config"], env={})  # the lab's config is complete: no env overrides
        except PPDoctorError as exc:
            self.post_message(msg.LabFailed(str(exc)))
            return
        self.post_message(msg.LabProgress(f"lab ready after {time.monotonic() - t0:.1f} s"))
        self.post_message(msg.LabReady(endpoints, config))

    def _boot_screen(self) -> LabBootScreen | None:
        for screen in reversed(self.screen_stack):
            if isinstance(screen, LabBootScreen):
                return screen
        return None

    @on(msg.LabProgress)
    def _lab_progress(self, message: msg.LabProgress) -> None:
        self.lab_status = "" if message.text.startswith("lab ready") else "lab starting"
        self._activity()
        boot = self._boot_screen()
        if boot is not None:
            boot.show_progress(message.text)

    @on(msg.LabReady)
    def _lab_ready(self, message: msg.LabReady) -> None:
        self.lab_status = ""
        session = IncidentSession(message.config)
        self._adopt(session)
        scenario = message.endpoints.get("scenario", "")
        self.note(f"lab scenario {scenario} is ready", endpoints={k: message.endpoints.get(k) for k in (
            "nlb", "gateway", "gateway_admin", "aws_endpoint_url", "kubeconfig", "config")})
        self.config_changed.publish(self.config)
        self.switch_mode("probes")

    @on(msg.LabFailed)
    def _lab_failed(self, message: msg.LabFailed) -> None:
        self.lab_status = "lab failed"
        self._activity()
        boot = self._boot_screen()
        if boot is not None:
            boot.show_failure(message.error)
        else:
            self.show_error("The lab did not start", message.error)

    # --- target ---------------------------------------------------------------------------

    def set_config(self, config: TargetConfig) -> None:
        """The Setup screen changed the target: earlier observations no longer describe it."""
        if self.session is None:
            self._adopt(IncidentSession(config))
        elif config == self.config:
            return
        session = self.session
        assert session is not None
        self.config = config
        for name in list(self._probe_workers):
            self.cancel_probe(name, quiet=True)

        def retarget() -> None:
            session.config = config
            session.observations.clear()
            session.findings = []
            session.record("note", f"target changed: {config.name} ({config.nlb.address or config.nlb.arn or 'no NLB address'})")

        self.in_engine(retarget)
        self.observations.clear()
        self.findings = []
        self.plan = None
        self._observed_version += 1
        self.config_changed.publish(config)
        self.probes_changed.publish("")
        self.findings_changed.publish(self.findings)
        self.plan_changed.publish("")

    # --- probes ---------------------------------------------------------------------------

    def start_probe(self, name: str) -> bool:
        if self.session is None or name not in PROBES:
            return False
        if name in self.running:
            self.say(f"{name} is already running (c cancels it)", severity="warning")
            return False
        self.cancelled.discard(name)
        self.running[name] = time.monotonic()
        worker = self.run_worker(self._probe(name), name=f"probe {name}", group="probes", exit_on_error=False)
        self._probe_workers[name] = worker
        self.post_message(msg.ProbeStarted(name))
        return True

    def start_probes(self, names: list[str] | None = None) -> int:
        """Run several probes concurrently; diagnose when the last of them ends."""
        started = [n for n in (names or list(PROBES)) if n not in self.running and self.start_probe(n)]
        self._batch.update(started)
        if started:
            self.say(f"running {len(started)} probe(s)")
        return len(started)

    async def _probe(self, name: str) -> None:
        assert self.session is not None
        observation = await self.engine.run(self.session.probe(name))
        self.post_message(msg.ProbeFinished(observation))

    def cancel_probe(self, name: str, *, quiet: bool = False) -> bool:
        worker = self._probe_workers.pop(name, None)
        if worker is None or name not in self.running:
            return False
        worker.cancel()
        self.running.pop(name, None)
        self._batch.discard(name)
        self.cancelled.add(name)
        self.note(f"{name}: cancelled by the operator")
        self.post_message(msg.ProbeCancelled(name))
        if not quiet:
            self.say(f"{name} cancelled")
        return True

    def cancel_all_probes(self) -> int:
        return sum(self.cancel_probe(name, quiet=True) for name in list(self.running))

    @on(msg.ProbeStarted)
    def _probe_started(self, message: msg.ProbeStarted) -> None:
        self.probes_changed.publish(message.name)
        self._activity()

    @on(msg.ProbeFinished)
    def _probe_finished(self, message: msg.ProbeFinished) -> None:
        obs = message.observation
        name = obs.probe
        if name in self.cancelled and name not in self.running:
            return  # a result that raced the cancellation
        self.running.pop(name, None)
        self._probe_workers.pop(name, None)
        self.observations[name] = obs
        self._observed_version += 1
        session = self.session
        if session is not None:
            # Observations posted from elsewhere (tests, replays) join the session too.
            self.in_engine(lambda: session.observations.setdefault(name, obs))
        self.probes_changed.publish(name)
        self._activity()
        if name in self._batch:
            self._batch.discard(name)
            if not self._batch:
                self.run_diagnosis()

    @on(msg.ProbeCancelled)
    def _probe_cancelled(self, message: msg.ProbeCancelled) -> None:
        self.probes_changed.publish(message.name)
        self._activity()
        if not self._batch and self.diagnosis_stale:
            self.run_diagnosis()

    # --- diagnosis --------------------------------------------------------------------------

    @work(exclusive=True, exit_on_error=False, group="diagnosis")
    async def run_diagnosis(self) -> None:
        if self.session is None:
            return
        session = self.session
        version = self._observed_version

        async def diagnose() -> list[Any]:
            return session.diagnose()

        findings = await self.engine.run(diagnose())
        self._diagnosed_version = version
        self.post_message(msg.FindingsReady(findings))

    @on(msg.FindingsReady)
    def _findings_ready(self, message: msg.FindingsReady) -> None:
        self.findings = list(message.findings)
        if not self.observations:
            self._diagnosed_version = self._observed_version
        self.findings_changed.publish(self.findings)

    def suggested_fixes(self) -> list[tuple[str, str]]:
        """(fix id, finding id) for the actionable findings, in rank order."""
        out: list[tuple[str, str]] = []
        for finding in self.findings:
            if finding.superseded_by is None and finding.severity in ("error", "warning", "info"):
                for fix in finding.fixes:
                    if fix not in [f for f, _ in out]:
                        out.append((fix, finding.id))
        return out

    # --- fixes -------------------------------------------------------------------------------

    @work(exclusive=True, exit_on_error=False, group="plan")
    async def plan_fix(self, fix_id: str) -> None:
        if self.session is None:
            return
        if self.applying:
            self.say("a fix is being applied: plan the next one once it has finished", severity="warning")
            return
        self.plan, self.apply_result, self.apply_log = None, None, []
        self.plan_changed.publish("planning")
        plan = await self.engine.run(self.session.plan(fix_id))
        self.post_message(msg.PlanReady(plan))

    @on(msg.PlanReady)
    def _plan_ready(self, message: msg.PlanReady) -> None:
        self.plan = message.plan
        self.apply_result = None
        self.apply_log = []
        self.plan_changed.publish(getattr(self.plan, "id", ""))

    def request_apply(self) -> None:
        plan = self.plan
        if plan is None:
            self.say("no plan yet: pick a fix and press Enter to plan it", severity="warning")
            return
        if self.applying:
            self.say("a fix is already being applied", severity="warning")
            return
        if self.apply_result is not None:
            self.say(f"{plan.id} was already applied; plan it again to apply it once more", severity="warning")
            return
        if self.bench.running:
            self.say("a bench is running: its numbers would mix the states before and after the fix — stop it "
                     "(ctrl+x on the Bench screen) or let it finish, then apply", severity="warning")
            return
        if not plan.changes:
            self.say(f"{plan.id}: nothing to change — the live state already matches", severity="information")
            return
        n = len(plan.changes)
        self.push_screen(
            ConfirmModal(f"Apply {plan.id} to {self.config.name}?", plan_lines(plan),
                         confirm_label=f"Apply {n} change{'s' if n != 1 else ''}",
                         warning="These writes go to the live AWS / Kubernetes APIs of the target above."),
            lambda ok: self._apply_confirmed(plan, bool(ok)))

    def _apply_confirmed(self, plan: Any, ok: bool) -> None:
        if not ok:
            self.note(f"{plan.id}: declined by the operator; nothing was changed")
            self.say(f"{plan.id} declined: nothing was changed")
            return
        if self.applying:
            self.say("a fix is already being applied", severity="warning")
            return
        self.applying = True
        self.apply_log = []
        self._activity()
        self.apply_plan(plan)

    @work(exclusive=True, exit_on_error=False, group="apply")
    async def apply_plan(self, plan: Any) -> None:
        assert self.session is not None
        try:
            result = await self.engine.run(
                self.session.apply(plan, on_progress=lambda text: self.post_message(msg.ApplyProgress(text))),
                protect=True)
        finally:
            self.applying = False
        self.post_message(msg.ApplyFinished(result))

    @on(msg.ApplyProgress)
    def _apply_progress(self, message: msg.ApplyProgress) -> None:
        self.apply_log.append(message.text)
        self.plan_changed.publish("progress")

    @on(msg.ApplyFinished)
    def _apply_finished(self, message: msg.ApplyFinished) -> None:
        result = message.result
        self.applying = False
        self.apply_result = result
        self._activity()
        if result.completed:
            checks = ", ".join(f"{v.check} {'passed' if v.passed else 'FAILED'}" for v in result.verifications)
            self.apply_log.append(f"done: {len(result.applied)} change(s) applied" + (f"; {checks}" if checks else ""))
            self.say(f"{result.plan.id} applied and verified; re-running the probes", title="Fix applied")
            self.start_probes()
        else:
            self.apply_log.append(f"stopped: {result.error}")
            self.show_error(f"{result.plan.id} stopped", f"{result.error}\n\nApplied: "
                            + ("; ".join(f"{c.object} {c.field}" for c in result.applied) or "nothing")
                            + "\nRoll back with r on the Fix screen.")
        self.plan_changed.publish("result")

    def request_rollback(self) -> None:
        """Ask, then roll back every applied change of the journal (never while a fix is being applied)."""
        if self.session is None:
            return
        if self.applying:
            self.say("a fix is being applied: roll back once it has finished", severity="warning")
            return
        self._rollback()

    @work(exclusive=True, exit_on_error=False, group="apply")
    async def _rollback(self) -> None:
        if self.session is None:
            return
        from .fixes import journal_path, load_journal
        from .probes.context import ProbeContext

        config = self.config
        entries = await self.engine.run(_in_engine(
            lambda: [e for e in load_journal(journal_path(ProbeContext(config))) if e.get("status") == "applied"]))
        if not entries:
            self.say("nothing to roll back: the change journal has no applied change for this target")
            return
        lines = [f"{e.get('object')}\n   {e.get('field')}: {_short(e.get('after'))} → {_short(e.get('before'))}"
                 for e in reversed(entries)]
        ok = await self.push_screen_wait(ConfirmModal(
            f"Roll back {len(entries)} change(s)?", lines, confirm_label=f"Roll back {len(entries)}",
            warning="Restores every before-value from the change journal, newest first."))
        if not ok:
            self.note("rollback declined by the operator; nothing was changed")
            return
        self.applying = True
        self._activity()
        try:
            done, failed = await self.engine.run(self.session.rollback(), protect=True)
        finally:
            self.applying = False
        self.post_message(msg.RollbackFinished(done, failed))

    @on(msg.RollbackFinished)
    def _rollback_finished(self, message: msg.RollbackFinished) -> None:
        self._activity()
        self.apply_log.append(f"rolled back {len(message.done)} change(s)"
                              + (f"; {len(message.failed)} failed" if message.failed else ""))
        if message.failed:
            self.show_error("Rollback incomplete", str(message.failed[0].get("error") or message.failed[0]))
        else:
            self.say(f"rolled back {len(message.done)} change(s); re-running the probes")
            self.start_probes()
        self.apply_result = None
        self.plan_changed.publish("rollback")

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
            fmt = {".md": "md", ".json": "json", ".html": "html", ".htm": "html"}.get(target.suffix.lower(), "md")
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

    @on(msg.BenchUpdate)
    def _bench_update(self, message: msg.BenchUpdate) -> None:
        self.bench.handle(message)
        if message.kind != "progress":
            self._activity()

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
            name = (worker.name or "").removeprefix("probe ")
            obs = Observation(name, status=Status.ERROR, summary=f"the probe could not run: {error}")
            obs.error = {"kind": "ui", "message": str(error)}
            self.post_message(msg.ProbeFinished(obs))
            return
        if worker.group == "apply":
            self.applying = False
            self._activity()
        if worker.group == "bench":
            self.bench.failed(error or "unknown error")
            self._activity()
        self.show_error(WORKER_TITLES.get(worker.group, "Something failed"), error or "unknown error")


def plan_lines(plan: Any) -> list[str]:
    """The exact changes of a plan, one block each, for the confirmation modal."""
    lines = []
    for i, change in enumerate(plan.changes, 1):
        block = [f"{i}. {change.object}", f"   {change.field}:",
                 f"     before: {'(absent)' if change.before is None else _short(change.before, 400)}",
                 f"     after:  {'(absent)' if change.after is None else _short(change.after, 400)}",
                 f"   via {change.api_call}"]
        if change.note:
            block.append(f"   note: {change.note}")
        lines.append("\n".join(block))
    if plan.window:
        lines.append(f"window: {plan.window}")
    return lines


def _short(value: Any, limit: int = 160) -> str:
    from .widgets.safe import show_value

    text = show_value(value)
    return text if len(text) <= limit else text[:limit] + "…"


async def _in_engine(fn: Callable[[], Any]) -> Any:
    return fn()


# --- entry points ----------------------------------------------------------------------------------

def _missing_target_reason(config: TargetConfig, path: str | None) -> str:
    from .config import default_config_path

    where = path or str(default_config_path())
    source = config.path or f"no config file ({where} does not exist)"
    return (f"No target is configured — {source}: no nlb.address and no AWS or Kubernetes settings — "
            "and no AWS credentials were found (AWS_PROFILE, AWS_ACCESS_KEY_ID, ~/.aws/credentials, ~/.aws/config).")


def run_default(args: Any) -> int:
    """``ppdoctor`` without a sub-command: open on the configured target, or offer the lab."""
    config_path = getattr(args, "config", None)
    config = load_config(config_path)
    if target_configured(config) or aws_credentials_source() is not None:
        from .discovery.target import discover_for_tui

        config, discovery = discover_for_tui(config_path, config)  # one path: used; several: Setup's picker
        app = PPDoctorApp(IncidentSession(config), landing="setup")
        app.discovery = discovery
    else:
        app = PPDoctorApp(start_reason=_missing_target_reason(config, config_path))
    try:
        result = app.run()
    finally:
        app.engine.close()
        app.bench.close()
        if app.lab is not None:
            app.lab.stop()
            _remove_state_dir(app.lab)
    return int(result or app.return_code or 0)


def run_lab(args: Any) -> int:
    """``ppdoctor --lab [--scenario NAME]``: start the lab, open the TUI on it, tear it down on quit.

    With ``$PPDOCTOR_LAB_ATTACH=DIR`` the TUI attaches to a lab already running from DIR
    (``ppdoctor lab up --detach --state-dir DIR``) and leaves it running.
    """
    from .lab.scenario import load_scenario

    attach = os.environ.get(ATTACH_ENV)
    if attach:
        lab = LabHandle.attach(Path(attach))
    else:
        load_scenario(getattr(args, "scenario", None))  # a bad name fails here, with the list of names
        lab = LabHandle(getattr(args, "scenario", None), _lab_state_dir())
    app = PPDoctorApp(lab=lab)
    try:
        result = app.run()
    finally:
        app.engine.close()
        app.bench.close()
        lab.stop()
        _remove_state_dir(lab)
    return int(result or app.return_code or 0)


def _remove_state_dir(lab: LabHandle) -> None:
    if lab.owned and lab.endpoints is not None and lab.state_dir.name.startswith("ppdoctor-lab-"):
        shutil.rmtree(lab.state_dir, ignore_errors=True)
