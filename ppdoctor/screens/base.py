"""What every workflow screen shares: the navigation bar on top, the footer with its keys below."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

from ..widgets.nav import NavBar

if TYPE_CHECKING:
    from ..app import PPDoctorApp


class WorkflowScreen(Screen[Any]):
    # Size classes the stylesheet lays each screen out by (assets/ppdoctor.tcss): 80×24 is -narrow -short.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-medium"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-mid"), (40, "-tall")]
    MODE = ""
    HELP = ""  # a paragraph for the help screen

    @property
    def ppd(self) -> "PPDoctorApp":
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield NavBar(self.MODE)
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        return iter(())
