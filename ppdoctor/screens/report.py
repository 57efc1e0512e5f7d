"""Report: export the incident (timeline, observations, findings, changes) as Markdown, JSON or HTML."""

from __future__ import annotations

import re
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, Static, TextArea

from ..widgets.safe import safe_text
from . import messages as msg
from .base import WorkflowScreen

FORMATS = (("md", "Markdown"), ("json", "JSON"), ("html", "HTML"))


def default_report_name(target: str, fmt: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", target).strip("-.") or "incident"
    return f"ppdoctor-report-{slug}.{fmt}"


class ReportScreen(WorkflowScreen):
    MODE = "report"
    AUTO_FOCUS = "#report-format"
    HELP = ("The report is the incident written down: target, timeline, every observation with its evidence, the "
            "findings and the changes with their verification. Pick a format and a path; in a browser (textual "
            "serve) the file is downloaded instead.")
    BINDINGS = [
        Binding("ctrl+s", "export", "Export", id="report.export", tooltip="Write the report to the path shown"),
        Binding("ctrl+r", "preview", "Refresh preview", id="report.preview",
                tooltip="Render the report again from the current incident"),
    ]

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="report-body"):
            with Vertical(id="report-form", classes="panel"):
                yield Label("Format")
                with RadioSet(id="report-format"):
                    for i, (_fmt, label) in enumerate(FORMATS):
                        yield RadioButton(label, value=i == 0)
                yield Label("Path")
                with Horizontal(id="report-path-row"):
                    yield Input(id="report-path")
                    yield Button("Export", id="report-export", variant="primary",
                                 tooltip="Write the report (ctrl+s)")
                yield Static(id="report-status")
            yield TextArea(id="report-preview", read_only=True, show_line_numbers=False, soft_wrap=False)

    def on_mount(self) -> None:
        self.query_one("#report-form").border_title = "Export"
        self.query_one("#report-preview").border_title = "Preview"
        path = self.query_one("#report-path", Input)
        self.follow_cursor_blink()
        path.value = default_report_name(self.ppd.config.name, self.fmt)
        self.ppd.config_changed.subscribe(self, lambda _c: self._set_default_path())
        self.ppd.report_changed.subscribe(self, self._report_event)
        self.action_preview()

    def on_screen_resume(self) -> None:
        if self.is_mounted:
            self.action_preview()

    @property
    def fmt(self) -> str:
        radio = self.query_one("#report-format", RadioSet)
        index = radio.pressed_index if radio.pressed_index >= 0 else 0
        return FORMATS[index][0]

    def _set_default_path(self) -> None:
        path = self.query_one("#report-path", Input)
        stem = Path(path.value).stem if path.value else ""
        if not path.value or stem.startswith("ppdoctor-report-"):
            path.value = default_report_name(self.ppd.config.name, self.fmt)

    @on(RadioSet.Changed, "#report-format")
    def _format_changed(self) -> None:
        path = self.query_one("#report-path", Input)
        if path.value:
            path.value = str(Path(path.value).with_suffix(f".{self.fmt}"))
        self.action_preview()

    def action_preview(self) -> None:
        if self.ppd.session is not None:
            self.ppd.preview_report(self.fmt)

    @on(Button.Pressed, "#report-export")
    @on(Input.Submitted, "#report-path")
    def action_export(self) -> None:
        path = self.query_one("#report-path", Input).value.strip()
        if not path:
            self.ppd.say("enter a path for the report", severity="warning")
            return
        from ..report import FORMATS as REPORT_SUFFIXES  # the one suffix rule; loaded when first exporting

        if Path(path).suffix.lower() not in REPORT_SUFFIXES:
            path = f"{path}.{self.fmt}"
        self.query_one("#report-status", Static).update(Text("writing…", style="dim"))
        self.ppd.export_report(path)

    def _report_event(self, message: msg.ReportPreview | msg.ReportWritten) -> None:
        if isinstance(message, msg.ReportPreview):
            if message.fmt == self.fmt:
                self.query_one("#report-preview", TextArea).load_text(message.text)
            return
        status = Text("written: ", style="bold green")
        status.append_text(safe_text(f"{message.path} ({message.size:,} bytes)"))
        self.query_one("#report-status", Static).update(status)
