"""The TUI on the target's current incident: it shows what a shell recorded before it, and the same
probe → diagnose → fix → report flow gives the same report content as the three CLI processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from textual.widgets import DataTable

from ppdoctor.app import PPDoctorApp
from ppdoctor.screens.modals import ConfirmModal
from ppdoctor.session import IncidentSession

pytestmark = pytest.mark.lab
PP_ANN = "service.beta.kubernetes.io/aws-load-balancer-proxy-protocol"


async def _until(pilot: Any, condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        app = pilot.app
        assert time.monotonic() < deadline, (
            f"timed out waiting for {what}",
            [f.id for f in app.findings],
            [e.summary[:80] for e in app.timeline[-5:]],
        )
        await pilot.pause(0.1)


async def test_tui_continues_the_incident_and_reports_the_same_content(
    lab_pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    lab = lab_pool.get("gateway-pp-tg-off", fresh=True)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    handover = "handover: customer reports resets since 09:10"
    note = subprocess.run(
        [sys.executable, "-m", "ppdoctor.cli", "--config", lab.endpoints["config"], "incident", "note", handover],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert note.returncode == 0, note.stderr

    app = PPDoctorApp(IncidentSession.open(lab.config, by="tui"), landing="timeline", cursor_blink=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.screen.query_one("#timeline-table", DataTable)
        rows = [" ".join(c.plain for c in table.get_row_at(i)) for i in range(table.row_count)]
        assert any(handover in r and "cli incident" in r for r in rows), rows  # the shell's entry, earlier

        app.probes.start_all()
        await _until(
            pilot, lambda: bool(app.findings) and not app.probes.running and not app.probes.stale, 60, "the diagnosis"
        )
        assert app.findings[0].id == "PPD004"
        app.fixes.plan_fix("FIX-TG-PP-ON")
        await _until(pilot, lambda: getattr(app.fixes.plan, "id", None) == "FIX-TG-PP-ON", 30, "the plan")
        app.fixes.request_apply()
        await _until(
            pilot,
            lambda: isinstance(app.screen, ConfirmModal) and bool(app.screen.query("#confirm")),
            10,
            "the confirmation",
        )
        await pilot.click("#confirm")
        await _until(pilot, lambda: app.fixes.apply_result is not None, 90, "the fix")
        assert app.fixes.apply_result.completed, app.fixes.apply_result.error
        await _until(
            pilot,
            lambda: (
                not app.probes.running and not app.probes.stale and bool(app.findings) and app.findings[0].id == "PPD000"
            ),
            60,
            "the re-probe after the fix",
        )
        out = tmp_path / "tui.json"
        app.export_report(str(out))
        await _until(pilot, out.exists, 30, "the report file")
        await pilot.pause()

    report = json.loads(out.read_text())
    assert report["verdict"]["before"]["id"] == "PPD004" and report["verdict"]["after"]["id"] == "PPD000"
    assert report["first_diagnosis"]["evidence"]
    assert any(o["status"] != "ok" for o in report["first_diagnosis"]["failing_observations"])
    applied = [c for c in report["changes"] if c["status"] == "applied"]
    assert [(c["field"], c["before"], c["after"], c["verification"]) for c in applied] == [
        (f'metadata.annotations["{PP_ANN}"]', None, "*", "passed")
    ]
    plan = next(p for p in report["plans"] if p["fix"] == "FIX-TG-PP-ON")
    assert plan["confirmation"]["confirmed"] and plan["confirmation"]["by"] == "user"
    times = [e["t"] for e in report["timeline"]]
    assert all(b > a for a, b in zip(times, times[1:]))
    assert report["notes"][0]["text"] == handover and report["incident"]["status"] == "open"
    # leave the lab as the scenario defines it
    back = subprocess.run(
        [sys.executable, "-m", "ppdoctor.cli", "--config", lab.endpoints["config"], "fix", "--rollback", "--yes"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert back.returncode == 0 and "rolled back 1 change(s)" in back.stdout, back.stdout + back.stderr
