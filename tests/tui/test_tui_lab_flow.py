"""Pilot flows against a real lab (tg-pp-on-gateway-off): probe one by one → PPD003 → FIX-GW-PP-ON confirmed →
verified → report; and declining the confirmation changes nothing (read back through boto3 and kubernetes).

With PPDOCTOR_SCREENSHOTS=1 the flows also regenerate docs/screenshots/{setup,probes,diagnosis,fix,report}.svg
(120×40) and diagnosis-80x24.svg.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from textual.widgets import Button, DataTable, Input

from ppdoctor.app import PPDoctorApp
from ppdoctor.config import load_config
from ppdoctor.lab.cli import start_lab, stop_lab
from ppdoctor.probes import PROBES
from ppdoctor.screens.modals import ConfirmModal
from ppdoctor.session import IncidentSession

from .conftest import screen_text, settle
from .support import SIZE

pytestmark = pytest.mark.lab
SCENARIO = "tg-pp-on-gateway-off"
PP_CONFIG = "proxy.istio.io/config"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


class Lab:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.proc, self.endpoints = start_lab(SCENARIO, state_dir, owner_pid=os.getpid())
        self.config = load_config(self.endpoints["config"], env={})

    def stop(self) -> None:
        stop_lab(self.state_dir, pid=self.proc.pid)
        self.proc.wait(timeout=20)

    def tg_attributes(self) -> dict[str, str]:
        import boto3

        client = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                       region_name=self.endpoints["region"]).client(
            "elbv2", endpoint_url=self.endpoints["aws_endpoint_url"])
        attrs = client.describe_target_group_attributes(TargetGroupArn=self.endpoints["target_group_arn"])
        return {a["Key"]: a["Value"] for a in attrs["Attributes"]}

    def deployment_annotations(self) -> dict[str, Any]:
        from kubernetes import client as kclient, config as kconfig

        api = kclient.AppsV1Api(kconfig.new_client_from_config(config_file=self.endpoints["kubeconfig"]))
        deployment = api.read_namespaced_deployment(self.config.kubernetes.gateway_deployment,
                                                    self.config.kubernetes.namespace)
        return {"metadata": dict(deployment.metadata.annotations or {}),
                "template": dict(deployment.spec.template.metadata.annotations or {})}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    running = Lab(tmp_path_factory.mktemp("tui-lab"))
    try:
        yield running
    finally:
        running.stop()


async def wait_until(pilot: Any, condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            app = pilot.app
            state = {"mode": app.current_mode, "screen": type(app.screen).__name__, "running": sorted(app.probes.running),
                     "stale": app.probes.stale, "findings": [f.id for f in app.findings],
                     "workers": [(w.group, w.state.name) for w in app.workers],
                     "timeline": [e.summary[:80] for e in app.timeline[-6:]]}
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}: {state}")
        await pilot.pause(0.1)


def shoot(app: PPDoctorApp, name: str) -> None:
    if os.environ.get("PPDOCTOR_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        app.save_screenshot(filename=f"{name}.svg", path=str(SCREENSHOTS))


async def plan_fix(pilot: Any, app: PPDoctorApp, fix_id: str) -> None:
    await pilot.press("4")
    await settle(pilot, app)
    table = app.screen.query_one("#fix-table", DataTable)
    table.move_cursor(row=table.get_row_index(fix_id))
    await pilot.press("p")
    await wait_until(pilot, lambda: getattr(app.fixes.plan, "id", None) == fix_id, 30, f"the plan of {fix_id}")
    await settle(pilot, app)


async def test_declining_the_confirmation_changes_nothing(lab: Lab):
    before = (lab.deployment_annotations(), lab.tg_attributes())
    app = PPDoctorApp(IncidentSession(lab.config), landing="probes", cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await plan_fix(pilot, app, "FIX-GW-PP-ON")
        assert [c.status for c in app.fixes.plan.changes] == ["pending"]
        await pilot.press("x")
        await settle(pilot, app)
        assert isinstance(app.screen, ConfirmModal)
        assert app.screen.focused is app.screen.query_one("#cancel", Button)  # the default is Cancel
        assert PP_CONFIG in screen_text(app)  # the exact change is shown
        await pilot.press("enter")
        await settle(pilot, app)
        assert not isinstance(app.screen, ConfirmModal)
        assert app.fixes.apply_result is None and not app.fixes.applying
        await wait_until(pilot, lambda: any("declined" in e.summary for e in app.timeline), 5, "the declined note")
    assert (lab.deployment_annotations(), lab.tg_attributes()) == before
    assert PP_CONFIG not in before[0]["template"]


async def test_probe_diagnose_fix_verify_report(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)  # the report's default path is relative
    app = PPDoctorApp(IncidentSession(lab.config), landing="setup", cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert "ppdoctor-lab" in screen_text(app)  # the kube context picker, read from the lab's kubeconfig

        # Probes, one by one, in the order an engineer follows the path
        await pilot.press("2")
        await settle(pilot, app)
        table = app.screen.query_one("#probe-table", DataTable)
        for row, name in enumerate(PROBES):
            table.move_cursor(row=row)
            await pilot.press("enter")
            if PROBES[name].changes:  # the rollout probe restarts the gateway: it asks first, like a fix
                await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), 10, f"{name}'s confirmation")
                assert name not in app.probes.running
                await pilot.click("#confirm")
            await wait_until(pilot, lambda name=name: name in app.observations and name not in app.probes.running, 30,
                             f"probe {name}")
        assert app.observations["http-via-nlb"].evidence["response"]["status"] == 400
        table.move_cursor(row=list(PROBES).index("direct-ppv2"))
        await settle(pilot, app)
        assert "PROXY protocol v2, 28 bytes" in screen_text(app)  # the decoded header of the bytes sent
        shoot(app, "probes")
        await pilot.press("1")  # the topology now knows each hop
        await settle(pilot, app)
        assert "expects PP: off" in screen_text(app)
        shoot(app, "setup")

        # Diagnosis: PPD003 first
        await pilot.press("3")
        await wait_until(pilot, lambda: bool(app.findings) and not app.probes.stale, 10, "the diagnosis")
        await settle(pilot, app)
        assert app.findings[0].id == "PPD003"
        findings = app.screen.query_one("#finding-table", DataTable)
        assert findings.get_cell_at((0, 0)).plain == "PPD003"
        assert "──✗──▶" in screen_text(app) and "not expected" in screen_text(app)  # the break on the path
        shoot(app, "diagnosis")

        # Fix: plan from the finding (f), confirm explicitly, apply, verify
        await pilot.press("f")
        await wait_until(pilot, lambda: getattr(app.fixes.plan, "id", None) == "FIX-GW-PP-ON", 30, "the plan")
        await settle(pilot, app)
        assert app.current_mode == "fix"
        await pilot.press("x")
        await settle(pilot, app)
        assert isinstance(app.screen, ConfirmModal)
        await pilot.click("#confirm")
        await wait_until(pilot, lambda: app.fixes.apply_result is not None, 90, "the fix to be applied and verified")
        result = app.fixes.apply_result
        assert result.completed, result.error
        assert result.verifications and all(v.passed for v in result.verifications)
        await settle(pilot, app)
        assert "passed" in screen_text(app)
        template = lab.deployment_annotations()["template"]
        assert PP_CONFIG in template and "proxyProtocol" in template[PP_CONFIG]

        # the app re-probes after the fix and diagnoses again: PPD003 is gone
        await wait_until(pilot, lambda: not app.probes.running and not app.probes.stale and app.findings
                         and app.findings[0].id != "PPD003", 60, "the re-probe after the fix")
        assert "PPD003" not in [f.id for f in app.findings if not f.superseded_by]
        app.screen.query_one("#plan-view").scroll_end(animate=False)
        await settle(pilot, app)
        shoot(app, "fix")
        kinds = [e.kind for e in app.timeline]
        assert {"probe", "diagnosis", "plan", "change", "verify"} <= set(kinds)

        # Roll back (confirmed), re-probed: the gateway is back to no PROXY filter, PPD003 again
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), 10, "the rollback confirmation")
        await pilot.pause(0.2)  # not settle(): the rollback worker is waiting for this very modal
        assert PP_CONFIG in screen_text(app)
        await pilot.click("#confirm")
        await wait_until(pilot, lambda: bool(app.fixes.apply_log) and app.fixes.apply_log[-1].startswith("rolled back"), 30,
                         "the rollback")
        assert PP_CONFIG not in lab.deployment_annotations()["template"]
        for _attempt in range(6):  # the gateway restarts after the rollback: probe again until it shows
            await wait_until(pilot, lambda: not app.probes.running and not app.probes.stale, 60,
                             "the re-probe after the rollback")
            if app.findings and app.findings[0].id == "PPD003":
                break
            await pilot.pause(1.0)
            app.probes.start_all()
        assert app.findings[0].id == "PPD003"

        # Report
        await pilot.press("5")
        await settle(pilot, app)
        target = tmp_path / "incident.md"
        app.screen.query_one("#report-path", Input).value = "incident.md"
        await pilot.press("ctrl+s")
        await wait_until(pilot, target.exists, 20, "the report file")
        await settle(pilot, app)
        text = target.read_text(encoding="utf-8")
        assert "PPD003" in text and "FIX-GW-PP-ON" in text
        assert "written" in screen_text(app)
        shoot(app, "report")


async def test_at_80x24_run_all_read_the_evidence_fix_and_export(lab: Lab, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch):
    """Issue 18's "done when": in an 80×24 terminal, a → PPD003's evidence → plan → confirm → export, never resized.

    Each step's widget is asserted on screen (clicked where a click is the operator's way). Last in this module:
    it leaves the fix applied, and the module's lab is torn down after it.
    """
    from .test_tui_sizes import visible_region

    monkeypatch.chdir(tmp_path)
    app = PPDoctorApp(IncidentSession(lab.config), landing="probes", cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        for _attempt in range(4):  # after the previous test's rollback the gateway may still be restarting
            await pilot.press("a")
            await wait_until(pilot, lambda: bool(app.observations) and not app.probes.running
                             and not app.probes.stale, 120, "every probe and the diagnosis")
            if app.findings and app.findings[0].id == "PPD003":
                break
            await pilot.pause(1.0)
        await pilot.press("3")
        await settle(pilot, app)
        assert app.findings[0].id == "PPD003"
        evidence = app.screen.query_one("#fd-evidence", DataTable)
        assert visible_region(app, evidence).height >= 3  # the header and the first facts, without scrolling
        assert "gateway.ppv2_result" in screen_text(app) or "tg.pp_v2" in screen_text(app)
        assert visible_region(app, app.screen.query_one("#fd-fixes")).area and "FIX-GW-PP-ON" in screen_text(app)
        shoot(app, "diagnosis-80x24")

        await pilot.press("f")
        await wait_until(pilot, lambda: getattr(app.fixes.plan, "id", None) == "FIX-GW-PP-ON", 30, "the plan")
        await settle(pilot, app)
        assert app.current_mode == "fix"
        text = screen_text(app)
        assert PP_CONFIG in text and "(absent)" in text and "proxyProtocol" in text  # before → after, once
        await pilot.click("#plan-apply")  # the confirm action is on screen
        await settle(pilot, app)
        assert isinstance(app.screen, ConfirmModal)
        await pilot.click("#confirm")
        await wait_until(pilot, lambda: app.fixes.apply_result is not None, 90, "the fix to be applied and verified")
        assert app.fixes.apply_result.completed and all(v.passed for v in app.fixes.apply_result.verifications)
        await settle(pilot, app)
        assert "✓ applied;" in screen_text(app)  # the outcome in view, without scrolling

        await pilot.press("5")
        await settle(pilot, app)
        app.screen.query_one("#report-path", Input).value = "incident.md"
        await pilot.click("#report-export")
        await wait_until(pilot, (tmp_path / "incident.md").exists, 20, "the report file")
        await settle(pilot, app)
        assert "written" in screen_text(app)
        assert app.size == (80, 24)
    text = (tmp_path / "incident.md").read_text(encoding="utf-8")
    assert "PPD003" in text and "FIX-GW-PP-ON" in text
