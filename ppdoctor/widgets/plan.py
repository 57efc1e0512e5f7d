"""A fix plan: each change once, with its before → after in full, the API call, progress while applying, verification.

The Apply / Roll back buttons are docked at the bottom of the panel so the confirm action stays in
view however long the changes are; long values (annotations, JSON) wrap instead of being cut.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Log, Static

from .safe import clean, safe_text, show_value

if TYPE_CHECKING:
    from ..fixes.apply import ApplyResult
    from ..fixes.model import FixPlan

CHANGE_STATUS_STYLE = {"pending": "dim", "applied": "bold green", "failed": "bold red", "rolled-back": "yellow",
                       "skipped": "dim"}


def plan_value(value: object) -> str:
    return "(absent)" if value is None else show_value(value)


def change_text(index: int, change: Any) -> Group:
    """One change in full: object, field, before → after, the API call, how it is verified, notes, errors.

    A two-column grid so a long value (an annotation, a JSON patch, an ARN) wraps under itself; ``fold``
    breaks a value without spaces rather than cutting it.
    """
    head = Text()
    head.append(f"{index}. ", style="bold")
    head.append(change.status, style=CHANGE_STATUS_STYLE.get(change.status, ""))
    head.append("  ")
    head.append_text(safe_text(change.object, "bold"))
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("field", safe_text(change.field))
    grid.add_row("before", safe_text(plan_value(change.before), "red", multiline=True))
    grid.add_row("after", safe_text(plan_value(change.after), "green", multiline=True))
    grid.add_row("via", safe_text(change.api_call))
    if change.verify:
        grid.add_row("verify", safe_text(change.verify))
    if change.note:
        grid.add_row("note", safe_text(change.note, multiline=True))
    if change.error:
        grid.add_row(Text("error", style="bold red"), safe_text(change.error, multiline=True))
    return Group(head, Padding(grid, (0, 0, 0, 3)))


def outcome_text(result: Any | None) -> Text:
    """One line under the plan's title once it was applied, so the outcome is in view before the details below."""
    text = Text()
    if result is None:
        return text
    checks = list(getattr(result, "verifications", []) or [])
    passed = sum(1 for v in checks if v.passed)
    if result.completed and passed == len(checks):
        text.append(f"\n✓ applied; {passed}/{len(checks)} verification(s) passed", style="bold green")
    elif result.completed:
        text.append(f"\n✗ applied, but {len(checks) - passed}/{len(checks)} verification(s) FAILED (r rolls back)",
                    style="bold red")
    else:
        text.append("\n✗ not completed: ", style="bold red")
        text.append_text(safe_text(result.error or "see Progress below", "red"))
    return text


class PlanView(VerticalScroll):
    DEFAULT_CLASSES = "panel"

    def compose(self) -> ComposeResult:
        yield Static(id="plan-title")
        yield Static(id="plan-explanation")
        yield Vertical(id="plan-changes")
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
        self.query_one("#plan-verify", DataTable).add_columns("check", "result", "after")
        self.show(None, [], None)

    def show(self, plan: FixPlan | None, log: list[str], result: ApplyResult | None, *, planning: str = "") -> None:
        title = self.query_one("#plan-title", Static)
        changes = self.query_one("#plan-changes", Vertical)
        changes.remove_children()
        has_plan = plan is not None
        for wid in ("#plan-changes", "#plan-buttons"):
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
            head.append_text(outcome_text(result))
            title.update(head)
            explanation = self.query_one("#plan-explanation", Static)
            explanation.update(safe_text(plan.explanation, multiline=True))
            explanation.display = bool(plan.explanation)
            changes.mount_all(Static(change_text(i, change), classes="plan-change")
                              for i, change in enumerate(plan.changes, 1))
            window = Text()
            if plan.window:
                window.append("window: ", style="bold yellow")
                window.append_text(safe_text(plan.window, multiline=True))
            if plan.verify:
                window.append("\nverified afterwards by: " if plan.window else "verified afterwards by: ", style="bold")
                window.append_text(safe_text(", ".join(plan.verify)))
            self.query_one("#plan-window", Static).update(window)
            self.query_one("#plan-apply", Button).disabled = not plan.changes or result is not None
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
