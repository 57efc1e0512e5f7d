"""Every screen at 80×24: what each screen exists for is on screen, and no text is cut without a way to see it.

Also: resizing 80×24 → 200×50 → 80×24 while a probe or a bench runs neither crashes nor loses the run, and the
layout follows the size through the breakpoint classes (the boxed path at 200×50, one line per hop at 80×24).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from rich.text import Text
from textual.geometry import Region
from textual.widget import Widget
from textual.widgets import DataTable, Input, Select, Static

from ppdoctor.app import PPDoctorApp
from ppdoctor.config import GatewayTarget, TargetConfig
from ppdoctor.screens import messages as msg
from ppdoctor.screens.modals import ConfirmModal
from ppdoctor.session import IncidentSession

from ..bench.servers import BehaviourServer
from .conftest import screen_text, settle
from .support import FakeReport, HangingGateway, demo_plan, demo_session

SMALL, LARGE = (80, 24), (200, 50)

# Per screen: how to get there from Probes, and the widgets that screen exists for (CSS selectors; each match
# must be on screen). "PLAN" posts the fixed plan, as if planning had finished.
SCREENS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "setup": (("1",), ("#setup-aws", "#setup-kube", "#setup-forms Input", "#setup-forms Select", "#setup-apply")),
    "probes": (("2",), ("#probe-table", "#evidence", "#ev-title", "#ev-status")),
    "diagnosis": (("3",), ("#finding-table", "#fd-head", "#fd-explanation", "#fd-fixes", "#fd-evidence")),
    "diagnosis-path": (("3", "p"), ("#finding-table", "#fd-head", "#diag-path", ".path-line")),
    "fix": (("4", "PLAN"), ("#fix-table", "#plan-title", ".plan-change", "#plan-apply", "#plan-rollback")),
    "confirm": (("4", "PLAN", "x"), (".confirm-line", "#confirm-warning", "#cancel", "#confirm")),
    "report": (("5",), ("#report-format", "#report-path", "#report-export", "#report-preview")),
    "timeline": (("t",), ("#timeline-table", "#timeline-detail")),
    "bench-form": (("6",), ("#bench-form", "#bench-rates", "#bench-duration", "#bench-run", "#bench-stop")),
    "bench-results": (("6", "ctrl+f"), ("#bench-table", "#bench-plot")),
    "pcap": (("7",), ("#pcap-path", "#pcap-read", "#pcap-summary", "#pcap-table")),
    "help": (("question_mark",), ("#help-body", "#help-workflow")),
}


def demo_app() -> PPDoctorApp:
    return PPDoctorApp(demo_session(), landing="probes", report_backend=FakeReport(), cursor_blink=False)


async def go(pilot: Any, app: PPDoctorApp, keys: tuple[str, ...]) -> None:
    await settle(pilot, app)
    for key in keys:
        if key == "PLAN":
            app.post_message(msg.PlanReady(demo_plan()))
        else:
            await pilot.press(key)
        await settle(pilot, app)


def visible_region(app: PPDoctorApp, widget: Widget) -> Region:
    placed = app.screen._compositor.visible_widgets.get(widget)
    if placed is None:
        return Region(0, 0, 0, 0)
    region, clip = placed
    return region.intersection(clip)


def scrollable_ancestor(widget: Widget, vertical: bool) -> bool:
    """True when an ancestor can scroll in that direction, so the part of ``widget`` outside the view is reachable."""
    for node in widget.ancestors:
        if isinstance(node, Widget) and (node.max_scroll_y if vertical else node.max_scroll_x) > 0:
            return True
    return False


def cut_text(app: PPDoctorApp, static: Static) -> str | None:
    """Why ``static`` shows less than its text with no way to see the rest, or None."""
    if static.tooltip:
        return None  # the whole text is one hover away
    size = static.content_region.size
    if size.width <= 0:
        return None
    needed = static.get_content_height(size, app.size, size.width)
    if needed > size.height:
        return f"needs {needed} rows, has {size.height}"
    content = static.content
    if isinstance(content, Text) and (content.no_wrap or content.overflow == "ellipsis"):
        longest = max((line.cell_len for line in content.split()), default=0)
        if longest > size.width:
            return f"a line of {longest} cells in {size.width} columns"
    region, shown = static.region, visible_region(app, static)
    if shown.height < region.height and not scrollable_ancestor(static, vertical=True):
        return f"{region.height - shown.height} rows clipped with nothing to scroll"
    if shown.width < region.width and not scrollable_ancestor(static, vertical=False):
        return f"{region.width - shown.width} columns clipped with nothing to scroll"
    return None


@pytest.mark.parametrize("screen", list(SCREENS))
async def test_what_each_screen_is_for_is_visible_at_80x24(screen: str):
    keys, selectors = SCREENS[screen]
    app = demo_app()
    async with app.run_test(size=SMALL) as pilot:
        await go(pilot, app, keys)
        assert app.screen.has_class("-narrow") and app.screen.has_class("-short")
        problems = []
        for selector in selectors:
            widgets = list(app.screen.query(selector))
            assert widgets, f"{screen}: nothing matches {selector}"
            for widget in widgets:
                shown = visible_region(app, widget)
                if not shown.area:
                    problems.append(f"{selector} (#{widget.id}) is not on screen")
                    continue
                for static in [widget, *widget.query(Static)]:
                    if isinstance(static, Static) and static.display and visible_region(app, static).area:
                        why = cut_text(app, static)
                        if why:
                            problems.append(f"{selector}: {type(static).__name__} #{static.id} cut: {why}")
        assert not problems, f"{screen} at 80×24:\n" + "\n".join(problems) + "\n\n" + screen_text(app)


async def test_every_setup_field_is_editable_at_80x24():
    """The fields being edited: each Input and Select of both forms has a row of its own on screen."""
    app = demo_app()
    async with app.run_test(size=SMALL) as pilot:
        await go(pilot, app, ("1",))
        fields = [*app.screen.query("#setup-forms Input"), *app.screen.query("#setup-forms Select")]
        assert len(fields) >= 15
        for field in fields:
            assert visible_region(app, field).height >= 1, field.id
        assert len({(visible_region(app, f).x, visible_region(app, f).y) for f in fields}) == len(fields)


async def test_the_path_is_boxed_when_there_is_room_and_one_line_per_hop_when_not():
    app = demo_app()
    async with app.run_test(size=LARGE) as pilot:
        await go(pilot, app, ("3",))
        boxes, lines = app.screen.query_one("#diag-path .path-boxes"), app.screen.query_one("#diag-path .path-lines")
        assert visible_region(app, boxes).area and not visible_region(app, lines).area
        assert "──✗──▶" in screen_text(app)
        await pilot.resize_terminal(*SMALL)
        await pilot.press("p")
        await settle(pilot, app)
        assert visible_region(app, lines).area and not visible_region(app, boxes).area
        text = screen_text(app)
        assert "NLB 127.1.1.10:30000 [PPv2 on, preserve off" in text
        assert "─✗ PPv2 + HTTP: PROXY header not expected → 400→" in text.replace("\n", " ").replace("│", "")


async def test_long_values_wrap_in_the_plan_and_are_shown_once():
    plan = demo_plan()
    long_value = '{"gatewayTopology":{"proxyProtocol":{}},"tracing":{"sampling":' + "1" * 150 + "}}"
    plan.changes[0].after = long_value
    app = demo_app()
    async with app.run_test(size=SMALL) as pilot:
        await go(pilot, app, ("4",))
        app.post_message(msg.PlanReady(plan))
        await settle(pilot, app)
        changes = list(app.screen.query(".plan-change"))
        assert len(changes) == len(plan.changes)
        # wrapped, every character on screen (borders, scrollbars and the wrap's indentation taken out)
        assert long_value in re.sub(r"[\s│▁▂▃▄▅▆▇█]", "", screen_text(app))
        assert screen_text(app).count("istio-system/istio-ingressgateway") == 1  # each change once


async def test_y_copies_the_whole_value():
    app = demo_app()
    copied: list[str] = []
    app.copy_to_clipboard = copied.append  # type: ignore[method-assign]
    async with app.run_test(size=SMALL) as pilot:
        await go(pilot, app, ("3", "y"))
        assert '"id": "PPD003"' in copied[-1] and '"gateway.ppv2_result"' in copied[-1]
        await go(pilot, app, ("2",))
        table = app.screen.query_one("#probe-table", DataTable)
        table.move_cursor(row=table.get_row_index("aws"))
        await go(pilot, app, ("y",))
        summary = app.observations["aws"].summary
        assert f'"summary": "{summary}"' in copied[-1]  # the summary the table cuts with …


async def test_resizing_during_a_probe_run_keeps_it():
    async with HangingGateway() as gateway:
        app = PPDoctorApp(IncidentSession(gateway.config), landing="probes", cursor_blink=False)
        async with app.run_test(size=SMALL) as pilot:
            await settle(pilot, app)
            await pilot.press("down", "enter")  # http-via-nlb: connects, then waits for an answer
            await asyncio.wait_for(gateway.accepted.wait(), 5)
            table = app.screen.query_one("#probe-table", DataTable)
            for size, width_class in ((LARGE, "-wide"), (SMALL, "-narrow"), (LARGE, "-wide"), (SMALL, "-narrow")):
                await pilot.resize_terminal(*size)
                await pilot.pause()
                assert app.screen.has_class(width_class)
                assert "http-via-nlb" in app.probes.running and table.cursor_row == 1
            await pilot.press("3")  # another screen, then back: its classes follow the size it opens at
            await pilot.pause()
            assert app.screen.has_class("-narrow") and app.screen.has_class("-short")
            await pilot.press("2", "c")
            await settle(pilot, app)
            assert "http-via-nlb" not in app.probes.running
            assert "cancelled" in screen_text(app)


async def test_resizing_during_a_bench_run_keeps_it():
    server = await BehaviourServer("ok").start("127.0.0.1")
    config = TargetConfig(name="bench-test", gateway=GatewayTarget(direct=f"127.0.0.1:{server.port}"))
    app = PPDoctorApp(IncidentSession(config), landing="bench", cursor_blink=False)
    try:
        async with app.run_test(size=SMALL) as pilot:
            await settle(pilot, app)
            screen = app.screen
            for field, value in (("rates", "100"), ("duration", "30"), ("connections", "2")):
                screen.query_one(f"#bench-{field}", Input).value = value
            screen.query_one("#bench-pp", Select).value = "off"
            await pilot.press("ctrl+r")
            while not (app.bench.progress and app.bench.progress.ok >= 20):
                await pilot.pause(0.1)
            await pilot.press("ctrl+f")  # 80 columns: the results in place of the form
            for size in (LARGE, SMALL, LARGE, SMALL):
                await pilot.resize_terminal(*size)
                await pilot.pause(0.3)
                assert app.bench.running
                assert visible_region(app, screen.query_one("#bench-table")).area
            assert "live: 100 RPS" in screen_text(app)
            await pilot.press("ctrl+x")
            while app.bench.running:
                await pilot.pause(0.1)
            await settle(pilot, app)
            assert screen.query_one("#bench-table", DataTable).row_count == 1  # what was measured is kept
    finally:
        await server.stop()


async def test_confirm_modal_buttons_stay_on_screen_with_many_changes():
    plan = demo_plan()
    plan.changes = plan.changes * 6
    app = demo_app()
    async with app.run_test(size=SMALL) as pilot:
        await go(pilot, app, ("4",))
        app.post_message(msg.PlanReady(plan))
        await go(pilot, app, ("x",))
        assert isinstance(app.screen, ConfirmModal)
        for button in ("#cancel", "#confirm"):
            assert visible_region(app, app.screen.query_one(button)).area, button
