"""A probe that changes the target (the rollout probe restarts the gateway) asks first, like a fix; declining
starts nothing and is written in the incident."""

from __future__ import annotations

from textual.widgets import Button

from ppdoctor.app import PPDoctorApp
from ppdoctor.config import NlbTarget, TargetConfig
from ppdoctor.probes import PROBES
from ppdoctor.screens.modals import ConfirmModal
from ppdoctor.session import IncidentSession

from .conftest import screen_text, settle
from .support import SIZE


async def test_the_rollout_probe_asks_and_a_no_starts_nothing():
    assert PROBES["rollout"].changes  # the probe is marked as one that changes the target
    session = IncidentSession(TargetConfig(name="prod-like", nlb=NlbTarget(address="127.0.0.1:9")))
    app = PPDoctorApp(session, landing="probes", cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.probes.start("rollout") is False
        await settle(pilot, app)
        assert isinstance(app.screen, ConfirmModal)
        text = screen_text(app)
        assert "Run probe rollout on prod-like?" in text and "restarts the gateway Deployment" in text
        assert app.screen.focused is app.screen.query_one("#cancel", Button)  # the safe answer has the focus
        await pilot.press("escape")
        await settle(pilot, app)
        assert not isinstance(app.screen, ConfirmModal)
        assert "rollout" not in app.probes.running and "rollout" not in app.observations
        for _ in range(100):  # the incident update runs on the engine thread: poll it, up to 5 s
            if any("probe rollout declined" in e.summary for e in session.timeline):
                break
            await pilot.pause(0.05)
        assert any("probe rollout declined" in e.summary for e in session.timeline), [e.summary for e in session.timeline]
        # probes that change nothing start at once, without a dialog
        assert not PROBES["tcp"].changes and app.probes.start("tcp") is True
        assert not isinstance(app.screen, ConfirmModal)
