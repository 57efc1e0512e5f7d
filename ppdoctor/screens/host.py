"""What screens and widgets may ask of the app that hosts them: a protocol, so they never import ``ppdoctor.app``.

The app (``ppdoctor.app.PPDoctorApp``) satisfies :class:`Host`; a lab it owns satisfies
:class:`LabLike` (``ppdoctor.lab.handle.LabHandle``, imported only on the ``--lab`` path).
The app's own key bindings live here too, so the help screen can list them without the app.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from textual.binding import Binding

__all__ = ["APP_BINDINGS", "Host", "LabLike"]

if TYPE_CHECKING:
    from textual.signal import Signal
    from textual.worker import Worker

    from ..config import TargetConfig
    from ..diagnosis.model import Finding
    from ..probes.model import Observation
    from ..session import IncidentSession, TimelineEvent
    from .benchctl import BenchController
    from .engine import EngineLoop
    from .fixflow import FixFlow
    from .probeflow import ProbeFlow
    from .messages import ReportPreview, ReportWritten

# Keys that work on every screen (the help screen lists them under "Everywhere").
APP_BINDINGS = [
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
    Binding("7", "go('pcap')", "Pcap", show=False, id="go.pcap",
            tooltip="Read a packet capture offline: flows by class and the findings it decides"),
    Binding("question_mark,f1", "help", "Help", id="app.help", key_display="?",
            tooltip="Keys of every screen and the workflow"),
    Binding("q", "quit", "Quit", id="app.quit", tooltip="Quit ppdoctor (a lab it started is torn down)"),
]


class LabLike(Protocol):
    """A lab the app started (and stops when it quits) or attached to."""

    scenario: str | None
    state_dir: Path
    owned: bool
    endpoints: dict[str, Any] | None

    @property
    def name(self) -> str: ...
    @property
    def running(self) -> bool: ...
    def start(self) -> dict[str, Any]: ...
    def start_config(self) -> TargetConfig: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...
    def sibling(self, scenario: str) -> LabLike: ...


class Host(Protocol):
    """The app as its screens see it: incident state (UI-thread copies), signals and commands."""

    # state
    session: IncidentSession | None
    config: TargetConfig
    observations: dict[str, Observation]
    findings: list[Finding]
    timeline: list[TimelineEvent]
    lab: LabLike | None
    cursor_blink: bool
    engine: EngineLoop
    probes: ProbeFlow
    fixes: FixFlow
    bench: BenchController
    # signals the screens subscribe to
    probes_changed: Signal[str]
    findings_changed: Signal[list[Finding]]
    plan_changed: Signal[str]
    timeline_changed: Signal[TimelineEvent]
    activity_changed: Signal[str]
    config_changed: Signal[TargetConfig]
    report_changed: Signal[ReportPreview | ReportWritten]
    bench_changed: Signal[str]

    @property
    def workers(self) -> Any: ...
    @property
    def current_mode(self) -> str: ...

    # commands
    def say(self, text: str, *, severity: str = ..., title: str = ..., timeout: float | None = ...) -> None: ...
    def show_error(self, title: str, error: BaseException | str) -> None: ...
    def note(self, summary: str, **data: Any) -> None: ...
    def activity_text(self) -> str: ...
    def refresh_activity(self) -> None: ...
    def in_engine(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None: ...
    def push_screen(self, screen: Any, callback: Callable[[Any], Any] | None = None) -> Any: ...
    async def push_screen_wait(self, screen: Any) -> Any: ...
    def switch_mode(self, mode: str) -> Any: ...
    def set_config(self, config: TargetConfig) -> None: ...
    def launch_lab(self, scenario: str | None) -> None: ...
    def preview_report(self, fmt: str) -> Any: ...
    def export_report(self, path: str) -> Any: ...
    def action_help(self) -> None: ...
    def post_message(self, message: Any) -> bool: ...
    def call_from_thread(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...
    def run_worker(self, work: Any, name: str | None = ..., group: str = ..., description: str = ...,
                   exit_on_error: bool = ..., start: bool = ..., exclusive: bool = ..., thread: bool = ...
                   ) -> Worker[Any]: ...

