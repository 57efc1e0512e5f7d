"""Timeline: every probe, diagnosis, plan, change, verification and note of this incident, in order."""

from __future__ import annotations

import json

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from ..session import TimelineEvent
from ..widgets.safe import safe_text
from .base import WorkflowScreen

KIND_STYLE = {"probe": "cyan", "diagnosis": "magenta", "plan": "blue", "change": "bold yellow", "verify": "green",
              "rollback": "bold yellow", "note": "dim", "incident": "bold", "confirm": "blue", "bench": "cyan"}
DETAIL_CHARS = 4000


def elapsed_label(at: float, started: float) -> str:
    seconds = max(0.0, at - started)
    minutes, rest = divmod(seconds, 60)
    return f"+{int(minutes):02d}:{rest:04.1f}"


class TimelineScreen(WorkflowScreen):
    MODE = "timeline"
    HELP = ("The timeline is the incident record the report is built from: each event with its time since the "
            "incident opened, including what other ppdoctor processes (a shell's `fix`, `diagnose`) recorded "
            "before this one opened it. Highlight one to see its data.")
    BINDINGS = [
        Binding("end", "latest", "Latest", id="timeline.latest", tooltip="Jump to the newest event"),
    ]

    def compose_body(self) -> ComposeResult:
        table: DataTable[Text] = DataTable(id="timeline-table", cursor_type="row", zebra_stripes=True)
        table.border_title = "Timeline"
        yield table
        with VerticalScroll(id="timeline-detail-pane", classes="panel") as pane:
            pane.border_title = "Event"
            yield Static(id="timeline-detail")

    def on_mount(self) -> None:
        table = self.query_one("#timeline-table", DataTable)
        table.add_column("time", key="time", width=9)
        table.add_column("kind", key="kind", width=9)
        table.add_column("what", key="summary")
        for event in self.ppd.timeline:
            self._add(event)
        self.ppd.timeline_changed.subscribe(self, self._added)
        self.action_latest()

    def _started(self) -> float:
        session = self.ppd.session
        if session is not None:
            return session.started_at
        return self.ppd.timeline[0].at if self.ppd.timeline else 0.0

    def _add(self, event: TimelineEvent) -> None:
        table = self.query_one("#timeline-table", DataTable)
        summary = safe_text(event.summary, limit=300)
        if event.by and event.by != "tui":  # recorded by another process (`ppdoctor fix`, …)
            summary.append_text(safe_text(f"  · {event.by}", "dim", limit=40))
        table.add_row(Text(elapsed_label(event.at, self._started()), style="dim"),
                      Text(event.kind, style=KIND_STYLE.get(event.kind, "")), summary)

    def _added(self, event: TimelineEvent) -> None:
        table = self.query_one("#timeline-table", DataTable)
        follow = table.cursor_row >= table.row_count - 1
        self._add(event)
        if follow:
            self.action_latest()

    def action_latest(self) -> None:
        table = self.query_one("#timeline-table", DataTable)
        if table.row_count:
            table.move_cursor(row=table.row_count - 1)
        self._show(table.cursor_row)

    def _show(self, index: int) -> None:
        detail = self.query_one("#timeline-detail", Static)
        events = self.ppd.timeline
        if not events or not 0 <= index < len(events):
            detail.update(Text("Nothing has happened yet.", style="dim"))
            return
        event = events[index]
        text = safe_text(event.summary, "bold", multiline=True)
        if event.data:
            dumped = json.dumps(event.data, indent=2, default=str, ensure_ascii=False)
            if len(dumped) > DETAIL_CHARS:
                dumped = dumped[:DETAIL_CHARS] + "\n…"
            text.append("\n")
            text.append_text(safe_text(dumped, multiline=True))
        detail.update(text)

    @on(DataTable.RowHighlighted, "#timeline-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show(event.cursor_row)
