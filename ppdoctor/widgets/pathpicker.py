"""The discovered-path picker: when discovery finds several gateway · port · NLB paths, the operator picks one."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from .safe import safe_text


def _prompt(candidate: Any) -> Text:
    # Text, never markup: names come from the cluster.
    return Text(f"{candidate.gateway.kind} {candidate.gateway.ref()}  ·  port {candidate.port}  ·  "
                f"NLB {candidate.nlb.get('name', '?')} ({candidate.nlb.get('scheme', '')})")


class PathPickerModal(ModalScreen[int | None]):
    """Lists the candidates; Enter picks one (dismissed with its index), Escape keeps the current target."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="pathpicker.cancel", tooltip="Keep the current target")]

    def __init__(self, candidates: list[Any], notes: list[str] | None = None) -> None:
        super().__init__(classes="dialog-screen")
        self.candidates = candidates
        self.notes = notes or []

    def compose(self) -> ComposeResult:
        with Vertical(id="pathpicker-dialog", classes="dialog"):
            yield Static(safe_text(f"{len(self.candidates)} client-IP paths found — choose one", "bold"),
                         id="pathpicker-title")
            yield OptionList(*[Option(_prompt(c), id=f"path-{i}") for i, c in enumerate(self.candidates)],
                             id="pathpicker-list")
            for note in self.notes:
                yield Static(safe_text(note, "yellow", multiline=True), classes="pathpicker-note")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option_index)

    def action_cancel(self) -> None:
        self.dismiss(None)


def offer_discovered_paths(screen: Any) -> None:
    """On the Setup screen: if start-up discovery left several candidates, ask which one to use."""
    app = screen.app
    discovery = getattr(app, "discovery", None)
    if discovery is None or getattr(app, "discovery_offered", False):
        return
    app.discovery_offered = True
    if not discovery.paths:
        for problem in discovery.problems:
            app.say(f"discovery: {problem.where}: {problem.message} — {problem.hint}", severity="warning", timeout=20)
        return
    if len(discovery.paths) == 1:
        app.say(f"discovered target: {discovery.paths[0].label()}")
        return

    def chosen(index: int | None) -> None:
        if index is None:
            return
        from ..discovery.target import candidate_config

        candidate = discovery.paths[index]
        app.set_config(candidate_config(candidate, app.config))
        app.say(f"target: {candidate.label()}")

    app.push_screen(PathPickerModal(discovery.paths, [*discovery.notes, *(p.message for p in discovery.problems)]),
                    chosen)
