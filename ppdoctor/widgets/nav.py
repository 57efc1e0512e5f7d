"""The bar at the top of every screen: the target, the screens (1–6, t) and what is running."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from .safe import clean

TABS = (("setup", "1", "Setup"), ("probes", "2", "Probes"), ("diagnosis", "3", "Diagnosis"),
        ("fix", "4", "Fix"), ("report", "5", "Report"), ("timeline", "t", "Timeline"),
        ("bench", "6", "Bench"), ("pcap", "7", "Pcap"))


class NavTab(Horizontal):
    """A screen's key and name; on narrow terminals the stylesheet hides the name of the screens not shown."""

    def __init__(self, mode: str, key: str, label: str, current: bool) -> None:
        super().__init__(classes="nav-tab -current" if current else "nav-tab")
        self.mode, self.key, self.label = mode, key, label
        self.tooltip = f"{label} (key {key})"

    def compose(self) -> ComposeResult:
        yield Static(Text(f" {self.key} ", style="bold"), classes="nav-key")
        yield Static(f"{self.label} ", classes="nav-label")

    def on_click(self, event: events.Click) -> None:
        event.stop()
        self.app.run_action(f"go('{self.mode}')")


class NavBar(Horizontal):
    def __init__(self, current: str) -> None:
        super().__init__(id="nav")
        self.current = current

    def compose(self) -> ComposeResult:
        yield Static(Text("ppdoctor", style="bold"), id="nav-brand")
        yield Static(id="nav-target")
        for mode, key, label in TABS:
            yield NavTab(mode, key, label, mode == self.current)
        yield Static(id="nav-activity")

    def on_mount(self) -> None:
        app = self.app
        self.show_target(getattr(app, "config", None))
        self.show_activity(app.activity_text() if hasattr(app, "activity_text") else "")
        for name, callback in (("activity_changed", self.show_activity), ("config_changed", self.show_target)):
            signal = getattr(app, name, None)
            if signal is not None:
                signal.subscribe(self, callback)

    def show_target(self, config: object) -> None:
        name = getattr(config, "name", "") if config is not None else ""
        target = self.query_one("#nav-target", Static)
        target.update(Text(clean(name or "no target", limit=40), style="italic"))
        target.tooltip = Text(clean(name or "no target"))  # the whole name where the bar has to cut it

    def show_activity(self, text: str) -> None:
        widget = self.query_one("#nav-activity", Static)
        widget.update(Text(f"● {text}", style="bold yellow") if text else Text(""))
