"""Before there is a target: the start screen (no target, offer the lab in one key) and the lab boot progress."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, LoadingIndicator, Log, Static
from textual.worker import Worker, WorkerState

from ..widgets.safe import safe_text
from . import sizes


class StartScreen(Screen[None]):
    """No target configured and no AWS credentials: say so, and offer the embedded lab."""

    HORIZONTAL_BREAKPOINTS = sizes.HORIZONTAL_BREAKPOINTS
    VERTICAL_BREAKPOINTS = sizes.VERTICAL_BREAKPOINTS
    BINDINGS = [
        Binding("l,L", "start_lab", "Start lab", id="start.lab",
                key_display="L", tooltip="Start the embedded lab with the highlighted scenario and open on it"),
        Binding("s,S", "setup", "Set up a target", id="start.setup", key_display="S", tooltip="Enter the target by hand"),
        Binding("q", "app.quit", "Quit", id="start.quit", tooltip="Quit ppdoctor"),
    ]

    def __init__(self, reason: str, scenarios: list[Any] | None = None) -> None:
        super().__init__()
        self.reason = reason
        self.scenarios = scenarios

    def compose(self) -> ComposeResult:
        with Vertical(id="start-body"):
            yield Static(Text("ppdoctor", style="bold"), id="start-title")
            yield Static(safe_text(self.reason, multiline=True), id="start-reason")
            yield Static(Text.assemble(("Press ", ""), ("L", "bold reverse"),
                                       (" to start the embedded lab (real Envoy, emulated NLB, moto AWS, an in-process "
                                        "Kubernetes API) with the highlighted scenario, or ", ""), ("S", "bold reverse"),
                                       (" to enter a target by hand.", "")), id="start-offer")
            table: DataTable[Text] = DataTable(id="scenario-table", cursor_type="row")
            table.border_title = "Lab scenarios"
            yield table
        yield Footer()

    def on_mount(self) -> None:
        if self.scenarios is None:
            self.load_scenarios()
        else:
            self._fill(self.scenarios)

    @work(thread=True, exclusive=True, exit_on_error=False, group="scenarios")
    def load_scenarios(self) -> None:
        from ..lab.scenario import list_scenarios

        self.app.call_from_thread(self._fill, list_scenarios())

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.app.show_error("Could not list the lab scenarios", event.worker.error or "unknown error")  # type: ignore[attr-defined]

    def _fill(self, scenarios: list[Any]) -> None:
        from ..lab.scenario import DEFAULT_SCENARIO

        self.scenarios = scenarios
        table = self.query_one("#scenario-table", DataTable)
        # Columns as wide as their longest cell, set here rather than measured by the table on its next idle:
        # filled from the worker's thread on a loaded machine that measurement did not always come, and the
        # names were cut to the header's width.
        table.clear(columns=True)
        for key, label, cells in (("name", "scenario", [s.name for s in scenarios]),
                                  ("description", "what it reproduces", [s.description for s in scenarios])):
            table.add_column(label, key=key, width=max([len(label), *(safe_text(c).cell_len for c in cells)]))
        for s in scenarios:
            table.add_row(safe_text(s.name, "bold"), safe_text(s.description), key=s.name)
        if DEFAULT_SCENARIO in table.rows:
            table.move_cursor(row=table.get_row_index(DEFAULT_SCENARIO))

    def selected(self) -> str | None:
        table = self.query_one("#scenario-table", DataTable)
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    @on(DataTable.RowSelected, "#scenario-table")
    def action_start_lab(self) -> None:
        self.app.launch_lab(self.selected())  # type: ignore[attr-defined]

    def action_setup(self) -> None:
        app = self.app
        app.set_config(app.config)  # type: ignore[attr-defined]
        app.switch_mode("setup")


class LabBootScreen(Screen[None]):
    """Progress while the lab starts (a few seconds); the error and what to do if it does not."""

    HORIZONTAL_BREAKPOINTS = sizes.HORIZONTAL_BREAKPOINTS
    VERTICAL_BREAKPOINTS = sizes.VERTICAL_BREAKPOINTS
    BINDINGS = [Binding("q", "app.quit", "Quit", id="boot.quit", tooltip="Quit (the lab is torn down)")]

    def __init__(self, scenario: str) -> None:
        super().__init__()
        self.scenario = scenario

    def compose(self) -> ComposeResult:
        with Vertical(id="boot-body"):
            yield Static(Text.assemble(("Starting the lab: ", "bold"), (self.scenario, "bold cyan")), id="boot-title")
            yield Static("Envoy, the NLB emulator, moto (AWS) and the Kubernetes API start on loopback addresses; "
                         "quitting ppdoctor stops them.", id="boot-explain")
            yield LoadingIndicator(id="boot-spinner")
            yield Log(id="boot-log")
        yield Footer()

    def show_progress(self, text: str) -> None:
        self.query_one("#boot-log", Log).write_line(text)

    def show_failure(self, error: str) -> None:
        self.query_one("#boot-spinner").display = False
        title = self.query_one("#boot-title", Static)
        title.update(Text("The lab did not start", style="bold red"))
        self.query_one("#boot-explain", Static).update(safe_text(error, multiline=True))
