"""Rollback bookkeeping without a lab: which recorded changes are outstanding, how a change's live value is read
back from hand-built state (so a foreign edit is seen), and `incident show` on a damaged record."""

from __future__ import annotations

import pytest

from ppdoctor.cli import main
from ppdoctor.config import NlbTarget, TargetConfig, write_config
from ppdoctor.fixes import build_plan
from ppdoctor.fixes.live import UNKNOWN, live_value, still_ours
from ppdoctor.fixes.planner import LiveState
from ppdoctor.incident import incidents_for, open_current
from ppdoctor.incident.journal import outstanding_changes

ARN = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/tg/1"
PP = "service.beta.kubernetes.io/aws-load-balancer-proxy-protocol"


def state(*, svc_ann=None, tpl_ann=None, attrs=None, lbc=True, filters=()) -> LiveState:
    return LiveState(
        tg_arn=ARN,
        tg={"TargetGroupArn": ARN, "HealthCheckProtocol": "HTTP", "HealthCheckPort": "15021", "TargetType": "ip"},
        attributes=dict(attrs or {"proxy_protocol_v2.enabled": "false"}),
        lbc_owned=lbc,
        service={"metadata": {"namespace": "istio-system", "name": "gw", "annotations": dict(svc_ann or {})}},
        deployment={
            "metadata": {"namespace": "istio-system", "name": "gw", "annotations": {}},
            "spec": {"template": {"metadata": {"annotations": dict(tpl_ann or {})}}},
        },
        mesh=None,
        envoy_filters=list(filters),
    )


@pytest.mark.parametrize(
    "fix, before, after_state, ours",
    [
        # LBC-owned: the Service annotation; the value after our write reads back as ours
        ("FIX-TG-PP-ON", state(), state(svc_ann={PP: "*"}), True),
        ("FIX-TG-PP-ON", state(), state(svc_ann={PP: "someone-else"}), False),
        ("FIX-TG-PP-ON", state(), state(), False),  # removed since
        # no controller: the target group attribute itself
        ("FIX-TG-PP-ON", state(lbc=False), state(lbc=False, attrs={"proxy_protocol_v2.enabled": "true"}), True),
        ("FIX-TG-PP-ON", state(lbc=False), state(lbc=False, attrs={"proxy_protocol_v2.enabled": "false"}), False),
        ("FIX-HC-TCP", state(lbc=False), state(lbc=False), False),
        (
            "FIX-GW-PP-ON",
            state(),
            state(tpl_ann={"proxy.istio.io/config": '{"gatewayTopology":{"proxyProtocol":{}}}'}),
            True,
        ),
        ("FIX-GW-PP-ON", state(), state(tpl_ann={"proxy.istio.io/config": '{"gatewayTopology":{}}'}), False),
    ],
)
def test_live_value_reads_back_the_changed_field(fix, before, after_state, ours):
    change = build_plan(fix, before).changes[-1].as_dict()
    now = live_value(change, after_state)
    assert now is not UNKNOWN
    assert still_ours(change, now) is ours


def test_unknown_object_is_unknown_not_ours():
    change = build_plan("FIX-TG-PP-ON", state(lbc=False)).changes[0].as_dict()
    change["object"] = "arn:other"
    assert live_value(change, state(lbc=False)) is UNKNOWN


def _change(cid, status="applied"):
    return {
        "at": 1.0,
        "kind": "change",
        "summary": "",
        "data": {
            "cid": cid,
            "fix": "F",
            "change": {"object": "o", "field": cid, "before": None, "after": "x", "status": status},
        },
    }


def test_outstanding_changes_skip_failed_and_undone():
    entries = [
        _change("a"),
        _change("b", "failed"),
        _change("c"),
        {"at": 2.0, "kind": "rollback", "data": {"step": {"cid": "c", "status": "rolled-back"}}},
        {"at": 3.0, "kind": "rollback", "data": {"step": {"cid": "a", "status": "conflict"}}},
    ]
    assert [c["cid"] for c in outstanding_changes(entries)] == ["a"]  # a conflict leaves the change in place


def test_incident_show_prints_what_is_readable_and_names_the_bad_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    config = TargetConfig(name="t", nlb=NlbTarget(address="10.0.0.1:80"))
    path = tmp_path / "t.toml"
    write_config(config, path)
    log = open_current(config, by="test")
    log.append("note", "readable before")
    with open(log.path, "ab") as f:
        f.write(b"{broken\n")
    log.append("note", "readable after")
    assert main(["--config", str(path), "incident", "show"]) == 2
    out, err = capsys.readouterr()
    assert "readable before" in out and "readable after" in out
    assert f"{log.path}:3" in err
    assert main(["--config", str(path), "incident", "close", "--note", "done"]) == 2  # needs a sound record
    assert "damaged at line 3" in capsys.readouterr().err
    assert incidents_for(config).infos()[0].open


def test_unwritable_state_dir_is_a_clear_error(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocker))
    config = TargetConfig(name="t", nlb=NlbTarget(address="10.0.0.1:80"))
    path = tmp_path / "t.toml"
    write_config(config, path)
    assert main(["--config", str(path), "incident", "note", "hello"]) == 2
    err = capsys.readouterr().err
    assert "cannot write the incident record" in err and "XDG_STATE_HOME" in err and "Traceback" not in err
