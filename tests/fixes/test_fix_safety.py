"""Fix safety against a live lab: a change failing halfway stops and is reported exactly; rollback restores
every before-value; declining changes nothing; diagnose's exit code and JSON shape."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time

import pytest

from ppdoctor.config import load_config
from ppdoctor.fixes import apply_plan, build_plan, read_state
from ppdoctor.incident import IncidentLog
from ppdoctor.session import IncidentSession
from ppdoctor.lab.scenario import load_scenario
from ppdoctor.lab.world import LabWorld
from ppdoctor.probes import ProbeContext

ANN = "service.beta.kubernetes.io/aws-load-balancer-"


class InProcessLab:
    """The lab world in this process (its own loop thread), so tests can inject API faults."""

    def __init__(self, scenario: str, state_dir) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.world = LabWorld(load_scenario(scenario), state_dir)
        self.endpoints = self.run(self.world.start(), 90)
        self.config = load_config(self.endpoints.config, env={})

    def run(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        try:
            self.run(self.world.stop(), 30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    def service_annotations(self) -> dict:
        return dict(self.world.kube.store.get("services", "istio-system", "istio-ingressgateway")["metadata"]["annotations"])

    def envoy_filters(self) -> list:
        return self.world.kube.store.list("envoyfilters")

    def tg(self) -> tuple[dict, dict]:
        import boto3

        elbv2 = boto3.session.Session(aws_access_key_id="t", aws_secret_access_key="t",
                                      region_name="us-east-1").client("elbv2", endpoint_url=self.endpoints.aws_endpoint_url)
        arn = self.endpoints.target_group_arn
        attrs = {a["Key"]: a["Value"] for a in elbv2.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]}
        return attrs, elbv2.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"][0]


@pytest.fixture
def lab(tmp_path):
    lab = InProcessLab("no-client-ip", tmp_path / "lab")
    yield lab
    lab.stop()


def _poll(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_failure_halfway_stops_reports_and_rolls_back(lab, tmp_path):
    before_ann = lab.service_annotations()
    before_attrs, before_tg = lab.tg()
    assert before_tg["HealthCheckProtocol"] == "HTTP"
    ctx = ProbeContext(lab.config)
    try:
        plan = build_plan("FIX-PP-ENABLE", read_state(ctx))
        kinds = [c.kind for c in plan.changes]
        assert kinds[:3] == ["k8s-merge-patch"] * 3 and "k8s-create" in kinds  # HC first, then the optional gateway
        # RBAC forbids creating EnvoyFilters: the plan must stop right there.
        lab.world.kube.forbid("create", "envoyfilters")
        session = IncidentSession(lab.config, incident=IncidentLog(tmp_path / "incident.jsonl"), by="test")
        result = asyncio.run(session.apply(plan))
    finally:
        ctx.close()
    recorded = [e["data"]["change"]["status"] for e in session.incident.entries() if e["kind"] == "change"]
    assert recorded == ["applied"] * 3 + ["failed"]  # the record holds exactly what happened
    assert not result.completed
    assert [c.status for c in plan.changes] == ["applied"] * 3 + ["failed"] + ["pending"] * (len(plan.changes) - 4)
    assert "RBAC forbids create envoyfilters" in result.error
    assert "grant the verb 'create'" in plan.changes[3].error
    # The lab API and moto show exactly the applied part.
    ann = lab.service_annotations()
    assert ann[ANN + "healthcheck-protocol"] == "tcp" and ann[ANN + "healthcheck-port"] == "traffic-port"
    assert ANN + "healthcheck-path" not in ann
    assert ann.get(ANN + "proxy-protocol") is None  # the target-group step never ran
    assert lab.envoy_filters() == []
    assert _poll(lambda: lab.tg()[1]["HealthCheckProtocol"] == "TCP")  # the LBC reconciled the applied part
    assert lab.tg()[0].get("proxy_protocol_v2.enabled", "false") == "false"

    lab.world.kube.clear_faults()
    done, failed = asyncio.run(session.rollback())
    assert not failed and [d["status"] for d in done] == ["rolled-back"] * 3
    assert session.rollback_candidates() == []
    assert lab.service_annotations() == before_ann
    assert _poll(lambda: lab.tg()[1]["HealthCheckProtocol"] == before_tg["HealthCheckProtocol"]
                 and lab.tg()[1]["HealthCheckPort"] == before_tg["HealthCheckPort"])


def test_aws_failure_is_reported_with_the_api_action(tmp_path):
    lab = InProcessLab("in-tree-annotation-ignored", tmp_path / "lab")
    try:
        ctx = ProbeContext(lab.config)
        plan = build_plan("FIX-TG-PP-ON", read_state(ctx))
        assert [c.kind for c in plan.changes] == ["aws-tg-attributes"]  # no controller: the TG itself
        assert plan.changes[0].before == "false" and plan.changes[0].after == "true"
        # moto rejects this call: a bad ARN is what a deleted target group looks like.
        plan.changes[0].payload["kwargs"]["TargetGroupArn"] = lab.endpoints.target_group_arn + "0"
        result = asyncio.run(apply_plan(plan, ctx, verify_timeout=5))
        ctx.close()
        assert not result.completed and plan.changes[0].status == "failed"
        assert "elasticloadbalancing:ModifyTargetGroupAttributes failed: TargetGroupNotFound" in result.error
        assert lab.tg()[0]["proxy_protocol_v2.enabled"] == "false"
    finally:
        lab.stop()


def _snapshot(lab):
    kube = lab.kube()
    from kubernetes import client

    dep = client.AppsV1Api(kube).read_namespaced_deployment("istio-ingressgateway", "istio-system")
    svc = client.CoreV1Api(kube).read_namespaced_service("istio-ingressgateway", "istio-system")
    efs = client.CustomObjectsApi(kube).list_cluster_custom_object("networking.istio.io", "v1alpha3", "envoyfilters")
    health = lab.elbv2().describe_target_groups(TargetGroupArns=[lab.endpoints["target_group_arn"]])["TargetGroups"][0]
    attrs = lab.tg_attributes()
    # Effective values: an absent attribute means the AWS default (the controller may write it explicitly).
    effective = (attrs.get("proxy_protocol_v2.enabled", "false"), attrs.get("preserve_client_ip.enabled", "false"))
    return (dep.metadata.resource_version, svc.metadata.resource_version, len(efs["items"]), effective,
            health["HealthCheckProtocol"], health["HealthCheckPort"])


def _cli(lab, *args, stdin=subprocess.DEVNULL):
    return subprocess.run([sys.executable, "-m", "ppdoctor.cli", "--config", lab.endpoints["config"], *args],
                          stdin=stdin, capture_output=True, text=True, timeout=180)


@pytest.mark.lab
def test_declining_changes_nothing_and_diagnose_exit_codes(lab_pool):
    lab = lab_pool.get("no-client-ip", fresh=True)
    before = _snapshot(lab)
    out = _cli(lab, "fix", "FIX-PP-ENABLE")  # no --yes, stdin is not a terminal: not confirmed
    assert "not confirmed" in out.stderr and "declined: nothing was changed" in out.stdout, out
    out = _cli(lab, "fix", "--all")
    assert "not confirmed" in out.stderr
    assert _snapshot(lab) == before

    out = _cli(lab, "diagnose", "--json")
    assert out.returncode == 2
    data = json.loads(out.stdout)
    first = data["findings"][0]
    assert first["id"] == "PPD001" and {"id", "severity", "confidence", "title", "evidence", "fixes"} <= first.keys()

    out = _cli(lab, "fix", "--all", "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "after: PPD000" in out.stdout
    assert _cli(lab, "diagnose").returncode == 0

    out = _cli(lab, "fix", "--rollback", "--yes")
    assert out.returncode == 0 and "rolled back" in out.stdout, out
    assert _poll(lambda: _snapshot(lab)[2:] == before[2:], timeout=20), (_snapshot(lab), before)
    assert _cli(lab, "diagnose").returncode == 2

