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
    new_pods = {p.metadata.name for p in core.list_namespaced_pod("istio-system", label_selector="istio=ingressgateway").items}
    assert new_pods and not new_pods & old_pods  # the pod was replaced
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
