"""Pcap: read a capture file offline and show what ``ppdoctor pcap`` shows (summary, findings, flows).

Works without a target or credentials (the capture is the evidence). Reading runs in a thread
worker, so a large capture does not freeze the UI; every text from the capture (requests, SNI,
header addresses) goes through ``safe_text`` and is never read as markup.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, DataTable, Input, Static

from ..widgets.safe import safe_text
from .base import WorkflowScreen

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan", "ok": "green"}
DETAIL_KEYS = ("pp_source", "vpce", "crc32c", "sni", "request", "status", "syn_retransmits", "synack_from", "pp_error")


def _split(text: str) -> list[str]:
    return [p for p in text.replace(",", " ").split() if p]


class PcapScreen(WorkflowScreen):
    MODE = "pcap"
    HELP = ("Pcap reads a capture (tcpdump -w, pcap or pcapng) offline: every TCP flow's handshake, first bytes "
            "(PROXY v2/v1, HTTP, TLS) and answer, then the findings the capture decides. Give the NLB's "
            "addresses so its connections are told from other clients'.")
    BINDINGS = [Binding("ctrl+r", "read", "Read", id="pcap.read", tooltip="Read the capture file")]

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="pcap-form"):
            yield Input(placeholder="capture file (pcap / pcapng)", id="pcap-path")
            yield Input(placeholder="NLB IPs", id="pcap-nlb")
            yield Input(placeholder="VPC CIDRs", id="pcap-vpc")
            yield Input(placeholder="ports", id="pcap-port")
            yield Button("Read", id="pcap-read", variant="primary")
        with VerticalScroll(id="pcap-summary-pane", classes="panel") as pane:
            pane.border_title = "Summary and findings"
            yield Static(Text("Give a capture file and press Enter.", style="dim"), id="pcap-summary")
        table: DataTable[Text] = DataTable(id="pcap-table", cursor_type="row", zebra_stripes=True)
        table.border_title = "Flows"
        yield table

    def on_mount(self) -> None:
        self.follow_cursor_blink()
        table = self.query_one("#pcap-table", DataTable)
        for key, label, width in (("time", "time", 15), ("client", "client", 22), ("server", "server", 22),
                                  ("handshake", "handshake", 17), ("first", "first bytes", 11),
                                  ("answer", "answer", 9), ("detail", "detail", None)):
            table.add_column(label, key=key, width=width)

    @on(Input.Submitted)
    @on(Button.Pressed, "#pcap-read")
    def _submitted(self) -> None:
        self.action_read()

    def action_read(self) -> None:
        path = self.query_one("#pcap-path", Input).value.strip()
        if not path:
            self._show_error("give the path of a capture file (tcpdump -w FILE)")
            return
        try:
            ports = [int(p) for p in _split(self.query_one("#pcap-port", Input).value)]
        except ValueError:
            self._show_error("ports must be numbers, e.g. 443 8443")
            return
        self.query_one("#pcap-summary", Static).update(safe_text(f"reading {path} …", "italic"))
        self._read(path, _split(self.query_one("#pcap-nlb", Input).value),
                   _split(self.query_one("#pcap-vpc", Input).value), ports)

    @work(thread=True, exclusive=True, group="pcap")
    def _read(self, path: str, nlb: list[str], vpc: list[str], ports: list[int]) -> None:
        from ..pcap import CaptureError, analyze

        try:
            result = analyze(path, nlb_ips=nlb, vpcs=vpc, ports=ports)
        except CaptureError as exc:
            self.app.call_from_thread(self._show_error, exc.message, exc.hint)
            return
        self.app.call_from_thread(self._show, result)

    def _show_error(self, message: str, hint: str | None = None) -> None:
        text = safe_text(message, "bold red")
        if hint:
            text.append("\n")
            text.append_text(safe_text(f"next: {hint}", "yellow"))
        self.query_one("#pcap-summary", Static).update(text)
        self.query_one("#pcap-table", DataTable).clear()

    def _show(self, result: Any) -> None:
        from ..pcap import ANSWER, FIRST_BYTES, HANDSHAKE

        d = result.as_dict()
        text = Text()
        text.append_text(safe_text(f"{d['format']}: {d['packets']} packets, {d['flows']} flows, "
                                   f"{d['health_checks']} health checks", "bold"))
        if d["nlb_ips"]:
            text.append_text(safe_text(f"\nNLB: {', '.join(d['nlb_ips'])}"))
        for kind, names in (("handshake", HANDSHAKE), ("first_bytes", FIRST_BYTES), ("answer", ANSWER)):
            counts = d["summary"][kind]
            parts = ", ".join(f"{c} {counts[c]}" for c in names if counts.get(c)) or "-"
            text.append_text(safe_text(f"\n{kind:<12} {parts}"))
        for note in d["notes"]:
            text.append_text(safe_text(f"\nnote: {note}", "dim"))
        if not result.findings:
            text.append_text(safe_text("\n\nno finding: the capture decides none of the catalogue's causes", "green"))
        for f in result.findings:
            text.append("\n\n")
            text.append_text(safe_text(f"{f.id} {f.title} [{f.confidence:.2f}]", SEVERITY_STYLE.get(f.severity, "")))
            text.append_text(safe_text(f"\n{f.explanation}"))
            for ev in f.evidence[:3]:
                text.append_text(safe_text(f"\n  · {ev['client']} → {ev['server']} {ev['time']}", "dim"))
            if f.fixes:
                text.append_text(safe_text(f"\nfixes: {', '.join(f.fixes)}", "cyan"))
        self.query_one("#pcap-summary", Static).update(text)
        table = self.query_one("#pcap-table", DataTable)
        table.clear()
        for rec in result.table:
            detail = ", ".join(f"{k}={rec[k]}" for k in DETAIL_KEYS if rec.get(k) is not None)
            if rec.get("health_check"):
                detail = "health check" + (f", {detail}" if detail else "")
            table.add_row(safe_text(rec["time"][11:26]), safe_text(rec["client"]), safe_text(rec["server"]),
                          safe_text(rec["handshake"]), safe_text(rec["first_bytes"]), safe_text(rec["answer"]),
                          safe_text(detail, limit=300))
