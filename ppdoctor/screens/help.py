"""Help: the workflow and the keys of every screen, generated from the bindings so it never drifts."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static
from . import sizes

from .host import APP_BINDINGS

WORKFLOW = ("Setup → Probes → Diagnosis → Fix → Report. Probe the path (each probe keeps its raw evidence), read "
            "the findings (ranked, each with the facts it rests on), plan a fix (reads the live state, writes "
            "nothing), confirm it explicitly, watch it apply and verify, roll it back if needed, and export the "
            "incident. Bench (6) measures what PROXY protocol v2 costs under load, PP off vs PP on. ctrl+p opens the command palette with every action. Remote text (headers, annotations, pod "
            "names, errors) is always shown literally.")


def _key(binding: Binding) -> str:
    if binding.key_display:
        return binding.key_display
    return " / ".join(k.strip().replace("question_mark", "?") for k in binding.key.split(","))


def bindings_text() -> Text:
    from .bench import BenchScreen
    from .diagnosis import DiagnosisScreen
    from .fix import FixScreen
    from .probes import ProbesScreen
    from .report import ReportScreen
    from .setup import SetupScreen
    from .timeline import TimelineScreen

    text = Text()
    sections = [("Everywhere", None, APP_BINDINGS)] + [
        (cls.__name__.removesuffix("Screen"), cls.HELP, cls.BINDINGS)
        for cls in (SetupScreen, ProbesScreen, DiagnosisScreen, FixScreen, ReportScreen, TimelineScreen,
                                                  BenchScreen)]
    for title, help_text, bindings in sections:
        text.append(f"\n{title}\n", style="bold underline")
        if help_text:
            text.append(help_text + "\n", style="italic")
        for binding in bindings:
            if not isinstance(binding, Binding):
                continue
            text.append(f"  {_key(binding):<14}", style="bold cyan")
            text.append(f"{binding.description or binding.action:<16}")
            text.append(f"{binding.tooltip}\n", style="dim")
    text.append("\n  ctrl+p        ", style="bold cyan")
    text.append("Commands        every action, searchable\n")
    return text


class HelpScreen(ModalScreen[None]):
    HORIZONTAL_BREAKPOINTS = sizes.HORIZONTAL_BREAKPOINTS
    VERTICAL_BREAKPOINTS = sizes.VERTICAL_BREAKPOINTS
    BINDINGS = [Binding("escape,q,question_mark,f1", "close", "Close", id="help.close", tooltip="Close the help")]

    def __init__(self) -> None:
        super().__init__(classes="dialog-screen")

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog", classes="dialog"):
            yield Static(Text("ppdoctor — keys and workflow", style="bold"), id="help-title")
            with VerticalScroll(id="help-body"):
                yield Static(Text(WORKFLOW), id="help-workflow")
                yield Static(bindings_text(), id="help-keys")

    def action_close(self) -> None:
        self.dismiss(None)
