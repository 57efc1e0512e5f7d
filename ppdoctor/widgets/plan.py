"""A fix plan: each change with its before → after, the API call, progress while applying, verification results."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, DataTable, Log, Static

from .safe import clean, safe_text, show_value

if TYPE_CHECKING:
    from ..fixes.model import FixPlan

CHANGE_STATUS_STYLE = {"pending": "dim", "applied": "bold green", "failed": "bold red", "rolled-back": "yellow",
                       "skipped": "dim"}


def plan_value(value: object) -> str:
    return "(absent)" if value is None else show_value(value)


class PlanView(VerticalScroll):
    DEFAULT_CLASSES = "panel"

    def compose(self) -> ComposeResult:
        yield Static(id="plan-title")
        yield Static(id="plan-explanation")
        yield DataTable(id="plan-changes", cursor_type="row", zebra_stripes=True)
        yield Static(id="plan-change-detail")
        yield Static(id="plan-window")
        with Horizontal(id="plan-buttons"):
            yield Button("Apply…", id="plan-apply", variant="warning", tooltip="Shows the exact changes and asks first")
            yield Button("Roll back…", id="plan-rollback", tooltip="Restore this incident's before-values, newest first")
        yield Static("Verification", classes="section", id="plan-verify-label")
        yield DataTable(id="plan-verify", show_cursor=False)
        yield Static("Progress", classes="section", id="plan-log-label")
        yield Log(id="plan-log", auto_scroll=True)

    def on_mount(self) -> None:
        self.border_title = "Plan"
        changes = self.query_one("#plan-changes", DataTable)
        changes.add_column("#", key="n", width=2)
        changes.add_column("status", key="status", width=11)
        changes.add_column("change: object · field · before → after", key="what")
        self.query_one("#plan-verify", DataTable).add_columns("check", "result", "after")
        self.show(None, [], None)

    def show(self, plan: Any | None, log: list[str], result: Any | None, *, planning: str = "") -> None:
        title = self.query_one("#plan-title", Static)
        changes = self.query_one("#plan-changes", DataTable)
        changes.clear()
        has_plan = plan is not None
        for wid in ("#plan-changes", "#plan-change-detail", "#plan-buttons"):
            self.query_one(wid).display = has_plan
        if not has_plan:
            title.update(Text(planning or "No plan yet: pick a fix on the left and press Enter to plan it. "
                              "Planning only reads the live state.", style="dim"))
            self.query_one("#plan-explanation", Static).update("")
            self.query_one("#plan-window", Static).update("")
        else:
            head = Text()
            head.append_text(safe_text(plan.id, "bold"))
            head.append(" — ")
            head.append_text(safe_text(plan.title, "bold"))
            if not plan.changes:
                head.append("\nnothing to change: the live state already matches", style="green")
            title.update(head)
            self.query_one("#plan-explanation", Static).update(safe_text(plan.explanation, multiline=True))
            for i, change in enumerate(plan.changes, 1):
                what = safe_text(change.object, "bold", limit=90)
                what.append("\n")
                what.append_text(safe_text(change.field, limit=90))
                what.append("\n− ", style="red")
                what.append_text(safe_text(plan_value(change.before), "red", limit=90))
                what.append("\n+ ", style="green")
                what.append_text(safe_text(plan_value(change.after), "green", limit=90))
                changes.add_row(Text(str(i)), Text(change.status, style=CHANGE_STATUS_STYLE.get(change.status, "")),
                                what, key=str(i), height=4)
            window = Text()
            if plan.window:
                window.append("window: ", style="bold yellow")
                window.append_text(safe_text(plan.window, multiline=True))
            if plan.verify:
                window.append("\nverified afterwards by: " if plan.window else "verified afterwards by: ", style="bold")
                window.append_text(safe_text(", ".join(plan.verify)))
            self.query_one("#plan-window", Static).update(window)
            self.query_one("#plan-apply", Button).disabled = not plan.changes or result is not None
            self._show_change(plan, 0)
        self.plan = plan
        log_widget = self.query_one("#plan-log", Log)
        log_widget.clear()
        for line in log:
            log_widget.write_line(clean(line, limit=500))
        self.query_one("#plan-log").display = self.query_one("#plan-log-label").display = bool(log)
        verify = self.query_one("#plan-verify", DataTable)
        verify.clear()
        verifications = list(getattr(result, "verifications", []) or [])
        for v in verifications:
            verify.add_row(safe_text(v.check, "bold"),
                           Text("passed", style="bold green") if v.passed else Text("FAILED", style="bold red"),
                           Text(f"{v.seconds:.1f} s"))
        verify.display = self.query_one("#plan-verify-label").display = bool(verifications)

    def _show_change(self, plan: Any, index: int) -> None:
        detail = self.query_one("#plan-change-detail", Static)
        if plan is None or not plan.changes:
            detail.update("")
            return
        change = plan.changes[min(index, len(plan.changes) - 1)]
        text = Text()
        text.append_text(safe_text(f"{index + 1}. {change.object}", "bold"))
        text.append("\n   field   ", style="dim")
        text.append_text(safe_text(change.field))
        text.append("\n   before  ", style="dim")
        text.append_text(safe_text(plan_value(change.before), "red", limit=2000))
        text.append("\n   after   ", style="dim")
        text.append_text(safe_text(plan_value(change.after), "green", limit=2000))
        text.append("\n   via     ", style="dim")
        text.append_text(safe_text(change.api_call))
        if change.verify:
            text.append("\n   verify  ", style="dim")
            text.append_text(safe_text(change.verify))
        if change.note:
            text.append("\n   note    ", style="dim")
            text.append_text(safe_text(change.note, multiline=True))
        if change.error:
            text.append("\n   error   ", style="bold red")
            text.append_text(safe_text(change.error, multiline=True))
        detail.update(text)

    @on(DataTable.RowHighlighted, "#plan-changes")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_change(getattr(self, "plan", None), event.cursor_row)


def short_value(value: Any, limit: int = 160) -> str:
    """A value as the plan shows it, cut at ``limit`` characters."""
    text = show_value(value)
    return text if len(text) <= limit else text[:limit] + "…"


def plan_lines(plan: FixPlan) -> list[str]:
    """The exact changes of a plan, one block each, for the confirmation modal."""
    lines = []
    for i, change in enumerate(plan.changes, 1):
        block = [f"{i}. {change.object}", f"   {change.field}:",
                 f"     before: {'(absent)' if change.before is None else short_value(change.before, 400)}",
                 f"     after:  {'(absent)' if change.after is None else short_value(change.after, 400)}",
                 f"   via {change.api_call}"]
        if change.note:
            block.append(f"   note: {change.note}")
        lines.append("\n".join(block))
    if plan.window:
        lines.append(f"window: {plan.window}")
    return lines
