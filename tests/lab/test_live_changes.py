"""The lab follows changes made through the real APIs, as production does."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest

from ppdoctor.probes import run_probes


def _until(fn, timeout):
    """Poll fn() until it returns a truthy value or the deadline passes; returns (value, seconds)."""
    t0 = time.monotonic()
    while True:
        value = fn()
        if value or time.monotonic() - t0 > timeout:
            return value, time.monotonic() - t0
        time.sleep(0.1)


def _result(lab, probe):
    obs = asyncio.run(run_probes(lab.config, [probe]))[0]
    key = {"http-via-nlb": "via_nlb.result", "direct-ppv2": "gateway.ppv2_result", "direct-plain": "gateway.plain_result"}[probe]
    return obs.facts[key].value


@pytest.mark.lab
def test_target_group_pp_on_through_boto3_turns_reset_into_200(lab_pool):
    lab = lab_pool.get("gateway-pp-tg-off", fresh=True)
    assert _result(lab, "http-via-nlb") in ("reset", "empty-reply")
    lab.elbv2().modify_target_group_attributes(
        TargetGroupArn=lab.endpoints["target_group_arn"],
        Attributes=[{"Key": "proxy_protocol_v2.enabled", "Value": "true"}])
    # Behaviour, not timing: the lab polls the target group every 0.5 s (typically < 2 s here);
    # a generous deadline keeps a loaded CI machine from failing the test.
    ok, seconds = _until(lambda: _result(lab, "http-via-nlb") == "ok", 15.0)
    assert ok, f"still failing after {seconds:.1f} s"


@pytest.mark.lab
def test_pod_template_patch_restarts_the_gateway_with_the_filter(lab_pool):
    from kubernetes import client

    lab = lab_pool.get("tg-pp-on-gateway-off", fresh=True)
    apps = client.AppsV1Api(lab.kube())
    core = client.CoreV1Api(lab.kube())
    old_pods = {p.metadata.name for p in core.list_namespaced_pod("istio-system", label_selector="istio=ingressgateway").items}
    assert _result(lab, "direct-ppv2") == "http-4xx"
    apps.patch_namespaced_deployment("istio-ingressgateway", "istio-system", {
        "spec": {"template": {"metadata": {"annotations": {
            "proxy.istio.io/config": '{"gatewayTopology":{"proxyProtocol":{}}}'}}}}})
    ok, seconds = _until(lambda: _result(lab, "direct-ppv2") == "ok", 20.0)  # typically ~1.5 s
    assert ok, f"gateway still without the PROXY filter after {seconds:.1f} s"

    def listed():
        return core.list_namespaced_pod("istio-system", label_selector="istio=ingressgateway").items
    # the pod was replaced: once the new one is ready the old one is deleted, Terminating through its preStop
    replaced, _ = _until(lambda: {p.metadata.name for p in listed() if p.metadata.deletion_timestamp} == old_pods, 20.0)
    assert replaced, [(p.metadata.name, p.metadata.deletion_timestamp) for p in listed()]
    new_pods = {p.metadata.name for p in listed() if p.metadata.deletion_timestamp is None}
    assert new_pods and not new_pods & old_pods
    # Through the NLB the replaced pod (in its preStop sleep, still without the filter) gets new flows for the
    # deregistration's propagation window (6 s in the lab, lab/nlb_drain.py); then only the new pod answers.
    ok, seconds = _until(lambda: all(_result(lab, "http-via-nlb") == "ok" for _ in range(3)), 20.0)
    assert ok, f"the NLB still reaches the replaced pod after {seconds:.1f} s"


@pytest.mark.lab
def test_mesh_config_change_does_not_touch_running_pods(lab_pool):
    from kubernetes import client

    lab = lab_pool.get("tg-pp-on-gateway-off", fresh=True)
    core = client.CoreV1Api(lab.kube())
    cm = core.read_namespaced_config_map("istio", "istio-system")
    mesh = cm.data["mesh"].replace("defaultConfig:\n", "defaultConfig:\n  gatewayTopology:\n    proxyProtocol: {}\n")
    core.patch_namespaced_config_map("istio", "istio-system", {"data": {"mesh": mesh}})
    time.sleep(1.5)  # give a (wrong) reaction time to happen; Istio reads ProxyConfig only at proxy start
    assert _result(lab, "direct-ppv2") == "http-4xx"
    assert _result(lab, "direct-plain") == "ok"


@pytest.mark.lab
def test_lab_cli_up_json_down_leaves_no_process(tmp_path):
    state = tmp_path / "state"
    env = dict(os.environ)
    up = subprocess.run([sys.executable, "-m", "ppdoctor.cli", "lab", "up", "--scenario", "healthy", "--json",
                         "--detach", "--state-dir", str(state)], capture_output=True, text=True, timeout=120, env=env)
    assert up.returncode == 0, up.stderr
    data = json.loads(up.stdout)
    assert {"config", "nlb", "gateway", "gateway_admin", "echo_path", "aws_endpoint_url", "region", "kubeconfig",
            "target_group_arn"} <= data.keys()
    pid = int((state / "supervisor.pid").read_text())
    envoy_pids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    assert envoy_pids, "the lab should run Envoy as its child"
    again = subprocess.run([sys.executable, "-m", "ppdoctor.cli", "lab", "up", "--state-dir", str(state)],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "already running" in again.stderr
    down = subprocess.run([sys.executable, "-m", "ppdoctor.cli", "lab", "down", "--state-dir", str(state)],
                          capture_output=True, text=True, timeout=60)
    assert down.returncode == 0 and "stopped" in down.stdout
    for p in [pid, *map(int, envoy_pids)]:
        assert not os.path.exists(f"/proc/{p}") or "zombie" in open(f"/proc/{p}/status").read().lower(), p
    assert not (state / "lab.json").exists()


def test_bad_scenario_name_fails_fast_with_the_known_names(tmp_path):
    out = subprocess.run([sys.executable, "-m", "ppdoctor.cli", "lab", "up", "--scenario", "nope",
                          "--state-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "no scenario named 'nope'" in out.stderr and "healthy" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.lab
def test_a_rollout_in_progress_is_not_settled_then_healthy(lab_pool):
    """`kubectl rollout restart` of a healthy gateway: the old pod is listed Terminating and its target draining,
    as on AWS; while the NLB may still send the old pod new flows the diagnosis says PPD094, never PPD000; once the
    window has passed it is PPD000 again, with the old target still draining (old flows finishing, not unhealthy)."""
    from kubernetes import client

    from ppdoctor.diagnosis.engine import diagnose

    lab = lab_pool.get("healthy", fresh=True)
    apps, core = client.AppsV1Api(lab.kube()), client.CoreV1Api(lab.kube())

    def pods():
        return core.list_namespaced_pod("istio-system", label_selector="istio=ingressgateway").items

    seen_unsettled = False
    for attempt in range(3):  # a machine so loaded that the probes outlast the lab's 7 s window gets another rollout
        before = {p.metadata.name: p.status.pod_ip for p in pods() if p.metadata.deletion_timestamp is None}
        apps.patch_namespaced_deployment("istio-ingressgateway", "istio-system", {"spec": {"template": {"metadata": {
            "annotations": {"kubectl.kubernetes.io/restartedAt": f"2026-12-02T12:00:0{attempt}Z"}}}}})
        terminating, _ = _until(lambda old=before: [p for p in pods() if p.metadata.name in old and p.metadata.deletion_timestamp], 20)
        assert terminating, f"the replaced pod was not listed Terminating: {[p.metadata.name for p in pods()]}"
        assert terminating[0].metadata.deletion_grace_period_seconds >= 1
        health = lab.elbv2().describe_target_health(TargetGroupArn=lab.endpoints["target_group_arn"])
        draining = [h for h in health["TargetHealthDescriptions"] if h["TargetHealth"]["State"] == "draining"]
        assert [h["Target"]["Id"] for h in draining] == list(before.values())
        assert draining[0]["TargetHealth"]["Reason"] == "Target.DeregistrationInProgress"
        observations = asyncio.run(run_probes(lab.config))
        findings = diagnose(observations)
        ids = [f.id for f in findings]
        routed = next(o for o in observations if o.probe == "kube").facts["gateway.replaced_routed_s"].value
        aws = next(o for o in observations if o.probe == "aws")
        assert "unhealthy" not in aws.summary, aws.summary  # draining is not a health problem
        if routed > 0:
            # the new target may still be in its initial checks (PPD092): not settled either way
            assert "PPD094" in ids and "PPD000" not in ids and set(ids) <= {"PPD092", "PPD094"}, ids
            seen_unsettled = True
            break
    assert seen_unsettled, "no diagnosis ran inside the replaced pod's window"

    def healthy_again():
        return [f.id for f in diagnose(asyncio.run(run_probes(lab.config)))] == ["PPD000"]
    ok, seconds = _until(healthy_again, 30)
    assert ok, f"not PPD000 {seconds:.1f} s after the rollout"
