"""The Bench screen (6): form validation, a run against a local server, stop, quit mid-run, and on the lab a
companion lab for the side the gateway refuses. Functional only: no latency is asserted."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from textual.widgets import DataTable, Input, Select, Static

from ppdoctor.app import PPDoctorApp
from ppdoctor.lab.handle import LabHandle
from ppdoctor.bench import wire
from ppdoctor.config import GatewayTarget, TargetConfig
from ppdoctor.screens.bench import BenchScreen, log_ticks
from ppdoctor.screens.modals import ConfirmModal
from ppdoctor.session import IncidentSession

from ..bench.servers import BehaviourServer
from .conftest import screen_text, settle
from .support import SIZE, demo_plan

pytestmark = pytest.mark.timeout(120)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


async def wait_until(pilot: Any, condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            bench = pilot.app.bench
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}: status {bench.status!r}, "
                                 f"error {bench.error!r}, runs {list(bench.runs)}")
        await pilot.pause(0.1)


def server_config(port: int) -> TargetConfig:
    return TargetConfig(name="bench-test", gateway=GatewayTarget(direct=f"127.0.0.1:{port}"))


async def fill(pilot: Any, app: PPDoctorApp, **values: str) -> None:
    screen = app.screen
    for field, value in values.items():
        if field in ("mode", "target", "pp"):
            screen.query_one(f"#bench-{field}", Select).value = value
        else:
            screen.query_one(f"#bench-{field.replace('_', '-')}", Input).value = value
    await pilot.pause()


def bench_children() -> list[int]:
    """Live processes started by this test process for the bench (not multiprocessing's resource tracker)."""
    out = []
    me = str(os.getpid())
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ")
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z" and b"multiprocessing.spawn" in cmd:
            out.append(int(pid))
    return out


@pytest.fixture
async def ok_server():
    server = await BehaviourServer("ok").start("127.0.0.1")
    yield server
    await server.stop()


async def test_bad_rate_is_reported_and_nothing_runs():
    app = PPDoctorApp(IncidentSession(server_config(9)), landing="bench", cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert isinstance(app.screen, BenchScreen)
        await fill(pilot, app, rates="fast", duration="1")
        await pilot.press("ctrl+r")
        await settle(pilot, app)
        status = str(app.screen.query_one("#bench-status", Static).render())
        assert "'fast' is not a number" in status
        assert not app.bench.running and app.bench.spec is None
        assert not [w for w in app.workers if w.group == "bench"]
        await fill(pilot, app, rates="100", connections="0")
        await pilot.press("ctrl+r")
        await settle(pilot, app)
        assert "connections must be ≥ 1" in str(app.screen.query_one("#bench-status", Static).render())
        assert not app.bench.running
        await fill(pilot, app, connections="4", path="bench")
        await pilot.press("ctrl+r")
        await settle(pilot, app)
        assert "must start with /" in str(app.screen.query_one("#bench-status", Static).render())
        assert not app.bench.running


async def test_run_fills_the_table_plot_and_timeline(ok_server):
    app = PPDoctorApp(IncidentSession(server_config(ok_server.port)), landing="bench", cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await fill(pilot, app, rates="100,200", duration="1", connections="4", pp="off")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: app.bench.result is not None, 60, "the bench to finish")
        await settle(pilot, app)
        result = app.bench.result
        assert [(r.rate, r.side) for r in result.runs] == [(100.0, "off"), (200.0, "off")]
        for run in result.runs:
            assert run.outcomes.get(wire.OK) == run.scheduled == int(run.rate) and run.errors == 0
        table = app.screen.query_one("#bench-table", DataTable)
        assert table.row_count == 2
        cells = [str(c) for c in table.get_row_at(1)]
        assert cells[:3] == ["200", "off", f"{result.runs[1].achieved_rps:.1f}"]
        assert cells[3] == f"{result.runs[1].latency.percentiles[50.0] / 1e6:.3f}"
        text = screen_text(app)
        assert "100 RPS: latency by percentile" in text and "p99.9" in text
        table.move_cursor(row=1)
        await settle(pilot, app)
        assert "200 RPS: latency by percentile" in screen_text(app)
        width = table.size.width
        await pilot.press("ctrl+f")  # the form hides: the table and the plot take the whole width
        await settle(pilot, app)
        assert "Seconds/run" not in screen_text(app) and table.size.width > width
        await pilot.press("ctrl+f")
        await settle(pilot, app)
        assert "Seconds/run" in screen_text(app)
        # the plot is built again at every size (plotext's own log scale crashed on the second build)
        for size in ((100, 30), (160, 50), SIZE):
            await pilot.resize_terminal(*size)
            await settle(pilot, app)
            assert "200 RPS: latency by percentile" in screen_text(app)
        # every run is in the incident record
        notes = [e.summary for e in app.timeline if e.summary.startswith("bench:")]
        assert any("100 RPS PP off: achieved" in n for n in notes) and any("200 RPS PP off" in n for n in notes)
        assert "done: 2 run(s)" in str(app.screen.query_one("#bench-status", Static).render())
        assert len(ok_server.arrivals) >= 300  # 100 + 200 scheduled, plus the preflight


async def start_long_run(pilot: Any, app: PPDoctorApp) -> None:
    """A 60 s run at 100 RPS, returned once it is under way."""
    await settle(pilot, app)
    await fill(pilot, app, rates="100", duration="60", connections="2", pp="off")
    await pilot.press("ctrl+r")
    await wait_until(pilot, lambda: app.bench.progress is not None and app.bench.progress.ok >= 50, 30, "progress")
    await pilot.pause(0.2)


async def test_stop_keeps_what_was_measured(ok_server):
    app = PPDoctorApp(IncidentSession(server_config(ok_server.port)), landing="bench", cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await start_long_run(pilot, app)
        assert "live: 100 RPS" in screen_text(app)
        # no fix while the bench runs: its numbers would mix the states before and after
        app.fixes.plan = demo_plan()
        app.fixes.request_apply()
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmModal) and not app.fixes.applying
        assert any("a bench is running" in n.message for n in app._notifications)
        await pilot.press("ctrl+x")
        await wait_until(pilot, lambda: app.bench.result is not None, 30, "the stopped bench")
        await settle(pilot, app)
        (run,) = app.bench.result.runs
        assert app.bench.result.interrupted and run.interrupted
        assert run.outcomes.get(wire.OK, 0) >= 50 and run.elapsed_s < 30
        assert "interrupted" in str(app.screen.query_one("#bench-status", Static).render())
    assert bench_children() == []


async def test_quitting_mid_run_leaves_no_load_process(ok_server):
    app = PPDoctorApp(IncidentSession(server_config(ok_server.port)), landing="bench", cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await start_long_run(pilot, app)
        assert bench_children()
        await pilot.press("escape", "q")
    app.engine.close()
    app.bench.close()
    deadline = time.monotonic() + 10
    while bench_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert bench_children() == []


async def test_remote_and_config_text_stays_text(tmp_path: Path):
    hostile = tmp_path / "[bold red]x[reverse]\x1b[31m"
    hostile.mkdir()
    off = hostile / "ppdoctor.toml"
    off.write_text('[gateway]\ndirect = "127.0.0.1:9"\n')
    app = PPDoctorApp(IncidentSession(server_config(9)), landing="bench", cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await fill(pilot, app, rates="50", duration="1", connections="1", off_config=str(off))
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: app.bench.result is not None or app.bench.error, 30, "the preflight")
        await settle(pilot, app)
        notes = str(app.screen.query_one("#bench-notes", Static).render())
        assert "[bold red]x[reverse]\\x1b[31m" in notes  # literally, with the ESC made visible
        assert "\x1b" not in notes
        assert all(r.skipped for r in app.bench.result.runs)  # nothing listens on port 9: both sides skipped


@pytest.mark.lab
async def test_lab_companion_for_the_refused_side(lab_pool):
    lab = lab_pool.get("tg-pp-on-gateway-off")  # the gateway has no PROXY filter: PP on is refused (400)
    handle = LabHandle.attach(lab.state_dir)  # the pool owns this lab: the app must leave it running
    app = PPDoctorApp(IncidentSession(lab.config), lab=handle, landing="bench", cursor_blink=False)
    companion = None
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, app)
            await fill(pilot, app, rates="300", duration="2", connections="4")
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: app.bench.result is not None or app.bench.error, 90, "the bench")
            await settle(pilot, app)
            assert not app.bench.error
            companion = app.bench.companions.get("on")
            assert companion is not None and companion.scenario == "healthy"
            result = app.bench.result
            off, on = result.run_for(300.0, "off"), result.run_for(300.0, "on")
            assert off.target.address == lab.config.gateway.direct and not off.target.send_pp
            assert on.target.send_pp and on.target.address != off.target.address
            for run in (off, on):
                assert not run.skipped and run.errors == 0 and run.outcomes.get(wire.OK) == 600
            notes = str(app.screen.query_one("#bench-notes", Static).render())
            assert "companion lab healthy" in notes and "300 RPS, PP on − PP off: p50" in notes
            if os.environ.get("PPDOCTOR_SCREENSHOTS"):
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                app.save_screenshot(filename="bench.svg", path=str(SCREENSHOTS))
            assert any("companion lab healthy started" in e.summary for e in app.timeline)
    finally:
        app.engine.close()
        app.bench.close()
    assert companion is not None and companion.proc is not None
    assert companion.proc.poll() is not None  # the companion lab is stopped
    assert not companion.state_dir.exists()
    assert lab.proc.poll() is None  # the attached lab is still running


@given(st.floats(min_value=0.001, max_value=60_000), st.floats(min_value=1.0, max_value=1000.0))
def test_log_ticks_cover_the_data_with_1_2_5_values(low, spread):
    high = low * spread
    ticks = log_ticks(low, high)
    assert len(ticks) >= 2 and ticks == sorted(set(ticks))
    assert ticks[0] <= low and ticks[-1] >= high
    for t in ticks:
        mantissa = t / 10 ** math.floor(math.log10(t) + 1e-9)
        assert round(mantissa, 6) in (1.0, 2.0, 5.0), t
    assert len(ticks) <= 10
