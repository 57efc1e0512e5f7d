"""The evidence pane of the Probes screen: what was sent (hexdump + decoded PROXY header), what came back, timings, headers, facts."""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from ..probes.model import Observation
from .hexdump import decode_proxy_header, describe_header, hexdump
from .safe import clean, safe_text, show_value

STATUS_STYLE = {"ok": "bold green", "fail": "bold red", "skipped": "dim", "error": "bold yellow",
                "running": "bold cyan", "cancelled": "dim", "not run": "dim"}
VIA_NLB = {"http-via-nlb", "xff-forge"}
RECEIVED_LINES = 30
OTHER_EVIDENCE_CHARS = 6000


def status_text(status: str) -> Text:
    return Text(status.upper() if status in ("ok", "fail", "error") else status, style=STATUS_STYLE.get(status, ""))


def format_ms(value: float) -> str:
    return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms"


class EvidencePane(VerticalScroll):
    """Shows one probe: description, status, timings, bytes, response, facts, remaining evidence."""

    DEFAULT_CLASSES = "panel"

    def compose(self) -> ComposeResult:
        yield Static(id="ev-title")
        yield Static(id="ev-status")
        yield Static(id="ev-timings")
        yield Static("Bytes sent", classes="section", id="ev-sent-label")
        yield Static(id="ev-sent")
        yield Static(id="ev-pp")
        yield Static("First bytes received", classes="section", id="ev-received-label")
        yield Static(id="ev-received")
        yield Static("Response headers", classes="section", id="ev-headers-label")
        yield DataTable(id="ev-headers", show_cursor=False, zebra_stripes=True)
        yield Static("Facts", classes="section", id="ev-facts-label")
        yield DataTable(id="ev-facts", show_cursor=False, zebra_stripes=True)
        yield Static("Other evidence", classes="section", id="ev-other-label")
        yield Static(id="ev-other")

    def on_mount(self) -> None:
        self.border_title = "Evidence"
        self.query_one("#ev-headers", DataTable).add_columns("header", "value")
        self.query_one("#ev-facts", DataTable).add_columns("fact", "value", "note")

    def _section(self, name: str, visible: bool) -> None:
        for wid in (f"#ev-{name}-label", f"#ev-{name}"):
            for widget in self.query(wid):
                widget.display = visible

    def show(self, name: str, description: str, needs: str, obs: Observation | None, state: str) -> None:
        title = Text()
        title.append(name, style="bold")
        title.append(f" — {description}")
        self.query_one("#ev-title", Static).update(title)
        status = Text()
        if obs is None or state in ("running", "cancelled"):
            status.append_text(status_text(state))
            hint = {"running": "  waiting for the answer… press c to cancel",
                    "cancelled": "  cancelled by the operator; Enter runs it again"}.get(
                state, "  press Enter to run it, a to run every probe")
            status.append(hint, style="dim")
            status.append(f"\nuses: {needs}", style="dim")
            if obs is not None:
                status.append("\n(the evidence below is from the previous run)", style="dim")
        else:
            status.append_text(status_text(obs.status.value))
            if obs.failure_class is not None:
                status.append(f" · {obs.failure_class.value}")
            status.append(" · ")
            status.append_text(safe_text(obs.summary, multiline=True))
        self.query_one("#ev-status", Static).update(status)
        self._show_observation(name, obs)

    def _show_observation(self, name: str, obs: Observation | None) -> None:
        ev: dict[str, Any] = dict(obs.evidence) if obs else {}
        timings = Text()
        if obs and obs.timings_ms:
            timings.append("timings  ", style="dim")
            timings.append(" · ".join(f"{clean(k).replace('_', ' ')} {format_ms(v)}" for k, v in obs.timings_ms.items()))
        self.query_one("#ev-timings", Static).update(timings)

        sent_hex = ev.pop("sent_hex", None)
        pp_hex = ev.pop("proxy_header_hex", None)
        sent = _unhex(sent_hex)
        self._section("sent", sent is not None)
        pp_widget = self.query_one("#ev-pp", Static)
        pp_widget.display = sent is not None
        if sent is not None:
            decoded, note = decode_proxy_header(sent)
            header_length = int(decoded.get("header_length") or 0) if decoded else 0
            label = Text(f"Bytes sent ({len(sent)} bytes", style="bold")
            if header_length:
                label.append(f"; the first {header_length} are the PROXY header", style="bold magenta")
            label.append(")", style="bold")
            self.query_one("#ev-sent-label", Static).update(label)
            self.query_one("#ev-sent", Static).update(hexdump(sent, header_length=header_length))
            if decoded:
                pp_widget.update(describe_header(decoded))
            else:
                extra = " — the NLB prepends its own header when proxy_protocol_v2.enabled is on" if name in VIA_NLB else ""
                pp_widget.update(Text(f"PROXY header: none ({note}){extra}", style="dim"))
            if pp_hex and not decoded:
                pp_widget.update(Text(f"PROXY header sent separately: {clean(pp_hex)}", style="dim"))

        received = ev.pop("received_first_bytes", None)
        total = ev.pop("received_total_bytes", None)
        self._section("received", received is not None)
        if received is not None:
            label = Text("First bytes received", style="bold")
            label.append(f" ({len(received)} of {total} bytes)" if total is not None else "")
            self.query_one("#ev-received-label", Static).update(label)
            if not received:
                body = Text("nothing: the connection ended (or timed out) without a byte", style="yellow")
            else:
                lines = received.split("\r\n")
                shown = "\n".join(lines[:RECEIVED_LINES]) + ("\n…" if len(lines) > RECEIVED_LINES else "")
                body = safe_text(shown, multiline=True)
            self.query_one("#ev-received", Static).update(body)

        response = ev.pop("response", None)
        headers = response.get("headers", []) if isinstance(response, dict) else []
        table = self.query_one("#ev-headers", DataTable)
        table.clear()
        for item in headers:
            key, value = (item[0], item[1]) if isinstance(item, (list, tuple)) and len(item) >= 2 else (item, "")
            table.add_row(safe_text(key, "bold"), safe_text(value))
        self._section("headers", bool(headers))
        if isinstance(response, dict):
            label = Text("Response headers", style="bold")
            label.append_text(safe_text(f"  HTTP {response.get('status')} {response.get('reason', '')}", "dim"))
            self.query_one("#ev-headers-label", Static).update(label)

        facts = self.query_one("#ev-facts", DataTable)
        facts.clear()
        for fact in (obs.facts.values() if obs else ()):
            facts.add_row(safe_text(fact.name, "bold"), safe_text(show_value(fact.value), limit=400),
                          safe_text(fact.note, "dim"))
        self._section("facts", bool(obs and obs.facts))

        if obs and obs.error:
            ev["error"] = obs.error
        self._section("other", bool(ev))
        if ev:
            dumped = json.dumps(ev, indent=2, default=str, ensure_ascii=False)
            if len(dumped) > OTHER_EVIDENCE_CHARS:
                dumped = dumped[:OTHER_EVIDENCE_CHARS] + "\n… (the full evidence is in the report)"
            self.query_one("#ev-other", Static).update(safe_text(dumped, multiline=True))


def _unhex(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None
