"""Untrusted text stays text: markup, actions, ANSI escapes and a trailing backslash from the network or the
cluster are shown literally in every widget that shows remote data, and nothing is executed."""

from __future__ import annotations

import pytest
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from ppdoctor import facts
from ppdoctor.app import PPDoctorApp
from ppdoctor.diagnosis.engine import Finding
from ppdoctor.fixes.model import Change, FixPlan
from ppdoctor.probes.model import FailureClass, Observation, Status
from ppdoctor.screens import messages as msg
from ppdoctor.screens.modals import ConfirmModal
from ppdoctor.session import TimelineEvent

from .conftest import screen_lines, screen_text, settle
from .support import HOSTILE, HOSTILE_SHOWN, T0, FakeReport, demo_session, hostile_config

BIG = (200, 60)


@pytest.fixture(autouse=True)
def _hostile_facts_declared(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test-only facts, declared for this module alone (strict fact names in tests)."""
    for name, kind in (("hostile.value", str), ("hostile.note", int)):
        monkeypatch.setitem(facts.REGISTRY, name, facts.FactSpec(name, kind, "tcp", "hostile text for this test"))


def hostile_observation() -> Observation:
    obs = Observation("http-via-nlb", status=Status.FAIL, failure_class=FailureClass.HTTP_4XX, summary=HOSTILE)
    obs.timings_ms = {"connect": 1.0, "probe": 2.0}
    obs.evidence = {
        "sent_hex": b"GET / HTTP/1.1\r\n\r\n".hex(),
        "received_first_bytes": "HTTP/1.1 400 Bad Request\r\nx-evil: " + HOSTILE + "\r\n\r\n",
        "received_total_bytes": 99,
        "response": {"status": 400, "reason": HOSTILE, "headers": [["x-evil", HOSTILE], [HOSTILE, "v"]]},
        "annotation": HOSTILE,
    }
    obs.fact("via_nlb.client_ip", HOSTILE)  # declared facts (strict in tests) carrying hostile text
    obs.fact("via_nlb.status", 400, note=HOSTILE)
    return obs


def hostile_finding() -> Finding:
    return Finding("PPD003", HOSTILE, "error", 0.95, HOSTILE,
                   evidence=[{"fact": "pod.name", "value": HOSTILE, "source": "kube"}],
                   confirm=[HOSTILE], fixes=["FIX-GW-PP-ON"])


def hostile_plan() -> FixPlan:
    change = Change("k8s-merge-patch", HOSTILE, HOSTILE, before=HOSTILE, after=HOSTILE, api_call=HOSTILE,
                    payload={}, rollback_payload=None, note=HOSTILE)
    return FixPlan("FIX-GW-PP-ON", HOSTILE, [change], explanation=HOSTILE, window=HOSTILE)


def assert_no_escape_reaches_terminal(app: PPDoctorApp) -> None:
    for strip in app.screen._compositor.render_strips():
        for segment in strip:
            assert "\x1b" not in segment.text, segment


def table_cells(table: DataTable) -> list[str]:
    return [table.get_cell_at(Coordinate(r, c)).plain
            for r in range(table.row_count) for c in range(len(table.columns))]


async def test_hostile_text_is_shown_literally_everywhere():
    app = PPDoctorApp(demo_session(config=hostile_config()), landing="probes", report_backend=FakeReport(),
                      cursor_blink=False)
    async with app.run_test(size=BIG) as pilot:
        await settle(pilot, app)
        # target name (from the config) in the navigation bar, clipped to its width but literal
        assert screen_lines(app)[0].startswith(" ppdoctor  [@click=app.quit]x[/] [b]bold")

        # probe summary, evidence: status line, received bytes, headers table, facts table, other evidence
        app.post_message(msg.ProbeFinished(hostile_observation()))
        await settle(pilot, app)
        await pilot.press("down")  # highlight http-via-nlb
        await settle(pilot, app)
        text = screen_text(app)
        summary_rows = [line for line in screen_lines(app) if "http-via-nlb" in line and "FAIL" in line]
        assert summary_rows and HOSTILE_SHOWN in summary_rows[0]
        assert text.count(HOSTILE_SHOWN) >= 3
        assert HOSTILE_SHOWN in table_cells(app.screen.query_one("#ev-headers", DataTable))
        assert HOSTILE_SHOWN in table_cells(app.screen.query_one("#ev-facts", DataTable))
        assert f"x-evil: {HOSTILE_SHOWN}" in text
        app.screen.query_one("#evidence").scroll_end(animate=False)
        await settle(pilot, app)
        assert '"annotation": "[@click=app.quit]x[/] [b]bold \\u001b[31mred\\\\"' in screen_text(app)  # JSON, literal
        assert_no_escape_reaches_terminal(app)

        # a click on the would-be action does nothing
        for y, line in enumerate(screen_lines(app)):
            if "[@click=app.quit]" in line:
                await pilot.click(offset=(line.index("[@click=app.quit]") + 2, y))
                break
        await settle(pilot, app)
        assert app.is_running and app.return_code is None

        # findings: title, explanation, evidence, confirm lines
        app.post_message(msg.FindingsReady([hostile_finding()]))
        await pilot.press("3")
        await settle(pilot, app)
        app.post_message(msg.FindingsReady([hostile_finding()]))  # after the screen's own re-diagnosis
        await settle(pilot, app)
        text = screen_text(app)
        assert text.count(HOSTILE_SHOWN) >= 3, text
        assert HOSTILE_SHOWN in table_cells(app.screen.query_one("#fd-evidence", DataTable))
        assert_no_escape_reaches_terminal(app)

        # plan: title, explanation, each change's object/field/before/after, window; and the confirmation modal
        await pilot.press("4")
        app.post_message(msg.PlanReady(hostile_plan()))
        await settle(pilot, app)
        text = screen_text(app)
        assert text.count(HOSTILE_SHOWN) >= 5, text
        await pilot.press("x")
        await settle(pilot, app)
        assert isinstance(app.screen, ConfirmModal)
        assert screen_text(app).count(HOSTILE_SHOWN) >= 4
        assert_no_escape_reaches_terminal(app)
        await pilot.press("escape")
        await settle(pilot, app)

        # timeline
        app.post_message(msg.TimelineEventAdded(TimelineEvent(T0 + 60, "note", HOSTILE, {"pod": HOSTILE})))
        await pilot.press("t")
        await settle(pilot, app)
        assert screen_text(app).count(HOSTILE_SHOWN) >= 2
        assert_no_escape_reaches_terminal(app)

        # notifications and the error modal
        app.say(HOSTILE, title=HOSTILE)
        app.show_error(HOSTILE, HOSTILE)
        await settle(pilot, app)
        text = screen_text(app)
        assert text.count(HOSTILE_SHOWN) >= 3, text
        assert_no_escape_reaches_terminal(app)
        await pilot.press("escape")
        await settle(pilot, app)
        assert app.is_running and app.return_code is None
        await pilot.press("2")
        await settle(pilot, app)
        assert app.current_mode == "probes"
