"""Fix: pick a fix, see its plan (each change before → after), confirm, watch it apply and verify, roll back."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, DataTable

from ..fixes.choose import suggest_fixes
from ..fixes.model import FIX_TITLES
from ..widgets.plan import PlanView
from ..widgets.safe import copy_json, safe_text
from .base import WorkflowScreen


class FixScreen(WorkflowScreen):
    MODE = "fix"
    HELP = ("Fixes are data: a plan lists every change (object, field, before → after) and the API call it makes. "
            "Planning reads the live state and writes nothing. Applying asks for an explicit yes, applies one change "
            "at a time, verifies each by probing again, and records the before-values in the incident so r can roll them back.")
    BINDINGS = [
        Binding("p", "plan_selected", "Plan", id="fix.plan",
                tooltip="Build the plan of the highlighted fix (Enter too); reads the live state, writes nothing"),
        Binding("x", "apply", "Apply…", id="fix.apply", tooltip="Show the exact changes and ask before applying them"),
        Binding("r", "rollback", "Roll back…", id="fix.rollback",
                tooltip="Restore this incident's before-values, newest first (asks first)"),
        Binding("y", "copy", "Copy", id="fix.copy",
                tooltip="Copy the plan (JSON: every change with its before and after values) to the clipboard"),
    ]

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="fix-body"):
            table: DataTable[Text] = DataTable(id="fix-table", cursor_type="row")
            table.border_title = "Fixes"
            yield table
            yield PlanView(id="plan-view")

    def on_mount(self) -> None:
        table = self.query_one("#fix-table", DataTable)
        # Fixed widths: an auto width follows whichever rows Textual has measured when the screen paints,
        # which made the column (and whether "for" fits) depend on timing. The table's CSS width fits both.
        table.add_column("fix", key="fix", width=max(map(len, FIX_TITLES)))
        table.add_column("for", key="for", width=7)
        self.ppd.findings_changed.subscribe(self, lambda _f: self._refresh_fixes())
        self.ppd.plan_changed.subscribe(self, lambda _p: self._refresh_plan())
        self._refresh_fixes()
        self._refresh_plan()
        table.focus()

    def _refresh_fixes(self) -> None:
        table = self.query_one("#fix-table", DataTable)
        table.clear()
        suggested = suggest_fixes(self.ppd.findings)
        for fix, finding in suggested:
            table.add_row(Text(fix, style="bold"), safe_text(finding, "yellow"), key=fix)
        for fix in FIX_TITLES:
            if fix not in table.rows:
                table.add_row(Text(fix, style="dim"), Text(""), key=fix)
        current = getattr(self.ppd.fixes.plan, "id", None) or (suggested[0][0] if suggested else None)
        if current in table.rows:
            table.move_cursor(row=table.get_row_index(current))

    def _refresh_plan(self) -> None:
        app = self.ppd
        planning = ""
        if app.fixes.plan is None and any(w.group == "plan" and w.is_running for w in app.workers):
            planning = "Reading the live state to build the plan…"
        self.query_one(PlanView).show(app.fixes.plan, app.fixes.apply_log, app.fixes.apply_result, planning=planning)

    @property
    def selected(self) -> str | None:
        table = self.query_one("#fix-table", DataTable)
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    @on(DataTable.RowSelected, "#fix-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.ppd.fixes.plan_fix(str(event.row_key.value))

    def action_plan_selected(self) -> None:
        if self.selected:
            self.ppd.fixes.plan_fix(self.selected)

    def action_apply(self) -> None:
        self.ppd.fixes.request_apply()

    def action_rollback(self) -> None:
        self.ppd.fixes.request_rollback()

    def action_copy(self) -> None:
        plan = self.ppd.fixes.plan
        if plan is None:
            self.ppd.say("no plan yet: plan a fix first (p)", severity="warning")
            return
        copy_json(self, plan.as_dict(), f"the plan of {plan.id} is on the clipboard")

    @on(Button.Pressed, "#plan-apply")
    def _apply_pressed(self) -> None:
        self.action_apply()

    @on(Button.Pressed, "#plan-rollback")
    def _rollback_pressed(self) -> None:
        self.action_rollback()
