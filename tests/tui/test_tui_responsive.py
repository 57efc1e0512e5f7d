"""The UI keeps responding while a probe waits on a 15 s response timeout, and c cancels that probe."""

from __future__ import annotations

import asyncio
import time

from textual.widgets import DataTable

from ppdoctor.app import PPDoctorApp
from ppdoctor.session import IncidentSession

from .conftest import screen_lines, settle
from .support import SIZE, HangingGateway


def _row(app: PPDoctorApp, probe: str) -> str:
    return next(line for line in screen_lines(app) if f" {probe} " in line)


async def test_keys_work_while_a_probe_hangs_and_cancel_stops_it():
    async with HangingGateway() as gateway:
        accepted, closed = gateway.accepted, gateway.closed
        app = PPDoctorApp(IncidentSession(gateway.config), landing="probes", cursor_blink=False)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, app)
            table = app.screen.query_one("#probe-table", DataTable)
            await pilot.press("down")  # http-via-nlb
            t0 = time.monotonic()
            await pilot.press("enter")
            await asyncio.wait_for(accepted.wait(), 5)  # the probe has connected and now waits for an answer
            assert "http-via-nlb" in app.probes.running

            # moving the cursor, switching screens and back: each answered at once
            for keys, check in ((("down",), lambda: table.cursor_row == 2),
                                (("3",), lambda: app.current_mode == "diagnosis"),
                                (("t",), lambda: app.current_mode == "timeline"),
                                (("2",), lambda: app.current_mode == "probes"),
                                (("up",), lambda: table.cursor_row == 1)):
                await pilot.press(*keys)
                await pilot.pause()
                assert check(), keys
                # answered while the probe still waits out its 15 s timeout: a key blocked behind the probe would
                # be handled only once the probe had ended
                assert "http-via-nlb" in app.probes.running, f"{keys} answered only after the probe ended"

            await pilot.pause(1.2)  # the running row ticks
            row = _row(app, "http-via-nlb")
            assert "running" in row and " s " in row, row
            assert "http-via-nlb" in app.probes.running, "the probe should still be waiting"

            await pilot.press("c")
            await settle(pilot, app)
            assert "http-via-nlb" not in app.probes.running
            assert "cancelled" in _row(app, "http-via-nlb")
            await asyncio.wait_for(closed.wait(), 5)  # the engine dropped the connection
            assert time.monotonic() - t0 < 15, "cancelled before the probe's 15 s timeout"
            assert any("cancelled by the operator" in e.summary for e in app.timeline)
