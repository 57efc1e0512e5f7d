"""The bench report: the seed's table (rate, p90/p95/p99 with PP off and on), plus what it left out."""

from __future__ import annotations

import json
from typing import TextIO

from . import wire
from .engine import Target
from .runner import BenchResult, RunResult

SHORT = {
    wire.OK: "ok",
    wire.HTTP_4XX: "4xx",
    wire.HTTP_5XX: "5xx",
    wire.EMPTY_REPLY: "empty",
    wire.RESET: "reset",
    wire.TIMEOUT_CONNECT: "t-conn",
    wire.TIMEOUT_RESPONSE: "t-resp",
    wire.REFUSED: "refused",
    wire.PROTOCOL_ERROR: "proto",
    wire.OTHER: "other",
}
SIDE_LABEL = {"off": "off", "on": "on", "nlb": "nlb"}


def fmt_ms(ns: int | float | None) -> str:
    if ns is None:
        return "-"
    ms = ns / 1e6
    if ms < 10:
        return f"{ms:.2f}ms"
    if ms < 100:
        return f"{ms:.1f}ms"
    if ms < 10_000:
        return f"{ms:.0f}ms"
    return f"{ms / 1000:.1f}s"


def fmt_rate(rate: float | None) -> str:
    return "max" if rate is None else f"{rate:g}"


def side_how(t: Target) -> str:
    """What a side's connections carry, in words (the CLI's header and the TUI's notes)."""
    if t.kind == "nlb":
        return f"through the NLB from {t.source or 'any address'}; the client sends no header — {t.label}"
    if t.send_pp:
        return "PPv2 header per connection, source 203.0.113.x (TEST-NET-3)"
    return "plain HTTP, no PROXY header"


def describe_side(name: str, result: BenchResult) -> str:
    side = next(s for s in result.spec.sides if s.name == name)
    t = side.target
    return f"  PP {SIDE_LABEL.get(name, name):<4} {t.kind} {t.address:<22} {side_how(t)}  [{side.source}]"


def _columns(result: BenchResult) -> list[str]:
    classes = [c for c in wire.CLASSES if c != wire.OTHER]
    if any(r.outcomes.get(wire.OTHER) for r in result.runs):
        classes.append(wire.OTHER)
    return classes


def table(result: BenchResult) -> list[str]:
    classes = _columns(result)
    head = ["rate", "PP", "achieved", "p50", "p90", "p95", "p99", "max", "late>1ms", "unsent"] + [SHORT[c] for c in classes]
    rows: list[list[str]] = []
    for r in result.runs:
        if r.skipped:
            rows.append([fmt_rate(r.rate), SIDE_LABEL.get(r.side, r.side), "skipped"] + [""] * (len(head) - 3))
            continue
        lat = r.latency
        late = "-" if r.rate is None else f"{r.late} ({r.late_pct:.2f}%)"
        unsent = "-" if r.rate is None else str(r.unsent)
        rows.append(
            [fmt_rate(r.rate), SIDE_LABEL.get(r.side, r.side), f"{r.achieved_rps:.1f}"]
            + [fmt_ms(lat.percentiles.get(p)) for p in (50.0, 90.0, 95.0, 99.0)]
            + [fmt_ms(lat.max_ns), late, unsent]
            + [str(r.outcomes.get(c, 0)) for c in classes]
        )
    widths = [max(len(head[i]), *(len(row[i]) for row in rows)) if rows else len(head[i]) for i in range(len(head))]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths))]
    for row in rows:
        lines.append("  ".join(c.rjust(w) for c, w in zip(row, widths)).rstrip())
    return lines


def comparison(result: BenchResult) -> list[str]:
    out: list[str] = []
    for rate in result.spec.rates:
        off, on = result.run_for(rate, "off"), result.run_for(rate, "on")
        if not off or not on or off.skipped or on.skipped or not off.latency.count or not on.latency.count:
            continue
        parts = []
        for p in (50.0, 90.0, 95.0, 99.0):
            d = round((on.latency.percentiles[p] - off.latency.percentiles[p]) / 1e6, 2) or 0.0  # no "-0.00"
            parts.append(f"p{p:g} {d:+.2f} ms")
        out.append(f"  {fmt_rate(rate)} RPS, PP on − PP off: " + ", ".join(parts))
    return out


def render_text(result: BenchResult) -> str:
    s = result.spec
    sides = [x.name for x in s.sides]
    lines = [
        f"ppdoctor bench: GET {s.path}, {s.mode}, {s.connections} connections, "
        f"{s.duration_s:g} s per run, open loop (latency from each request's scheduled send time)"
        + (", SCHED_FIFO load processes" if s.realtime else ""),
    ]
    lines += [describe_side(n, result) for n in sides]
    lines.append("")
    lines += table(result)
    cmp = comparison(result)
    if cmp:
        lines.append("")
        lines += cmp
    notes: list[str] = []
    for r in result.runs:
        for n in r.notes():
            notes.append(f"  {fmt_rate(r.rate)} RPS, PP {r.side}: {n}")
    workers = sorted({r.workers for r in result.runs if not r.skipped})
    if notes:
        lines.append("")
        lines += notes
    lines.append("")
    footer = ("late>1ms: sends that left more than 1 ms after their scheduled time; unsent: scheduled requests "
              "never sent. Percentiles are exact (nearest rank) over every response")
    if any(not r.latency.exact for r in result.runs if r.latency.count):
        footer += " (log-linear buckets, ≤ 0.1 % error, where a run exceeded the sample memory bound)"
    footer += f"; worker processes per run: {', '.join(map(str, workers)) or '-'}."
    lines.append(footer)
    if result.interrupted:
        lines.append("interrupted: the table holds what was measured until Ctrl-C.")
    return "\n".join(lines)


def render_json(result: BenchResult) -> str:
    return json.dumps(result.as_dict(), indent=None)


def print_progress_line(stream: TextIO, p) -> None:  # BenchProgress
    p50 = "-" if p.window_p50_ms is None else f"{p.window_p50_ms:.2f}"
    p99 = "-" if p.window_p99_ms is None else f"{p.window_p99_ms:.2f}"
    stream.write(
        f"\r  [{p.run_index + 1}/{p.run_count}] {fmt_rate(p.rate)} RPS PP {p.side}: {p.elapsed_s:5.1f}/{p.duration_s:g} s "
        f"sent {p.sent} ok {p.ok} err {p.errors} late {p.late} unsent {p.unsent} "
        f"p50 {p50} ms p99 {p99} ms   "
    )
    stream.flush()


def run_line(r: RunResult) -> str:
    if r.skipped:
        return f"{fmt_rate(r.rate)} RPS PP {r.side}: {r.skipped}"
    return (f"{fmt_rate(r.rate)} RPS PP {r.side}: achieved {r.achieved_rps:.1f}, p50 {fmt_ms(r.latency.percentiles.get(50.0))}, "
            f"p99 {fmt_ms(r.latency.percentiles.get(99.0))}, late {r.late}, unsent {r.unsent}, errors {r.errors}")
