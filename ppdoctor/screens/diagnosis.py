"""Diagnosis: findings ranked, the evidence and confirm lines of the highlighted one, the 2×2 matrix, the broken hop."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable

from ..diagnosis.engine import FactView
from ..fixes.model import FIX_TITLES
from ..widgets.findings import FindingDetail, severity_text
from ..widgets.matrix import ModeMatrix
from ..widgets.safe import copy_json, safe_text
from ..widgets.topology import PathView
from .base import WorkflowScreen


class DiagnosisScreen(WorkflowScreen):
    MODE = "diagnosis"
    HELP = ("Findings come from the facts the probes established, ranked by severity and confidence; a finding "
            "that another explains is marked superseded. Each lists the facts it rests on and which probe would "
            "confirm what is still missing. The matrix shows the target group's preservation × PROXY protocol "
            "cell; the path shows where the traffic breaks.")
    BINDINGS = [
        Binding("f", "fix", "Plan fix", id="diagnosis.fix",
                tooltip="Plan the first fix of the highlighted finding (reads the live state; changes nothing)"),
        Binding("d", "rediagnose", "Re-diagnose", id="diagnosis.rerun",
                tooltip="Run the rules again on the current observations"),
        Binding("a", "run_all", "Run all probes", id="diagnosis.run_all",
                tooltip="Run every probe again; the diagnosis follows"),
        Binding("p", "toggle('-show-path')", "Path", id="diagnosis.path",
                tooltip="Show or hide the traffic path (hidden by default below 30 rows)"),
        Binding("m", "toggle('-show-matrix')", "Matrix", id="diagnosis.matrix",
                tooltip="Show or hide the preservation × PROXY matrix (beside the finding from 120×30)"),
        Binding("y", "copy", "Copy", id="diagnosis.copy",
                tooltip="Copy the highlighted finding with all its evidence (JSON) to the clipboard"),
    ]

    def compose_body(self) -> ComposeResult:
        table: DataTable[Text] = DataTable(id="finding-table", cursor_type="row", zebra_stripes=True)
        table.border_title = "Findings"
        yield table
        with Horizontal(id="diag-middle"):
            yield FindingDetail(id="finding-detail")
            yield ModeMatrix(id="matrix")
        path = PathView(id="diag-path")
        path.border_title = "Traffic path — where it breaks"
        yield path

    def on_mount(self) -> None:
        table = self.query_one("#finding-table", DataTable)
        table.add_column("id", key="id", width=7)
        table.add_column("severity", key="severity", width=8)
        table.add_column("conf.", key="confidence", width=5)
        table.add_column("title", key="title")
        self.ppd.findings_changed.subscribe(self, lambda _f: self._refresh())
        self.ppd.probes_changed.subscribe(self, lambda _n: self._refresh_facts())
        self._refresh()

    def on_screen_resume(self) -> None:
        if self.ppd.probes.stale:
            self.ppd.probes.diagnose()

    def _refresh(self) -> None:
        table = self.query_one("#finding-table", DataTable)
        findings = self.ppd.findings
        table.clear()
        for finding in findings:
            dim = "dim" if finding.superseded_by else ""
            title = safe_text(finding.title, dim)
            if finding.superseded_by:
                title.append_text(safe_text(f" (superseded by {finding.superseded_by})", "dim italic"))
            table.add_row(safe_text(finding.id, "bold " + dim), severity_text(finding.severity),
                          Text(f"{finding.confidence:.0%}", style=dim), title, key=finding.id)
        if findings:
            table.move_cursor(row=0)
        self._show_selected()

    def _refresh_facts(self) -> None:
        self._show_selected()

    def selected(self) -> Any | None:
        table = self.query_one("#finding-table", DataTable)
        findings = self.ppd.findings
        if not findings or not table.row_count:
            return None
        key = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        return next((f for f in findings if f.id == key), findings[0])

    def _show_selected(self) -> None:
        app = self.ppd
        finding = self.selected()
        if not app.observations:
            empty = "No probes have run yet: press a to run every probe, or 2 to run them one by one."
        elif app.probes.stale:
            empty = "Diagnosing…"
        else:
            empty = "No finding: the rules found nothing wrong with the facts observed so far."
        self.query_one(FindingDetail).show(finding, FIX_TITLES, empty)
        facts = FactView(app.observations.values())
        self.query_one(ModeMatrix).show(facts)
        self.query_one(PathView).show(app.config, facts, finding.id if finding and not finding.superseded_by else None)

    @on(DataTable.RowHighlighted, "#finding-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_selected()

    @on(DataTable.RowSelected, "#finding-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.action_fix()

    def action_fix(self) -> None:
        finding = self.selected()
        if finding is None or not finding.fixes:
            self.ppd.say("the highlighted finding has no fix to plan", severity="warning")
            return
        self.ppd.fixes.plan_fix(finding.fixes[0])
        self.ppd.switch_mode("fix")

    def action_rediagnose(self) -> None:
        if not self.ppd.observations:
            self.ppd.say("nothing observed yet: press a to run every probe", severity="warning")
            return
        self.ppd.probes.diagnose()

    def action_run_all(self) -> None:
        self.ppd.probes.start_all()

    def action_toggle(self, name: str) -> None:
        self.toggle_class(name)

    def action_copy(self) -> None:
        finding = self.selected()
        if finding is None:
            self.ppd.say("no finding to copy", severity="warning")
            return
        copy_json(self, finding.as_dict(), f"{finding.id} copied to the clipboard")
