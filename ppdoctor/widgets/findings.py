"""One finding in full: explanation, the facts it rests on, what would confirm it, and its fixes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from .safe import safe_text, show_value

if TYPE_CHECKING:
    from ..diagnosis.model import Finding

SEVERITY_STYLE = {"error": "bold red", "warning": "bold yellow", "info": "bold cyan", "ok": "bold green"}


def severity_text(severity: str) -> Text:
    return Text(severity, style=SEVERITY_STYLE.get(severity, ""))


class FindingDetail(VerticalScroll):
    DEFAULT_CLASSES = "panel"

    def compose(self) -> ComposeResult:
        yield Static(id="fd-head")
        yield Static(id="fd-explanation")
        # the fixes before the evidence: two lines that say what to do, then the facts, which can run long
        yield Static(id="fd-fixes")
        yield Static("Evidence", classes="section", id="fd-evidence-label")
        yield DataTable(id="fd-evidence", show_cursor=False, zebra_stripes=True)
        yield Static(id="fd-confirm")

    def on_mount(self) -> None:
        self.border_title = "Finding"
        self.query_one("#fd-evidence", DataTable).add_columns("fact", "value", "source")

    def show(self, finding: Finding | None, fix_titles: dict[str, str], empty: str = "") -> None:
        table = self.query_one("#fd-evidence", DataTable)
        table.clear()
        if finding is None:
            self.query_one("#fd-head", Static).update(Text(empty, style="dim"))
            for wid in ("#fd-explanation", "#fd-confirm", "#fd-fixes"):
                self.query_one(wid, Static).update("")
            table.display = self.query_one("#fd-evidence-label").display = False
            return
        head = Text()
        head.append_text(safe_text(finding.id, "bold"))
        head.append(" · ")
        head.append_text(severity_text(finding.severity))
        head.append(f" · confidence {finding.confidence:.0%}\n")
        head.append_text(safe_text(finding.title, "bold"))
        if finding.superseded_by:
            head.append_text(safe_text(f"\nsuperseded by {finding.superseded_by}: that finding explains this one", "dim"))
        self.query_one("#fd-head", Static).update(head)
        self.query_one("#fd-explanation", Static).update(safe_text(finding.explanation, multiline=True))
        for item in finding.evidence:
            value = show_value(item.get("value"))
            if item.get("note"):
                value += f"  ({item['note']})"
            table.add_row(safe_text(item.get("fact", ""), "bold"), safe_text(value, limit=300),
                          safe_text(item.get("source", ""), "dim"))
        table.display = self.query_one("#fd-evidence-label").display = bool(finding.evidence)
        confirm = Text()
        if finding.confirm:
            confirm.append("To confirm\n", style="bold")
            for line in finding.confirm:
                confirm.append("  • ")
                confirm.append_text(safe_text(line))
                confirm.append("\n")
        confirm.rstrip()
        self.query_one("#fd-confirm", Static).update(confirm)
        fixes: Text | Group = Text()
        if finding.fixes:
            # a grid, so a title that wraps stays under itself instead of running back under the fix id
            grid = Table.grid(padding=(0, 1))
            grid.add_column(no_wrap=True)
            grid.add_column()
            for fix in finding.fixes:
                title = fix_titles.get(fix)
                grid.add_row(safe_text(fix, "bold"), Text(f"— {title}") if title else Text(""))
            fixes = Group(Text.assemble(("Fixes", "bold"), ("  (f plans the first one)", "dim")),
                          Padding(grid, (0, 0, 0, 2)))
        self.query_one("#fd-fixes", Static).update(fixes)
