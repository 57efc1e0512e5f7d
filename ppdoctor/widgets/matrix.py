"""The client-IP preservation × PROXY protocol 2×2 matrix, with the target group's current cell highlighted."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid
from textual.widgets import Static

from ..diagnosis.engine import FactView, gateway_mode

# (preserve_ip, pp_v2) → what that combination means (KNOWLEDGE.md, "three places a client IP can come from").
CELLS: dict[tuple[bool, bool], tuple[str, str]] = {
    (False, False): ("no client IP", "the backend sees the NLB (PPD001)"),
    (False, True): ("PROXY v2", "the gateway must expect it (PPD003/004)"),
    (True, False): ("preservation", "replies must route via the NLB (PPD002)"),
    (True, True): ("both", "header works; return-path risk stays"),
}


class ModeMatrix(Grid):
    """Rows: preserve_client_ip.enabled; columns: proxy_protocol_v2.enabled."""

    DEFAULT_CLASSES = "panel"

    def compose(self) -> ComposeResult:
        yield Static("", classes="corner")
        yield Static(Text("PROXY v2 off", style="bold"), classes="col-head")
        yield Static(Text("PROXY v2 on", style="bold"), classes="col-head")
        for preserve in (False, True):
            yield Static(Text(f"preserve\nIP {'on' if preserve else 'off'}", style="bold"), classes="row-head")
            for pp in (False, True):
                title, body = CELLS[(preserve, pp)]
                text = Text()
                text.append(title + "\n", style="bold")
                text.append(body)
                yield Static(text, classes="cell", id=f"cell-{int(preserve)}{int(pp)}")
        yield Static(id="matrix-note")

    def on_mount(self) -> None:
        self.border_title = "preservation × PROXY protocol"

    def show(self, facts: FactView) -> None:
        preserve, pp = facts.get("tg.preserve_ip"), facts.get("tg.pp_v2")
        current = (preserve, pp) if isinstance(preserve, bool) and isinstance(pp, bool) else None
        for key in CELLS:
            self.query_one(f"#cell-{int(key[0])}{int(key[1])}", Static).set_class(key == current, "-current")
        mode, _ = gateway_mode(facts)
        note = Text()
        if current is None:
            note.append("target group attributes unknown: run the aws probe", style="dim")
        else:
            note.append("▶ current cell", style="bold reverse")
            note.append("  gateway expects PROXY: ")
            note.append(mode or "unknown (run direct-plain + direct-ppv2)", style="bold" if mode else "dim")
        self.query_one("#matrix-note", Static).update(note)
