"""One incident across separate processes, against the lab: diagnose → fix → report tells the whole story;
a fix killed between two changes leaves exactly the applied part; rollback stays inside its incident and
stops at a value someone else changed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ppdoctor.fixes.apply import HOLD_ENV

pytestmark = pytest.mark.lab
PP_ANN = "service.beta.kubernetes.io/aws-load-balancer-proxy-protocol"


def _env(state: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop(HOLD_ENV, None)
    env.update(XDG_STATE_HOME=str(state), **extra)
    return env


def _cli(lab, state: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ppdoctor.cli", "--config", lab.endpoints["config"], *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(state),
    )


def _entries(lab, state: Path) -> list[dict]:
    out = _cli(lab, state, "incident", "show", "--json")
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def _service_annotations(lab) -> dict:
    from kubernetes import client

    svc = client.CoreV1Api(lab.kube()).read_namespaced_service("istio-ingressgateway", "istio-system")
    return dict(svc.metadata.annotations or {})


def test_diagnose_fix_report_as_separate_processes_tell_one_incident(lab_pool, tmp_path):
    lab = lab_pool.get("gateway-pp-tg-off", fresh=True)
    state = tmp_path / "state"
    assert _cli(lab, state, "diagnose").returncode == 2
    fix = _cli(lab, state, "fix", "--all", "--yes")
    assert fix.returncode == 0 and "after: PPD000" in fix.stdout, fix.stdout + fix.stderr
    out = tmp_path / "x.json"
    rep = _cli(lab, state, "report", "-o", str(out))
    assert rep.returncode == 0, rep.stderr
    report = json.loads(out.read_text())

    assert report["verdict"]["before"]["id"] == "PPD004"
    assert report["verdict"]["after"]["id"] == "PPD000" and report["verdict"]["after"]["healthy"]
    first = report["first_diagnosis"]
    assert first["finding"]["id"] == "PPD004" and first["evidence"]
    assert any(o["status"] != "ok" and o["failure_class"] for o in first["failing_observations"])
    applied = [c for c in report["changes"] if c["status"] == "applied"]
    assert len(applied) == 1 and applied[0]["field"] == f'metadata.annotations["{PP_ANN}"]'
    assert applied[0]["before"] is None and applied[0]["after"] == "*"
    assert applied[0]["verification"] == "passed" and applied[0]["verification_check"] == "client-ip"
    plan = next(p for p in report["plans"] if p["fix"] == "FIX-TG-PP-ON")
    assert plan["confirmation"]["confirmed"] and plan["confirmation"]["by"] == "--yes"
    assert plan["confirmation"]["t"] >= plan["t"]
    times = [e["t"] for e in report["timeline"]]
    assert times[0] == 0 and all(b > a for a, b in zip(times, times[1:]))
    by = {e["by"] for e in report["timeline"]}
    assert {"cli diagnose", "cli fix", "cli report"} <= by  # three processes, one incident
    assert report["timeline"][-1]["t"] > 1.0  # real relative times, not all "+0.00 s"
    assert report["final_diagnosis"]["findings"][0]["id"] == "PPD000"

    # The same incident in Markdown and HTML tells the same verdicts.
    for suffix in ("md", "html"):
        _cli(lab, state, "report", "--incident", report["incident"]["id"], "-o", str(tmp_path / f"x.{suffix}"))
        text = (tmp_path / f"x.{suffix}").read_text()
        assert "PPD004" in text and "PPD000" in text and "passed" in text
    # Leave the lab as the scenario defines it for the next test module.
    assert _cli(lab, state, "fix", "--rollback", "--yes").returncode == 0


def test_fix_killed_between_two_changes_leaves_exactly_the_applied_part(lab_pool, tmp_path):
    lab = lab_pool.get("no-client-ip", fresh=True)
    state = tmp_path / "state"
    marker = tmp_path / "held"
    before = _service_annotations(lab)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ppdoctor.cli", "--config", lab.endpoints["config"], "fix", "--all", "--yes"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(state, **{HOLD_ENV: f"1:{marker}"}),
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), proc.communicate(timeout=5) if proc.poll() is not None else "hold point not reached"
        assert int(marker.read_text()) == proc.pid
        os.kill(proc.pid, signal.SIGKILL)  # between change 1 and change 2
    finally:
        proc.kill()
        proc.communicate(timeout=20)

    entries = _entries(lab, state)
    plan = next(e for e in entries if e["kind"] == "plan")
    assert len(plan["data"]["plan"]["changes"]) >= 2
    changes = [e for e in entries if e["kind"] == "change"]
    assert len(changes) == 1 and changes[0]["data"]["change"]["status"] == "applied"
    first = plan["data"]["plan"]["changes"][0]
    assert changes[0]["data"]["change"]["field"] == first["field"]
    key = first["field"].split('"')[1]
    now = _service_annotations(lab)
    assert now.get(key) == first["after"] != before.get(key)  # the record and the cluster agree
    second = plan["data"]["plan"]["changes"][1]
    if second["object"].startswith("Service"):
        assert now.get(second["field"].split('"')[1]) == second["before"]  # the next change never ran
    shown = _cli(lab, state, "incident", "show")
    assert "applied:" in shown.stdout and shown.stdout.count("applied:") == 1

    back = _cli(lab, state, "fix", "--rollback", "--yes", "--json")
    assert back.returncode == 0, back.stdout + back.stderr
    assert len(json.loads(back.stdout)["rolled_back"]) == 1
    assert _service_annotations(lab) == before


def test_rollback_stays_in_its_incident_and_stops_at_a_foreign_change(lab_pool, tmp_path):
    state = tmp_path / "state"
    lab = lab_pool.get("gateway-pp-tg-off", fresh=True)
    assert _cli(lab, state, "fix", "--all", "--yes").returncode == 0
    first_arn = lab.endpoints["target_group_arn"]

    lab = lab_pool.get("gateway-pp-tg-off", fresh=True)  # lab down, a new lab of the same scenario
    assert lab.endpoints["target_group_arn"] != first_arn
    fix = _cli(lab, state, "fix", "--all", "--yes")
    assert fix.returncode == 0 and "after: PPD000" in fix.stdout, fix.stdout + fix.stderr
    listing = _cli(lab, state, "incident", "list", "--json")
    incidents = json.loads(listing.stdout)["incidents"]
    assert [i["open"] for i in incidents] == [False, True]  # same target key, the replaced NLB ended the first
    assert [i["changes_not_rolled_back"] for i in incidents] == [1, 1]

    back = _cli(lab, state, "fix", "--rollback", "--yes")
    assert back.returncode == 0 and "rolled back 1 change(s)" in back.stdout, back.stdout + back.stderr
    assert incidents[0]["id"] in back.stdout and "rolled back only when named" in back.stdout
    assert PP_ANN not in _service_annotations(lab)

    # Fix again, then someone else changes the same annotation: the rollback must not overwrite it.
    assert _cli(lab, state, "fix", "FIX-TG-PP-ON", "--yes").returncode == 0
    assert _service_annotations(lab)[PP_ANN] == "*"
    from kubernetes import client

    client.CoreV1Api(lab.kube()).patch_namespaced_service(
        "istio-ingressgateway", "istio-system", {"metadata": {"annotations": {PP_ANN: "someone-else"}}}
    )
    back = _cli(lab, state, "fix", "--rollback", "--yes")
    assert back.returncode == 2, back.stdout + back.stderr
    assert (
        "before: (absent)" in back.stdout and "ours:   '*'" in back.stdout and "now:    'someone-else'" in back.stdout
    )
    assert _service_annotations(lab)[PP_ANN] == "someone-else"  # untouched
    steps = [e["data"]["step"] for e in _entries(lab, state) if e["kind"] == "rollback"]
    assert steps[-1]["status"] == "conflict" and steps[-1]["now"] == "someone-else"
    client.CoreV1Api(lab.kube()).patch_namespaced_service(
        "istio-ingressgateway", "istio-system", {"metadata": {"annotations": {PP_ANN: None}}}
    )
