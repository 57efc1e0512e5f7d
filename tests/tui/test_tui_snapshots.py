"""SVG snapshots of every screen at 120×40, built from fixed observations/findings/plan (no clocks, no live ports).

Update after an intended UI change with ``pytest tests/tui/test_tui_snapshots.py --snapshot-update`` and review the
diff of ``tests/tui/__snapshots__/``.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from textual.widgets import DataTable

from ppdoctor.app import PPDoctorApp
from ppdoctor.probes import PROBES
from ppdoctor.screens import messages as msg

from .conftest import settle
from .support import SIZE, FakeReport, demo_plan, demo_session

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


def test_snapshot_start(snap_compare):
    app = PPDoctorApp(start_reason="No target is configured — no config file (~/.config/ppdoctor/config.toml does "
                                   "not exist) — and no AWS credentials were found.", scenarios=SCENARIOS)
    assert snap_compare(app, terminal_size=SIZE, run_before=goto())


def test_snapshot_lab_that_did_not_start(snap_compare, monkeypatch):
    from ppdoctor.lab.handle import LabHandle
    from ppdoctor.errors import LabError

    def fail(self: LabHandle) -> dict[str, Any]:
        raise LabError("the lab did not start: envoy exited with code 1", hint="see /state/lab.log")

    monkeypatch.setattr(LabHandle, "start", fail)
    app = PPDoctorApp(lab=LabHandle("healthy", Path("/state")), cursor_blink=False)
    assert snap_compare(app, terminal_size=SIZE, run_before=goto())


def test_snapshot_setup(snap_compare):
    assert snap_compare(demo_app("setup"), terminal_size=SIZE, run_before=goto())


def test_snapshot_probes(snap_compare):
    async def highlight_ppv2(pilot: Any) -> None:
        pilot.app.screen.query_one("#probe-table", DataTable).move_cursor(row=list(PROBES).index("direct-ppv2"))

    assert snap_compare(demo_app(), terminal_size=SIZE, run_before=goto(then=highlight_ppv2))


def test_snapshot_diagnosis(snap_compare):
    assert snap_compare(demo_app(), terminal_size=SIZE, run_before=goto("3"))


def _with_plan(*keys: str):
    async def post_plan(pilot: Any) -> None:
        pilot.app.post_message(msg.PlanReady(demo_plan()))
        await settle(pilot, pilot.app)
        for key in keys:
            await pilot.press(key)

    return post_plan


def test_snapshot_fix(snap_compare):
    assert snap_compare(demo_app(), terminal_size=SIZE, run_before=goto("4", then=_with_plan()))


def test_snapshot_confirm_modal(snap_compare):
    assert snap_compare(demo_app(), terminal_size=SIZE, run_before=goto("4", then=_with_plan("x")))


def test_snapshot_report(snap_compare):
    assert snap_compare(demo_app(), terminal_size=SIZE, run_before=goto("5"))


def test_snapshot_timeline(snap_compare):
    assert snap_compare(demo_app(), terminal_size=SIZE, run_before=goto("t"))


def test_snapshot_help(snap_compare):
    assert snap_compare(demo_app(), terminal_size=SIZE, run_before=goto("question_mark"))
