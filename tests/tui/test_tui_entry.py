"""Entry points and app plumbing: what ppdoctor opens on, the lab it owns (always torn down), bindings, palette."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from ppdoctor import tui as tui_module
from ppdoctor.app import PPDoctorApp
from ppdoctor.config import NlbTarget, TargetConfig, aws_credentials_source, target_configured, write_config
from ppdoctor.lab import handle as handle_module
from ppdoctor.lab.handle import LabHandle
from ppdoctor.tui import run_default, run_lab
from ppdoctor.errors import LabError
from ppdoctor.screens.diagnosis import DiagnosisScreen
from ppdoctor.screens.fix import FixScreen
from ppdoctor.screens.help import HelpScreen
from ppdoctor.screens.modals import ConfirmModal, ErrorModal
from ppdoctor.screens.probes import ProbesScreen
from ppdoctor.screens.report import ReportScreen
from ppdoctor.screens.setup import SetupScreen
from ppdoctor.screens.start import LabBootScreen, StartScreen
from ppdoctor.screens.timeline import TimelineScreen

from .conftest import screen_text, settle, until
from .support import SIZE, FakeReport, demo_config, demo_session

HEAVY = ("boto3", "botocore", "kubernetes", "scapy", "moto")


def test_importing_the_app_is_quick_and_loads_no_cloud_sdk():
    code = ("import time, sys, json; t = time.perf_counter(); import ppdoctor.app; "
            "print(json.dumps([time.perf_counter() - t, sorted({m.split('.')[0] for m in sys.modules})]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    seconds, modules = json.loads(out.stdout.strip().splitlines()[-1])
    assert not set(HEAVY) & set(modules), sorted(set(HEAVY) & set(modules))
    assert seconds < 5, f"import ppdoctor.app took {seconds:.2f} s"  # a guard; benchmarks/tui_startup.py measures


def test_what_counts_as_a_target_and_as_credentials(tmp_path: Path):
    assert not target_configured(TargetConfig())
    assert target_configured(TargetConfig(nlb=NlbTarget(address="127.0.0.1:80")))
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home)}
    assert aws_credentials_source(env) is None
    assert aws_credentials_source({**env, "AWS_PROFILE": "prod"}) == "$AWS_PROFILE"
    (home / ".aws").mkdir()
    (home / ".aws" / "credentials").write_text("[default]\n")
    assert aws_credentials_source(env) == str(home / ".aws" / "credentials")


def _capture_run(monkeypatch: pytest.MonkeyPatch) -> list[PPDoctorApp]:
    apps: list[PPDoctorApp] = []

    def fake_run(self: PPDoctorApp, *args: Any, **kwargs: Any) -> int:
        apps.append(self)
        return 0

    monkeypatch.setattr(PPDoctorApp, "run", fake_run)
    return apps


def test_run_default_without_target_offers_the_lab(monkeypatch, tmp_path):
    apps = _capture_run(monkeypatch)
    monkeypatch.setenv("HOME", str(tmp_path))
    missing = tmp_path / "nothing.toml"
    monkeypatch.setattr(tui_module, "load_config", lambda path: TargetConfig())
    assert run_default(argparse.Namespace(config=None)) == 0
    assert apps[-1].session is None and "No target is configured" in apps[-1].start_reason
    assert isinstance(apps[-1].get_default_screen(), StartScreen)
    config = tmp_path / "target.toml"
    write_config(demo_config(), config)
    monkeypatch.setattr(tui_module, "load_config", tui_module.__dict__["load_config"])
    monkeypatch.undo()
    apps = _capture_run(monkeypatch)
    assert run_default(argparse.Namespace(config=str(config))) == 0
    assert apps[-1].session is not None and apps[-1].landing == "setup"
    assert apps[-1].config.nlb.address == "127.1.1.10:30000"
    del missing


def test_run_lab_always_tears_the_lab_down(monkeypatch, tmp_path):
    stopped: list[LabHandle] = []
    monkeypatch.setattr(LabHandle, "stop", lambda self: stopped.append(self))
    monkeypatch.setattr(handle_module, "scratch_state_dir", lambda: tmp_path / "ppdoctor-lab-x")

    def crash(self: PPDoctorApp, *args: Any, **kwargs: Any) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(PPDoctorApp, "run", crash)
    with pytest.raises(RuntimeError):
        run_lab(argparse.Namespace(scenario="tg-pp-on-gateway-off"))
    assert len(stopped) == 1 and stopped[0].owned
    with pytest.raises(LabError):  # a bad scenario name fails before the TUI starts, nothing to tear down
        run_lab(argparse.Namespace(scenario="no-such-scenario"))
    assert len(stopped) == 1


def test_attaching_to_a_running_lab_leaves_it_running(monkeypatch, tmp_path):
    (tmp_path / "lab.json").write_text(json.dumps({"scenario": "healthy", "config": "x.toml"}))
    monkeypatch.setenv(tui_module.ATTACH_ENV, str(tmp_path))
    apps = _capture_run(monkeypatch)
    calls: list[Any] = []
    monkeypatch.setattr("ppdoctor.lab.cli.stop_lab", lambda *a, **k: calls.append(a))
    assert run_lab(argparse.Namespace(scenario=None)) == 0
    assert apps[-1].lab is not None and not apps[-1].lab.owned
    assert calls == []


async def test_start_screen_starts_the_lab_and_opens_on_it(monkeypatch, tmp_path):
    config = tmp_path / "lab.toml"
    write_config(demo_config(), config)
    started: list[str | None] = []
    stopped: list[bool] = []

    release = threading.Event()

    def fake_start(self: LabHandle) -> dict[str, Any]:
        started.append(self.scenario)
        release.wait(10)  # the lab "starts" only once the test has seen the boot screen
        self.endpoints = {"scenario": self.scenario, "config": str(config)}
        return self.endpoints

    monkeypatch.setattr(LabHandle, "start", fake_start)
    monkeypatch.setattr(LabHandle, "stop", lambda self: stopped.append(True))
    monkeypatch.setattr(handle_module, "scratch_state_dir", lambda: tmp_path / "ppdoctor-lab-y")
    app = PPDoctorApp(start_reason="No target is configured.", scenarios=None, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert isinstance(app.screen, StartScreen)
        # the scenario list loads in a worker and is painted on a later refresh: under load, after settle() returns
        assert await until(pilot, lambda: "tg-pp-on-gateway-off" in screen_text(app)), screen_text(app)
        assert app.screen.selected() == "tg-pp-on-gateway-off"
        await pilot.press("2")  # no target yet: screen keys do nothing
        assert isinstance(app.screen, StartScreen)
        await pilot.press("l")
        assert await until(pilot, lambda: isinstance(app.screen, LabBootScreen))
        release.set()
        await until(pilot, lambda: app.session is not None and app.current_mode == "probes")
        assert started == ["tg-pp-on-gateway-off"]
        assert app.current_mode == "probes" and app.config.name == "lab:tg-pp-on-gateway-off"
    assert app.lab is not None and app.lab.owned


async def test_a_lab_that_does_not_start_says_why(monkeypatch):
    def failing_start(self: LabHandle) -> dict[str, Any]:
        raise LabError("the lab did not start: envoy is missing", hint="pip install 'ppdoctor[lab]'")

    monkeypatch.setattr(LabHandle, "start", failing_start)
    app = PPDoctorApp(lab=LabHandle("healthy", Path("/nonexistent/ppdoctor-lab-z")), cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        text = screen_text(app)
        assert "The lab did not start" in text and "envoy is missing" in text and "ppdoctor[lab]" in text
        assert app.is_running


def test_every_binding_has_an_id_a_description_and_a_tooltip():
    classes = [PPDoctorApp, SetupScreen, ProbesScreen, DiagnosisScreen, FixScreen, ReportScreen, TimelineScreen,
               StartScreen, LabBootScreen, HelpScreen, ConfirmModal, ErrorModal]
    ids = []
    for cls in classes:
        for binding in cls.BINDINGS:
            assert binding.id and binding.tooltip and binding.description, (cls.__name__, binding)
            ids.append(binding.id)
    assert len(ids) == len(set(ids)), "binding ids are unique (users rebind keys by id)"


async def test_command_palette_offers_the_actions_and_runs_them():
    app = PPDoctorApp(demo_session(), landing="probes", report_backend=FakeReport(), cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("ctrl+p")
        await settle(pilot, app)
        await pilot.press(*"go to timeline")
        await pilot.pause(0.5)
        text = screen_text(app)
        assert "Go to Timeline" in text
        await pilot.press("enter")
        await settle(pilot, app)
        assert app.current_mode == "timeline"
        await pilot.press("ctrl+p")
        await settle(pilot, app)
        await pilot.press(*"plan fix-gw")
        await pilot.pause(0.5)
        assert "Plan FIX-GW-PP-ON" in screen_text(app)
        await pilot.press("escape")
        from ppdoctor.screens.commands import PPDoctorCommands

        titles = [c[0] for c in PPDoctorCommands(app.screen)._unique()]
        for expected in ("Run all probes", "Cancel running probes", "Diagnose now", "Apply the current plan…",
                         "Roll back applied changes…", "Export report as Markdown", "Export report as HTML",
                         "Go to Setup", "Help: keys and workflow", "Run probe tcp", "Run probe syn", "Plan FIX-HC-TCP"):
            assert expected in titles


async def test_report_in_a_browser_is_delivered_not_written(monkeypatch, tmp_path):
    delivered: list[tuple[str, str]] = []
    monkeypatch.setattr(PPDoctorApp, "is_web", property(lambda self: True))

    def deliver_text(self: PPDoctorApp, file: Any, *, save_filename: str | None = None, **_: Any) -> str:
        delivered.append((save_filename or "", file.read()))
        return "key"

    monkeypatch.setattr(PPDoctorApp, "deliver_text", deliver_text)
    monkeypatch.chdir(tmp_path)
    app = PPDoctorApp(demo_session(), landing="report", report_backend=FakeReport(), cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("ctrl+s")
        await settle(pilot, app)
    assert delivered and delivered[0][0] == "ppdoctor-report-lab-tg-pp-on-gateway-off.md"
    assert "PPD003" in delivered[0][1]
    assert not list(tmp_path.iterdir())


async def test_export_writes_the_chosen_format(tmp_path):
    backend = FakeReport()
    app = PPDoctorApp(demo_session(), landing="report", report_backend=backend, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.click("#report-format RadioButton:last-of-type")  # HTML
        await settle(pilot, app)
        from textual.widgets import Input

        path = app.screen.query_one("#report-path", Input)
        assert path.value.endswith(".html")
        path.value = str(tmp_path / "out.html")
        await pilot.click("#report-export")
        await settle(pilot, app)
        assert "written" in screen_text(app)
    assert backend.written == [tmp_path / "out.html"] and "<html>" in (tmp_path / "out.html").read_text()
