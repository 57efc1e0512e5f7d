"""Probes: every probe with its live status; run one (Enter), all (a), cancel (c); the evidence of the highlighted one."""

from __future__ import annotations

import time

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable

from ..probes import PROBES
from ..widgets.evidence import EvidencePane, format_ms, status_text
from ..widgets.safe import copy_json, safe_text
from .base import WorkflowScreen

SUMMARY_WIDTH = 200


class ProbesScreen(WorkflowScreen):
    MODE = "probes"
    HELP = ("Each probe tests one thing and keeps its raw evidence. Run them one by one to follow the path "
            "(tcp → http-via-nlb → direct-plain/direct-ppv2 …) or all at once; the UI stays usable while a probe "
            "waits for a timeout, and c cancels it. Running all probes ends with a diagnosis.")
    BINDINGS = [
        Binding("r", "run_selected", "Run", id="probes.run", tooltip="Run the highlighted probe (Enter too)"),
        Binding("a", "run_all", "Run all", id="probes.run_all",
                tooltip="Run every probe concurrently, then diagnose"),
        Binding("c", "cancel", "Cancel", id="probes.cancel",
                tooltip="Cancel the highlighted probe if it runs, otherwise every running probe"),
        Binding("d", "diagnose", "Diagnose", id="probes.diagnose",
                tooltip="Diagnose from what has been observed so far and show the findings"),
        Binding("e", "focus_evidence", "Evidence", id="probes.evidence", tooltip="Move the focus to the evidence pane"),
        Binding("y", "copy", "Copy", id="probes.copy",
                tooltip="Copy the highlighted probe's whole observation (JSON: evidence, facts, timings) to the clipboard"),
    ]

    def compose_body(self) -> ComposeResult:
        table: DataTable[Text] = DataTable(id="probe-table", cursor_type="row", zebra_stripes=True)
        table.border_title = "Probes"
        yield table
        yield EvidencePane(id="evidence")

    def on_mount(self) -> None:
        table = self.query_one("#probe-table", DataTable)
        table.add_column("probe", key="probe", width=13)
        table.add_column("status", key="status", width=18)
        table.add_column("time", key="time", width=8)
        table.add_column("summary", key="summary")
        for name in PROBES:
            table.add_row(*self._cells(name), key=name)
        self.ppd.probes_changed.subscribe(self, self._probe_changed)
        self.set_interval(0.5, self._tick)
        self._show_evidence()

    def _cells(self, name: str) -> tuple[Text, Text, Text, Text]:
        app = self.ppd
        obs = app.observations.get(name)
        if name in app.probes.running:
            elapsed = time.monotonic() - app.probes.running[name]
            return Text(name, style="bold"), status_text("running"), Text(f"{elapsed:.1f} s", style="cyan"), \
                Text(PROBES[name].description, style="dim", no_wrap=True, overflow="ellipsis")
        if obs is None:
            state = "cancelled" if name in app.probes.cancelled else "not run"
            return Text(name, style="bold"), status_text(state), Text(""), \
                Text(PROBES[name].description, style="dim", no_wrap=True, overflow="ellipsis")
        status = status_text(obs.status.value)
        if obs.status.value in ("fail", "error") and obs.failure_class is not None and obs.failure_class.value != "ok":
            status.append(f" {obs.failure_class.value}", style="")
        if name in app.probes.cancelled:
            status = status_text("cancelled")
        took = obs.timings_ms.get("probe")
        summary = safe_text(obs.summary, limit=SUMMARY_WIDTH)
        summary.no_wrap, summary.overflow = True, "ellipsis"
        return Text(name, style="bold"), status, Text(format_ms(took) if took is not None else ""), summary

    def _refresh_row(self, name: str) -> None:
        table = self.query_one("#probe-table", DataTable)
        if name not in table.rows:
            return
        for key, value in zip(("probe", "status", "time", "summary"), self._cells(name), strict=True):
            table.update_cell(name, key, value)

    def _probe_changed(self, name: str) -> None:
        names = [name] if name else list(PROBES)
        for each in names:
            self._refresh_row(each)
        if not name or name == self.selected:
            self._show_evidence()

    def _tick(self) -> None:
        for name in list(self.ppd.probes.running):
            self._refresh_row(name)

    @property
    def selected(self) -> str:
        table = self.query_one("#probe-table", DataTable)
        if not table.row_count:
            return next(iter(PROBES))
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(key.value)

    def _show_evidence(self) -> None:
        name = self.selected
        info = PROBES[name]
        app = self.ppd
        state = "running" if name in app.probes.running else "cancelled" if name in app.probes.cancelled else "idle"
        self.query_one(EvidencePane).show(name, info.description, info.needs, app.observations.get(name), state)

    @on(DataTable.RowHighlighted, "#probe-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_evidence()

    @on(DataTable.RowSelected, "#probe-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.ppd.probes.start(str(event.row_key.value))

    def action_run_selected(self) -> None:
        self.ppd.probes.start(self.selected)

    def action_run_all(self) -> None:
        if not self.ppd.probes.start_all():
            self.ppd.say("every probe is already running", severity="warning")

    def action_cancel(self) -> None:
        app = self.ppd
        if app.probes.cancel(self.selected):
            return
        count = app.probes.cancel_all()
        app.say(f"cancelled {count} running probe(s)" if count else "no probe is running")

    def action_diagnose(self) -> None:
        if not self.ppd.observations:
            self.ppd.say("nothing observed yet: run a probe first (Enter, or a for all)", severity="warning")
            return
        self.ppd.probes.diagnose()
        self.ppd.switch_mode("diagnosis")

    def action_focus_evidence(self) -> None:
        self.query_one(EvidencePane).focus()

    def action_copy(self) -> None:
        obs = self.ppd.observations.get(self.selected)
        if obs is None:
            self.ppd.say(f"{self.selected} has not run yet: nothing to copy", severity="warning")
            return
        copy_json(self, obs.as_dict(), f"{self.selected}: the observation is on the clipboard")
