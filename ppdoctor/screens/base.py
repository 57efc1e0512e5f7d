"""What every workflow screen shares: the navigation bar on top, the footer with its keys below."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Input

from ..widgets.nav import NavBar
from . import sizes

if TYPE_CHECKING:
    from .host import Host


class WorkflowScreen(Screen[Any]):
    HORIZONTAL_BREAKPOINTS = sizes.HORIZONTAL_BREAKPOINTS
    VERTICAL_BREAKPOINTS = sizes.VERTICAL_BREAKPOINTS
    MODE = ""
    HELP = ""  # a paragraph for the help screen

    @property
    def ppd(self) -> Host:
        """The hosting app, typed by what screens may ask of it (never ``ppdoctor.app`` itself)."""
        return self.app  # type: ignore[return-value]

    def follow_cursor_blink(self) -> None:
        """Every text input blinks as the app says (tests and snapshots turn blinking off: a blinking cursor is
        drawn or not depending on when the screen is looked at)."""
        for widget in self.query(Input):
            widget.cursor_blink = self.ppd.cursor_blink

    def compose(self) -> ComposeResult:
        yield NavBar(self.MODE)
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        return iter(())
