"""Every text input of every screen follows the app's cursor_blink: with it off (tests, snapshots) no cursor is
drawn or hidden by a timer, so what a snapshot shows does not depend on when it was taken."""

from __future__ import annotations

from textual.widgets import Input

from ppdoctor.app import PPDoctorApp

from .conftest import settle
from .support import SIZE, FakeReport, demo_session


async def test_no_input_blinks_when_the_app_says_so():
    app = PPDoctorApp(demo_session(), landing="probes", report_backend=FakeReport(), cursor_blink=False)
    seen = 0
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        for key, mode in (("1", "setup"), ("5", "report"), ("6", "bench"), ("7", "pcap")):
            await pilot.press(key)
            await settle(pilot, app)
            assert app.current_mode == mode
            inputs = list(app.screen.query(Input))
            assert inputs, f"{mode} has text inputs"
            assert [i.id for i in inputs if i.cursor_blink] == [], mode
            seen += len(inputs)
    assert seen >= 4
