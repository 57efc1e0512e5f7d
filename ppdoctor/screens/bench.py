"""Bench: does PROXY protocol v2 cost latency? The seed's PP off / PP on table and a latency plot.

The form takes what ``ppdoctor bench`` takes; ctrl+r runs, ctrl+x stops (the table keeps what
was measured). While a run goes, the plot follows its p50/p99 over half-second windows; when
the bench is done it shows latency by percentile (p50 … p99.99, max) for the rate of the
highlighted row, one line per side. The work happens in :mod:`.benchctl` and the engine.
"""

from __future__ import annotations

import math
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Checkbox, DataTable, Input, Label, Select, Static

from ..bench.report import fmt_rate, side_how
from ..widgets.safe import safe_text
from .base import WorkflowScreen
from .benchctl import BenchParams

TABLE_PERCENTILES = (50.0, 90.0, 95.0, 99.0)
CURVE = ((50.0, "p50"), (75.0, "p75"), (90.0, "p90"), (95.0, "p95"), (99.0, "p99"), (99.9, "p99.9"),
         (99.99, "p99.99"))
SIDE_COLORS = {"off": "cyan", "on": "magenta"}
SIDE_NAMES = {"off": "PP off", "on": "PP on", "nlb": "via NLB"}


def ms_text(ns: float | None) -> str:
    if ns is None:
        return "-"
    ms = ns / 1e6
    return f"{ms:.3f}" if ms < 10 else f"{ms:.1f}" if ms < 1000 else f"{ms:.0f}"


def errors_text(outcomes: dict[str, int]) -> str:
    from ..bench.report import SHORT
    from ..bench.wire import OK

    parts = [f"{SHORT.get(k, k)} {v}" for k, v in sorted(outcomes.items()) if k != OK and v]
    return ", ".join(parts) or "0"


class BenchScreen(WorkflowScreen):
    MODE = "bench"
    AUTO_FOCUS = "#bench-table"  # not a field: 1–6 and t keep switching screens
    HELP = ("Does PROXY protocol v2 cost latency? The bench sends the same open-loop schedule (latency from each "
            "request's scheduled send time) with a PPv2 header per connection and without, and shows the seed's "
            "table: achieved rate, p50/p90/p95/p99/max, late and unsent sends, errors by class. On the lab the "
            "gateway answers GET /bench itself; a side the gateway refuses gets a companion lab. While a run goes "
            "the plot follows its p50/p99; afterwards it shows latency by percentile for the highlighted rate.")
    BINDINGS = [
        Binding("ctrl+r", "run", "Run bench", id="bench.run", tooltip="Run the bench with the settings on the left"),
        Binding("ctrl+x", "stop", "Stop bench", id="bench.stop",
                tooltip="Stop the running bench; the table keeps what was measured"),
        Binding("ctrl+f", "toggle_form", "Form", id="bench.form",
                tooltip="Hide or show the settings, giving the table and the plot the whole width"),
        Binding("escape", "leave_field", "Leave field", show=False, id="bench.leave_field",
                tooltip="Take the focus off the field so 1–6 and t switch screens again"),
    ]

    def compose_body(self) -> ComposeResult:
        from textual_plotext import PlotextPlot

        p = self.ppd.bench.params
        with Horizontal(id="bench-body"):
            with VerticalScroll(id="bench-form", classes="panel"):
                yield Label("Rates (RPS, a,b,c or max)")
                yield Input(p.rates, id="bench-rates", placeholder="1500,2000,4000", compact=True)
                yield Label("Path")
                yield Input(p.path, id="bench-path", placeholder="/bench", compact=True)
                with Horizontal(classes="bench-pair"):
                    with Vertical():
                        yield Label("Seconds/run")
                        yield Input(p.duration, id="bench-duration", placeholder="10", compact=True)
                    with Vertical():
                        yield Label("Connections")
                        yield Input(p.connections, id="bench-connections", placeholder="32", compact=True)
                yield Label("Mode")
                yield Select([("keep-alive", "keepalive"), ("new connection per request", "new-connection")],
                             value=p.mode, allow_blank=False, id="bench-mode", compact=True)
                yield Label("Target")
                yield Select([("gateway (bench adds PP)", "gateway"),
                              ("NLB (NLB adds PP)", "nlb")],
                             value=p.target, allow_blank=False, id="bench-target", compact=True)
                yield Label("Sides")
                yield Select([("PP off and on", "both"), ("PP on only", "on"), ("PP off only", "off")],
                             value=p.pp, allow_blank=False, id="bench-pp", compact=True)
                yield Label("PP-off gateway config")
                yield Input(p.off_config, id="bench-off-config", placeholder="path/to/ppdoctor.toml", compact=True)
                yield Checkbox("companion lab if refused", p.companion, id="bench-companion", compact=True,
                               tooltip="On the lab: start a second lab whose gateway accepts the side this one "
                                       "refuses (healthy for PP on, no-client-ip for PP off)")
                with Horizontal(id="bench-buttons"):
                    yield Button("Run", id="bench-run", variant="primary", tooltip="Run the bench (ctrl+r)",
                                 compact=True)
                    yield Button("Stop", id="bench-stop", variant="error", tooltip="Stop it (ctrl+x)", compact=True)
                yield Static(id="bench-status")
            with Vertical(id="bench-results"):
                table: DataTable[Text] = DataTable(id="bench-table", cursor_type="row", zebra_stripes=True)
                table.border_title = "PP off vs PP on · latency in ms"
                yield table
                yield PlotextPlot(id="bench-plot")
                with VerticalScroll(id="bench-notes-pane", classes="panel"):
                    yield Static(id="bench-notes")

    def on_mount(self) -> None:
        self.query_one("#bench-form").border_title = "Bench"
        self.query_one("#bench-notes-pane").border_title = "Sides and notes"
        self.query_one("#bench-companion", Checkbox).display = self.ppd.lab is not None
        self.follow_cursor_blink()
        table = self.query_one("#bench-table", DataTable)
        for key, label in (("rate", "rate"), ("pp", "PP"), ("achieved", "RPS"), ("p50", "p50"), ("p90", "p90"),
                           ("p95", "p95"), ("p99", "p99"), ("max", "max"), ("late", "late>1ms"),
                           ("unsent", "unsent"), ("errors", "errors")):
            table.add_column(label, key=key)
        self.ppd.bench_changed.subscribe(self, self._changed)
        self._refresh_all()

    # --- form ---------------------------------------------------------------------------------

    def params(self) -> BenchParams:
        def value(selector: str) -> str:
            return self.query_one(selector, Input).value

        def choice(selector: str, default: str) -> str:
            v = self.query_one(selector, Select).value
            return v if isinstance(v, str) else default

        return BenchParams(rates=value("#bench-rates"), duration=value("#bench-duration"),
                           connections=value("#bench-connections"), mode=choice("#bench-mode", "keepalive"),
                           target=choice("#bench-target", "gateway"), pp=choice("#bench-pp", "both"),
                           off_config=value("#bench-off-config"), path=value("#bench-path"),
                           companion=self.query_one("#bench-companion", Checkbox).value)

    @on(Button.Pressed, "#bench-run")
    @on(Input.Submitted)
    def action_run(self) -> None:
        params = self.params()
        problem = self.ppd.bench.start(params)
        if problem:
            self._status(problem, "bold red")
            self.ppd.say(problem, severity="warning")
            return
        total = params.total_seconds()
        self.ppd.say(f"bench started: about {total:.0f} s of load" if total else "bench started")

    def action_toggle_form(self) -> None:
        # a class, not form.display: on a narrow terminal the stylesheet shows the form or the results
        self.toggle_class("-form-hidden")
        if self.has_class("-form-hidden"):
            self.query_one("#bench-table", DataTable).focus()

    def action_leave_field(self) -> None:
        self.query_one("#bench-table", DataTable).focus()

    @on(Button.Pressed, "#bench-stop")
    def action_stop(self) -> None:
        if not self.ppd.bench.stop():
            self.ppd.say("no bench is running")

    # --- drawing --------------------------------------------------------------------------------

    def _changed(self, kind: str) -> None:
        if kind == "progress":
            self._refresh_running_row()
            self._draw_plot()
            self._refresh_status()
            return
        self._refresh_all()

    def _refresh_all(self) -> None:
        self._refresh_table()
        self._draw_plot()
        self._refresh_notes()
        self._refresh_status()

    def _status(self, text: str, style: str = "") -> None:
        self.query_one("#bench-status", Static).update(safe_text(text, style, multiline=True, limit=600))

    def _refresh_status(self) -> None:
        bench = self.ppd.bench
        style = "bold yellow" if bench.running else ("bold red" if bench.error else "")
        self._status(bench.status, style)
        self.query_one("#bench-run", Button).disabled = bench.running
        self.query_one("#bench-stop", Button).disabled = not bench.running or bench.stopping

    def _keys(self) -> list[Any]:
        bench = self.ppd.bench
        keys = list(bench.plan)
        keys += [k for k in bench.runs if k not in keys]
        return keys

    def _row(self, key: Any) -> list[Text]:
        bench = self.ppd.bench
        rate, side = key
        head = [Text(fmt_rate(rate)), Text(side, style=SIDE_COLORS.get(side, ""))]
        r = bench.runs.get(key)
        if r is None:
            p = bench.progress
            if bench.running and p is not None and (p.rate, p.side) == key:
                rps = p.ok / p.elapsed_s if p.elapsed_s > 0 else 0.0
                return head + [Text(f"{rps:.0f}…", style="yellow"),
                               Text("-" if p.window_p50_ms is None else f"{p.window_p50_ms:.3f}", style="yellow"),
                               Text(""), Text(""),
                               Text("-" if p.window_p99_ms is None else f"{p.window_p99_ms:.3f}", style="yellow"),
                               Text(""), Text(str(p.late)), Text(str(p.unsent)), Text(str(p.errors)),
                               ]
            return head + [Text("queued" if bench.running else "not run", style="dim")] + [Text("")] * 8
        if r.skipped:
            return head + [Text("skipped", style="bold red")] + [Text("")] * 7 + [safe_text(r.skipped, limit=60)]
        lat = r.latency
        late = "-" if r.rate is None else f"{r.late} {r.late_pct:.1f}%"
        unsent = "-" if r.rate is None else str(r.unsent)
        held_style = "bold red" if r.held is False else ""
        return head + [Text(f"{r.achieved_rps:.1f}", style=held_style)] + [
            Text(ms_text(lat.percentiles.get(q))) for q in TABLE_PERCENTILES
        ] + [Text(ms_text(lat.max_ns)), Text(late, style=held_style), Text(unsent, style=held_style),
             Text(errors_text(r.outcomes), style="bold red" if r.errors else "")]

    def _refresh_table(self) -> None:
        table = self.query_one("#bench-table", DataTable)
        cursor = table.cursor_row
        table.clear()
        for key in self._keys():
            table.add_row(*self._row(key), key=_row_key(key))
        if table.row_count:
            table.move_cursor(row=min(max(cursor, 0), table.row_count - 1))

    def _refresh_running_row(self) -> None:
        p = self.ppd.bench.progress
        if p is None:
            return
        table = self.query_one("#bench-table", DataTable)
        key = (p.rate, p.side)
        row_key = _row_key(key)
        if row_key not in table.rows:
            self._refresh_table()
            return
        for column, cell in zip(table.columns, self._row(key)):
            table.update_cell(row_key, column, cell)

    def _selected_rate(self) -> Any:
        keys = self._keys()
        table = self.query_one("#bench-table", DataTable)
        if not keys:
            return None, False
        row = min(max(table.cursor_row, 0), len(keys) - 1)
        return keys[row][0], True

    @on(DataTable.RowHighlighted, "#bench-table")
    def _row_highlighted(self) -> None:
        if not self.ppd.bench.running:
            self._draw_plot()

    def _draw_plot(self) -> None:
        from textual_plotext import PlotextPlot

        widget = self.query_one("#bench-plot", PlotextPlot)
        plt = widget.plt
        plt.clear_data()
        plt.clear_figure()
        bench = self.ppd.bench
        p = bench.progress
        if bench.running and p is not None:
            points = bench.live.get((p.rate, p.side), [])
            xs = [x for x, p50, _ in points if p50 is not None]
            if xs:
                plt.plot(xs, [p50 for _, p50, _ in points if p50 is not None], label="p50", marker="braille",
                         color="cyan")
                xs99 = [x for x, _, p99 in points if p99 is not None]
                plt.plot(xs99, [p99 for _, _, p99 in points if p99 is not None], label="p99", marker="braille",
                         color="magenta")
            plt.title(f"live: {fmt_rate(p.rate)} RPS, {SIDE_NAMES.get(p.side, p.side)}")
            plt.xlabel("seconds into the run")
            plt.ylabel("ms")
            widget.refresh()
            return
        rate, any_rows = self._selected_rate()
        drawn: list[float] = []
        if any_rows:
            labels = [label for _, label in CURVE] + ["max"]
            xs = list(range(len(labels)))
            for (r_rate, side), r in bench.runs.items():
                if r_rate != rate or r.skipped or not r.latency.count:
                    continue
                values = [r.latency.percentiles.get(q) for q, _ in CURVE] + [r.latency.max_ns]
                if any(v is None for v in values):
                    continue
                ms = [max(v / 1e6, 1e-3) for v in values]
                # log10 computed here, on a linear axis: plotext's own log scale re-applies log10 to
                # its data on every build, so a resize (a second build) crashed the screen
                plt.plot(xs, [math.log10(v) for v in ms], label=SIDE_NAMES.get(side, side), marker="braille",
                         color=SIDE_COLORS.get(side, "yellow"))
                drawn += ms
            plt.xticks(xs, labels)
        if drawn:
            ticks = log_ticks(min(drawn), max(drawn))
            plt.ylim(math.log10(ticks[0]), math.log10(ticks[-1]))
            plt.yticks([math.log10(t) for t in ticks], [f"{t:g}" for t in ticks])
            plt.title(f"{fmt_rate(rate)} RPS: latency by percentile")
            plt.ylabel("ms (log)")
        else:
            plt.title("latency plot: run a bench (ctrl+r)" if not bench.runs else
                      f"no latency measured at {fmt_rate(rate)} RPS")
        widget.refresh()

    def _refresh_notes(self) -> None:
        from ..bench.report import comparison

        bench = self.ppd.bench
        text = Text()
        spec = bench.spec
        if spec is not None:
            text.append(f"GET {spec.path}, {spec.mode}, {spec.connections} connections, {spec.duration_s:g} s per run; "
                        "latency from each request's scheduled send time\n", style="bold")
            for side in spec.sides:
                t = side.target
                text.append(f"  {SIDE_NAMES.get(side.name, side.name):<8}", style=SIDE_COLORS.get(side.name, ""))
                text.append_text(safe_text(f" {t.kind} {t.address}: {side_how(t)} [{side.source}]"))
                text.append("\n")
        if bench.runs and not bench.running:
            text.append("The plot shows the highlighted row's rate (↑/↓ in the table); while a run goes, its "
                        "p50/p99 over half-second windows.\n", style="dim")
        if bench.result is not None:
            for line in comparison(bench.result):
                text.append(line.strip() + "\n", style="bold")
        for (rate, side), r in bench.runs.items():
            for note in r.notes():
                text.append_text(safe_text(f"{fmt_rate(rate)} RPS, PP {side}: {note}", multiline=True, limit=800))
                text.append("\n")
        if bench.error:
            text.append("failed: ", style="bold red")
            text.append_text(safe_text(bench.error, multiline=True, limit=2000))
            text.append("\n")
        if not text:
            text.append("Set rates and run (ctrl+r). On the lab, GET /bench is answered by the gateway's Envoy "
                        "itself, so the bench measures the gateway, not the echo.", style="dim")
        self.query_one("#bench-notes", Static).update(text)


def log_ticks(low: float, high: float) -> list[float]:
    """1-2-5 ticks (ms) for a log axis: from the last one at or below ``low`` to the first at or above ``high``."""
    candidates: list[float] = []
    decade = 10.0 ** (math.floor(math.log10(low)) - 1)
    while not candidates or candidates[-1] < high:
        candidates += [float(f"{step * decade:.6g}") for step in (1.0, 2.0, 5.0)]
        decade *= 10
    bottom = candidates.index(max(t for t in candidates if t <= low))
    top = candidates.index(min(t for t in candidates if t >= high))
    if top == bottom:  # one value: show the ticks on either side of it
        bottom, top = max(bottom - 1, 0), top + 1
        candidates.append(float(f"{candidates[-3] * 10:.6g}"))  # the next 1-2-5 value
    ticks = candidates[bottom:top + 1]
    if len(ticks) > 9:  # many decades: label the powers of ten only (and keep both ends)
        ticks = [ticks[0]] + [t for t in ticks[1:-1] if abs(math.log10(t) - round(math.log10(t))) < 1e-9] + [ticks[-1]]
    return ticks


def _row_key(key: Any) -> str:
    rate, side = key
    return f"{'max' if rate is None else repr(rate)}|{side}"
