"""The traffic path client → NLB → gateway → echo, with what is known at each hop and, on the Diagnosis screen, where it breaks.

Two forms of the same facts: boxes side by side when the terminal has room, and one line per hop
(``NLB 127.1.1.10:80 [PPv2 on, preserve off] ─✗ PROXY header not expected → 400→``) for narrow or
short terminals. Both are composed; the stylesheet shows one according to the screen's breakpoint
classes, so a resize needs no Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from ..config import TargetConfig
from ..diagnosis.engine import FactView, gateway_mode
from .safe import clean, show_value

GOOD, BAD, UNKNOWN, INFO = "good", "bad", "unknown", "info"
STATE_STYLE = {GOOD: "green", BAD: "bold red", UNKNOWN: "dim", INFO: ""}


@dataclass
class Hop:
    title: str
    lines: list[tuple[str, str, str]] = field(default_factory=list)  # (label, value, state)

    def add(self, label: str, value: Any, state: str = INFO) -> None:
        self.lines.append((label, "?" if value is None else show_value(value), state))


# Where each finding breaks the path: ("hop", index) or ("link", index), and a short label.
BREAKS: dict[str, tuple[str, int, str]] = {
    "PPD001": ("link", 1, "client IP lost: no PROXY header, no preservation"),
    "PPD002": ("link", 0, "replies bypass the NLB (return path)"),
    "PPD003": ("link", 1, "PROXY header not expected → 400"),
    "PPD004": ("link", 1, "PROXY header expected, none sent → reset"),
    "PPD005": ("hop", 1, "health check fails on the status port"),
    "PPD006": ("hop", 2, "pods predate the mesh config"),
    "PPD007": ("hop", 2, "annotation not on the pod template"),
    "PPD008": ("hop", 1, "proxy-protocol annotation ignored"),
    "PPD009": ("hop", 1, "attributes drift from annotations"),
    "PPD010": ("link", 2, "X-Forwarded-For can be forged"),
    "PPD011": ("hop", 3, "echo strips X-Forwarded-For"),
    "PPD012": ("link", 1, "no PROXY header: IP is the NLB's"),
    "PPD013": ("hop", 2, "PROXY filter after tls_inspector"),
    "PPD014": ("hop", 1, "node health checks fail"),
    "PPD015": ("link", 0, "hairpin: caller inside the VPC"),
}


def _yes_no(value: Any, good_when: bool | None = None) -> tuple[str, str]:
    if value is None:
        return "?", UNKNOWN
    state = INFO if good_when is None else (GOOD if bool(value) == good_when else BAD)
    return ("on" if value else "off"), state


def describe_hops(config: TargetConfig, facts: FactView) -> tuple[list[Hop], list[str]]:
    """Four hops and three link labels from the config and the facts established so far."""
    client = Hop("client")
    client.add("source", facts.get("via_nlb.prober_ip") or config.nlb.client_source or "this host")
    if facts.has("syn.answer"):
        client.add("SYN from", facts.get("syn.answer"), GOOD if facts.get("syn.answer") == "nlb" else BAD)

    nlb = Hop("NLB")
    nlb.add("address", config.nlb.address or config.nlb.name or config.nlb.arn or None)
    value, state = _yes_no(facts.get("tg.pp_v2"))
    nlb.lines.append(("PROXY v2", value, state))
    value, state = _yes_no(facts.get("tg.preserve_ip"))
    nlb.lines.append(("preserve IP", value, state))
    nlb.add("targets", facts.get("tg.target_type"))
    if facts.has("hc.protocol"):
        hc = f"{facts.get('hc.protocol')} {facts.get('hc.port') or ''} {facts.get('hc.path') or ''}".strip()
        would = facts.get("hc.would_pass")
        nlb.add("health chk", hc, INFO if would is None else (GOOD if would else BAD))
    else:
        nlb.add("health chk", None, UNKNOWN)
    if facts.has("tg.healthy_count"):
        count = facts.get("tg.healthy_count")
        nlb.add("healthy", count, GOOD if count else BAD)

    gateway = Hop("gateway")
    gateway.add("direct", config.gateway.direct or None)
    mode, _ = gateway_mode(facts)
    gateway.add("expects PP", mode, UNKNOWN if mode is None else INFO)
    where = [label for fact, label in (("gateway.pp_pod_template", "pod template"), ("mesh.pp", "mesh config"),
                                       ("envoyfilter.pp", "EnvoyFilter")) if facts.get(fact)]
    if facts.has("gateway.pp_pod_template") or facts.has("mesh.pp"):
        gateway.add("set in", ", ".join(where) or "nowhere")
    if facts.has("gateway.pp_live"):
        value, _ = _yes_no(facts.get("gateway.pp_live"))
        gateway.add("live filter", value)
    hops = facts.get("gateway.num_trusted_proxies")
    if hops is None:
        hops = facts.get("gateway.xff_num_trusted_hops")
    if hops is not None:
        gateway.add("trusted hops", hops, GOOD if hops == 0 else BAD)
    pods = facts.get("gateway.pods")
    if isinstance(pods, list):
        serving = [p for p in pods if isinstance(p, dict) and not p.get("deleted")]
        ready = sum(1 for p in serving if p.get("ready"))
        leaving = len(pods) - len(serving)  # Terminating: replaced by a rollout (PPD094)
        gateway.add("pods ready", f"{ready}/{len(serving)}" + (f" (+{leaving} terminating)" if leaving else ""),
                    GOOD if ready else BAD)

    echo = Hop("echo")
    echo.add("path", config.echo.path)
    ip, cls = facts.get("via_nlb.client_ip"), facts.get("via_nlb.client_ip_class")
    if ip is not None:
        echo.add("client IP", f"{ip} ({cls})" if cls else ip, GOOD if cls in ("prober", "external") else BAD)
    elif facts.has("via_nlb.result"):
        result = facts.get("via_nlb.result")
        echo.add("via NLB", result, GOOD if result == "ok" else BAD)
    else:
        echo.add("client IP", None, UNKNOWN)
    if facts.has("via_nlb.echo_shows_xff"):
        value, state = _yes_no(facts.get("via_nlb.echo_shows_xff"), True)
        echo.lines.append(("shows XFF", "yes" if value == "on" else "no", state))

    link0 = "TCP"
    if facts.has("nlb.reachable"):
        link0 += " ok" if facts.get("nlb.reachable") else " unreachable"
    pp = facts.get("tg.pp_v2")
    link1 = "?" if pp is None else ("PPv2 + HTTP" if pp else "plain HTTP")
    link2 = "HTTP + XFF"
    return [client, nlb, gateway, echo], [link0, link1, link2]


def hop_text(hop: Hop, broken: str | None) -> Text:
    text = Text()
    for label, value, state in hop.lines:
        text.append(f"{label}: ", style="dim")
        text.append(clean(value, limit=60), style=STATE_STYLE.get(state, ""))
        text.append("\n")
    if broken:
        text.append(f"✗ {broken}", style="bold red")
    text.rstrip()
    return text


# How a hop line reads in the one-line form: the label shortened, or "" for the value alone.
SHORT_LABELS = {"source": "", "address": "", "direct": "", "path": "", "PROXY v2": "PPv2", "preserve IP": "preserve",
                "health chk": "health", "expects PP": "expects PP", "live filter": "live filter"}


def hop_line(hop: Hop, link: str | None, broken_hop: str | None, broken_link: str | None) -> Text:
    """One hop on one line: the title, its main value, the rest in brackets, then the link to the next hop."""
    text = Text()
    text.append(hop.title, style="bold")
    extras: list[tuple[str, str, str]] = []
    for label, value, state in hop.lines:
        short = SHORT_LABELS.get(label, label)
        if not short and not extras and value != "?":
            text.append(" ")
            text.append(clean(value), style=STATE_STYLE.get(state, ""))
        else:
            extras.append((short, value, state))
    if extras:
        text.append(" [", style="dim")
        for i, (label, value, state) in enumerate(extras):
            if i:
                text.append(", ", style="dim")
            if label:
                text.append(f"{label} ", style="dim")
            text.append(clean(value), style=STATE_STYLE.get(state, ""))
        text.append("]", style="dim")
    if broken_hop:
        text.append(f" ✗ {broken_hop}", style="bold red")
    if link is not None:
        if broken_link:
            text.append(f" ─✗ {clean(link)}: {broken_link}→", style="bold red")
        else:
            text.append(f" ─{clean(link)}→", style="bold")
    return text


class PathView(Vertical):
    """client ─▶ NLB ─▶ gateway ─▶ echo; a break (finding) turns a hop or a link red."""

    DEFAULT_CLASSES = "path-view"

    def compose(self) -> ComposeResult:
        with Horizontal(classes="path-boxes"):
            for i in range(4):
                yield Static(classes="hop", id=f"hop-{i}")
                if i < 3:
                    yield Static(classes="link", id=f"link-{i}")
        with Vertical(classes="path-lines"):
            for i in range(4):
                yield Static(classes="path-line", id=f"line-{i}")

    def show(self, config: TargetConfig, facts: FactView, finding_id: str | None = None) -> None:
        hops, links = describe_hops(config, facts)
        kind, index, label = BREAKS.get(finding_id or "", ("", -1, ""))
        for i, hop in enumerate(hops):
            box = self.query_one(f"#hop-{i}", Static)
            broken = label if kind == "hop" and index == i else None
            box.border_title = hop.title
            box.set_class(bool(broken), "-broken")
            box.update(hop_text(hop, broken))
            link_broken = label if kind == "link" and index == i else None
            line = self.query_one(f"#line-{i}", Static)
            line.set_class(bool(broken or link_broken), "-broken")
            line.update(hop_line(hop, links[i] if i < len(links) else None, broken, link_broken))
        for i, link in enumerate(links):
            box = self.query_one(f"#link-{i}", Static)
            broken = kind == "link" and index == i
            box.set_class(broken, "-broken")
            text = Text()
            text.append(clean(link) + "\n", style="dim")
            if broken:
                text.append("──✗──▶\n", style="bold red")
                text.append(label, style="bold red")
            else:
                text.append("─────▶", style="bold")
            box.update(text)
