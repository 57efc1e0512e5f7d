"""SVG snapshots of every screen at 80×24 and 120×40 (Diagnosis also at 200×50), built from fixed
observations/findings/plan captured from the tg-pp-on-gateway-off lab after every probe ran (no clocks, no live
ports: tests/tui/data/).

Other branches add probes and findings, which changes what these screens hold; regenerate rather than hand-edit.

Update after an intended UI change with ``pytest tests/tui/test_tui_snapshots.py --snapshot-update`` and review the
diff of ``tests/tui/__snapshots__/``.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from textual.widgets import DataTable

from ppdoctor.app import PPDoctorApp
from ppdoctor.probes import PROBES
from ppdoctor.screens import messages as msg

from .conftest import settle
from .support import SIZE, FakeReport, demo_plan, demo_session

SMALL = (80, 24)  # most terminals' default, and a common tmux pane
SIZES = pytest.mark.parametrize("size", [SMALL, SIZE], ids=["80x24", "120x40"])
SCENARIOS = [SimpleNamespace(name="healthy", description="PROXY v2 end to end: the client IP arrives"),
             SimpleNamespace(name="tg-pp-on-gateway-off",
                             description="Target group sends PROXY v2, the gateway listener has no PROXY filter"),
             SimpleNamespace(name="preserve-on-nat", description="Client IP preservation with a NAT gateway route")]


def demo_app(landing: str = "probes") -> PPDoctorApp:
    return PPDoctorApp(demo_session(), landing=landing, report_backend=FakeReport(), cursor_blink=False)


def goto(*keys: str, then: Any = None):
    async def run_before(pilot: Any) -> None:
        app = pilot.app
        await settle(pilot, app)
        for key in keys:
            await pilot.press(key)
            await settle(pilot, app)
        if then is not None:
            await then(pilot)
            await settle(pilot, app)

    return run_before


@SIZES
def test_snapshot_start(snap_compare, size):
    app = PPDoctorApp(start_reason="No target is configured — no config file (~/.config/ppdoctor/config.toml does "
                                   "not exist) — and no AWS credentials were found.", scenarios=SCENARIOS)
    assert snap_compare(app, terminal_size=size, run_before=goto())


@SIZES
def test_snapshot_lab_that_did_not_start(snap_compare, monkeypatch, size):
    from ppdoctor.lab.handle import LabHandle
    from ppdoctor.errors import LabError

    def fail(self: LabHandle) -> dict[str, Any]:
        raise LabError("the lab did not start: envoy exited with code 1", hint="see /state/lab.log")

    monkeypatch.setattr(LabHandle, "start", fail)
    app = PPDoctorApp(lab=LabHandle("healthy", Path("/state")), cursor_blink=False)
    assert snap_compare(app, terminal_size=size, run_before=goto())


@SIZES
def test_snapshot_setup(snap_compare, size):
    assert snap_compare(demo_app("setup"), terminal_size=size, run_before=goto())


@SIZES
def test_snapshot_probes(snap_compare, size):
    async def highlight_ppv2(pilot: Any) -> None:
        pilot.app.screen.query_one("#probe-table", DataTable).move_cursor(row=list(PROBES).index("direct-ppv2"))

    assert snap_compare(demo_app(), terminal_size=size, run_before=goto(then=highlight_ppv2))


@pytest.mark.parametrize("size", [SMALL, SIZE, (200, 50)], ids=["80x24", "120x40", "200x50"])
def test_snapshot_diagnosis(snap_compare, size):
    assert snap_compare(demo_app(), terminal_size=size, run_before=goto("3"))


def _with_plan(*keys: str):
    async def post_plan(pilot: Any) -> None:
        pilot.app.post_message(msg.PlanReady(demo_plan()))
        await settle(pilot, pilot.app)
        for key in keys:
            await pilot.press(key)

    return post_plan


@SIZES
def test_snapshot_fix(snap_compare, size):
    assert snap_compare(demo_app(), terminal_size=size, run_before=goto("4", then=_with_plan()))


@SIZES
def test_snapshot_confirm_modal(snap_compare, size):
    assert snap_compare(demo_app(), terminal_size=size, run_before=goto("4", then=_with_plan("x")))


@SIZES
def test_snapshot_report(snap_compare, size):
    assert snap_compare(demo_app(), terminal_size=size, run_before=goto("5"))


@SIZES
def test_snapshot_timeline(snap_compare, size):
    assert snap_compare(demo_app(), terminal_size=size, run_before=goto("t"))


@SIZES
def test_snapshot_help(snap_compare, size):
    assert snap_compare(demo_app(), terminal_size=size, run_before=goto("question_mark"))


@SIZES
def test_snapshot_bench(snap_compare, size):
    assert snap_compare(demo_app(), terminal_size=size, run_before=goto("6"))


@SIZES
def test_snapshot_bench_results(snap_compare, size):
    """ctrl+f: on a narrow terminal the results take the place of the form."""
    assert snap_compare(demo_app(), terminal_size=size, run_before=goto("6", "ctrl+f"))


def test_snapshot_diagnosis_path_at_80x24(snap_compare):
    """p shows the one-line-per-hop path that 24 rows leave out by default."""
    assert snap_compare(demo_app(), terminal_size=SMALL, run_before=goto("3", "p"))


@SIZES
def test_snapshot_pcap(snap_compare, size):
    assert snap_compare(demo_app(), terminal_size=size, run_before=goto("7"))
