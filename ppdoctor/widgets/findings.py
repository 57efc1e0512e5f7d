"""One finding in full: explanation, the facts it rests on, what would confirm it, and its fixes."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
        yield Static("Evidence", classes="section", id="fd-evidence-label")
        yield DataTable(id="fd-evidence", show_cursor=False, zebra_stripes=True)
        yield Static(id="fd-confirm")
        yield Static(id="fd-fixes")

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
        fixes = Text()
        if finding.fixes:
            fixes.append("Fixes", style="bold")
            fixes.append("  (f plans the first one)\n", style="dim")
            for fix in finding.fixes:
                fixes.append("  ")
                fixes.append_text(safe_text(fix, "bold"))
                title = fix_titles.get(fix)
                if title:
                    fixes.append(f" — {title}")
                fixes.append("\n")
        fixes.rstrip()
        self.query_one("#fd-fixes", Static).update(fixes)
