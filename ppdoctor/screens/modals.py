"""Modal dialogs: ConfirmModal (nothing is written without an explicit yes) and ErrorModal."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from ..widgets.safe import safe_text
from . import sizes


class ConfirmModal(ModalScreen[bool]):
    """Shows exactly what will happen; Cancel has the focus, the confirm button says what it does."""

    HORIZONTAL_BREAKPOINTS = sizes.HORIZONTAL_BREAKPOINTS
    VERTICAL_BREAKPOINTS = sizes.VERTICAL_BREAKPOINTS
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="confirm.cancel", tooltip="Close without changing anything")]

    def __init__(self, title: str, lines: list[str], *, confirm_label: str = "Confirm", warning: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.lines = lines
        self.confirm_label = confirm_label
        self.warning = warning

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog", classes="dialog"):
            yield Static(safe_text(self.title_text, "bold"), id="confirm-title")
            with VerticalScroll(id="confirm-body"):
                for line in self.lines:
                    yield Static(safe_text(line, multiline=True), classes="confirm-line")
            if self.warning:
                yield Static(safe_text(self.warning, "yellow", multiline=True), id="confirm-warning")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button(self.confirm_label, id="confirm", variant="error")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(False)

    def action_cancel(self) -> None:
        self.dismiss(False)


class ErrorModal(ModalScreen[None]):
    HORIZONTAL_BREAKPOINTS = sizes.HORIZONTAL_BREAKPOINTS
    VERTICAL_BREAKPOINTS = sizes.VERTICAL_BREAKPOINTS
    BINDINGS = [Binding("escape,enter", "close", "Close", id="error.close", tooltip="Close this message")]

    def __init__(self, title: str, message: str) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(id="error-dialog", classes="dialog"):
            yield Static(safe_text(self.title_text, "bold red"), id="error-title")
            with VerticalScroll(id="error-body"):
                yield Static(safe_text(self.message, multiline=True, limit=4000), id="error-message")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Close", id="close", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)
