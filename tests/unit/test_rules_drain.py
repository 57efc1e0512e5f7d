"""PPD021 (rollout drain): the pod-template timings ppdoctor reads, the rule from hand-built facts (fires / near
misses, measured and static, partial access), and the fix plan's patch and undo."""

from __future__ import annotations

import pytest

from ppdoctor.diagnosis import diagnose
from ppdoctor.diagnosis.model import FactView
from ppdoctor.diagnosis.rules_drain import ppd021
from ppdoctor.drain import must_serve_s, parse_duration, pod_shutdown, pre_stop_sleep
from ppdoctor.fixes.plans_drain import pre_stop_drain
from ppdoctor.fixes.planner import LiveState
from ppdoctor.probes.model import Observation, Status


def _template(*, hook=None, grace=None, annotations=None):
    container = {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.24.2"}
    if hook is not None:
        container["lifecycle"] = {"preStop": hook}
    spec = {"containers": [container]}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {"metadata": {"annotations": annotations or {}}, "spec": spec}


@pytest.mark.parametrize("hook, seconds", [
    ({"exec": {"command": ["sleep", "150"]}}, 150),
    ({"exec": {"command": ["/bin/sh", "-c", "echo stopping && sleep 310"]}}, 310),
    ({"sleep": {"seconds": 90}}, 90),  # the Kubernetes 1.30+ sleep action
    ({"exec": {"command": ["curl", "-X", "POST", "localhost:15000/healthcheck/fail"]}}, 0),  # no sleep in it
    (None, 0),
])
def test_pre_stop_sleep(hook, seconds):
    container = {"name": "istio-proxy", **({"lifecycle": {"preStop": hook}} if hook else {})}
    assert pre_stop_sleep(container) == seconds


@pytest.mark.parametrize("value, seconds", [("5s", 5), ("1m", 60), ("300ms", 0.3), (45, 45), ("soon", None), (None, None)])
def test_parse_duration(value, seconds):
    assert parse_duration(value) == seconds


def test_pod_shutdown_defaults_and_overrides():
    # Istio's 5 s drain and Kubernetes' 30 s grace when nothing is set
    bare = pod_shutdown(_template())
    assert (bare.pre_stop_sleep_s, bare.drain_s, bare.grace_s, bare.serves_for_s) == (0, 5, 30, 5)
    # the pod template's proxy.istio.io/config beats the mesh default; the grace period caps the total
    t = _template(hook={"exec": {"command": ["sleep", "150"]}}, grace=60,
                  annotations={"proxy.istio.io/config": '{"terminationDrainDuration": "20s"}'})
    s = pod_shutdown(t, {"defaultConfig": {"terminationDrainDuration": "10s"}})
    assert (s.drain_s, s.serves_for_s) == (20, 60)
    assert pod_shutdown(_template(), {"defaultConfig": {"terminationDrainDuration": "10s"}}).drain_s == 10
    # the annotation is as often YAML as JSON (Istio reads both)
    yaml_form = _template(annotations={"proxy.istio.io/config": "terminationDrainDuration: 45s\n"})
    assert pod_shutdown(yaml_form, {"defaultConfig": {"terminationDrainDuration": "10s"}}).drain_s == 45


def test_must_serve_is_the_longer_of_propagation_and_delay():
    assert must_serve_s(None) == 300  # AWS default delay
    assert must_serve_s(30) == 120  # field-measured propagation (~2 minutes) whatever the delay
    assert must_serve_s(600) == 600


def _view(*observations: Observation) -> FactView:
    return FactView(list(observations))


def _obs(probe: str, status: Status = Status.OK, **facts) -> Observation:
    obs = Observation(probe)
    obs.status = status
    for name, value in facts.items():
        obs.fact(name.replace("__", "."), value)
    return obs


NO_HOOK = dict(gateway__pre_stop_sleep_s=0.0, gateway__termination_drain_s=5.0, gateway__termination_grace_s=30.0,
               gateway__serves_after_delete_s=5.0)
SAFE_HOOK = dict(gateway__pre_stop_sleep_s=310.0, gateway__termination_drain_s=5.0, gateway__termination_grace_s=325.0,
                 gateway__serves_after_delete_s=315.0)
LOSSY = dict(rollout__failures=22, rollout__requests=158, rollout__failure_classes=["reset"])
LOSSLESS = dict(rollout__failures=0, rollout__requests=158, rollout__failure_classes=[])


@pytest.mark.parametrize("case, kube, aws, rollout, severity", [
    ("measured loss, pods stop early", NO_HOOK, 300, LOSSY, "error"),
    ("measured loss, Kubernetes unreadable", None, 300, LOSSY, "error"),
    ("measured loss, AWS unreadable", NO_HOOK, None, LOSSY, "error"),
    ("no measurement: pods stop after 5 s, delay 300 s", NO_HOOK, 300, None, "warning"),
    ("no measurement, AWS unreadable: the default delay", NO_HOOK, None, None, "warning"),
    ("preStop 150 s beats the propagation but not a 300 s delay", {**SAFE_HOOK, "gateway__serves_after_delete_s": 155.0},
     300, None, "warning"),
    ("near miss: a measured lossless rollout", NO_HOOK, 300, LOSSLESS, None),
    ("near miss: preStop outlasts the delay", SAFE_HOOK, 300, None, None),
    ("near miss: short delay, preStop past the propagation window", {**SAFE_HOOK, "gateway__serves_after_delete_s": 135.0},
     30, None, None),
    ("near miss: nothing known", None, None, None, None),
])
def test_ppd021(case, kube, aws, rollout, severity):
    observations = []
    if kube is not None:
        observations.append(_obs("kube", **kube))
    if aws is not None:
        observations.append(_obs("aws", tg__deregistration_delay_s=aws))
    if rollout is not None:
        observations.append(_obs("rollout", Status.FAIL if rollout["rollout__failures"] else Status.OK, **rollout))
    finding = ppd021(_view(*observations))
    assert (finding.severity if finding else None) == severity, case
    if finding:
        assert finding.fixes == ["FIX-PRESTOP-DRAIN"] and "rollout" in finding.explains
        assert "preStop" in finding.explanation and "#35964" in finding.explanation


def test_ppd021_confidence_and_confirmation_follow_the_evidence():
    full = ppd021(_view(_obs("kube", **NO_HOOK), _obs("aws", tg__deregistration_delay_s=300), _obs("rollout", Status.FAIL, **LOSSY)))
    blind = ppd021(_view(_obs("rollout", Status.FAIL, **LOSSY)))
    static = ppd021(_view(_obs("kube", **NO_HOOK), _obs("aws", tg__deregistration_delay_s=300)))
    assert full.confidence > blind.confidence and full.confidence > static.confidence
    assert not full.confirm
    assert any("gateway.serves_after_delete_s" in line for line in blind.confirm)
    assert any("probe rollout" in line for line in static.confirm)  # how to measure it


def test_ppd021_leads_a_measured_lossy_rollout_in_an_otherwise_healthy_world():
    findings = diagnose([_obs("kube", **NO_HOOK), _obs("aws", tg__deregistration_delay_s=300),
                         _obs("rollout", Status.FAIL, **LOSSY)])
    assert findings[0].id == "PPD021"


def _live(template, delay=None):
    return LiveState(
        tg_arn="arn:tg", tg={"TargetType": "ip"},
        attributes={} if delay is None else {"deregistration_delay.timeout_seconds": str(delay)}, lbc_owned=True,
        service={"metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"}},
        deployment={"metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"}, "spec": {"template": template}},
        mesh=None, envoy_filters=[])


def test_fix_sets_a_sleep_past_the_delay_and_restores_the_template_on_rollback():
    [change] = pre_stop_drain(_live(_template(), delay=300))
    body = change.payload["kwargs"]["body"]["spec"]["template"]["spec"]
    command = body["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert body["containers"][0]["name"] == "istio-proxy"  # strategic merge by container name
    assert command[0] == "sleep" and int(command[1]) > 300
    assert body["terminationGracePeriodSeconds"] > int(command[1]) + 5  # Istio's drain still fits
    undo = change.rollback_payload["kwargs"]["body"]["spec"]["template"]["spec"]
    assert undo["containers"][0]["lifecycle"] is None and undo["terminationGracePeriodSeconds"] is None
    assert change.verify == "rollout-lossless"


def test_fix_with_a_short_delay_still_outlasts_the_propagation_window():
    [change] = pre_stop_drain(_live(_template(), delay=10))
    command = change.payload["kwargs"]["body"]["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert 120 < int(command[1]) < 300


def test_fix_keeps_other_lifecycle_hooks_and_is_empty_when_already_safe():
    post = {"exec": {"command": ["true"]}}
    t = _template(hook={"exec": {"command": ["sleep", "5"]}})
    t["spec"]["containers"][0]["lifecycle"]["postStart"] = post
    [change] = pre_stop_drain(_live(t, delay=300))
    lifecycle = change.payload["kwargs"]["body"]["spec"]["template"]["spec"]["containers"][0]["lifecycle"]
    assert lifecycle["postStart"] == post
    assert change.rollback_payload["kwargs"]["body"]["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["preStop"] == \
        {"exec": {"command": ["sleep", "5"]}}
    assert pre_stop_drain(_live(_template(hook={"exec": {"command": ["sleep", "400"]}}, grace=420), delay=300)) == []


def test_refused_rollout_probe_leaves_ppd021_open_never_healthy():
    """Kubernetes refused: the probe could not restart the gateway nor read its template. No PPD000."""
    refused = Observation("rollout")
    refused.status = Status.ERROR
    refused.summary = "Kubernetes refused: patch deployments.apps in istio-system"
    healthy_path = [_obs("aws", tg__deregistration_delay_s=300, tg__pp_v2=True, tg__preserve_ip=False, tg__healthy_count=1),
                    _obs("http-via-nlb", via_nlb__result="ok", via_nlb__client_ip_class="prober"),
                    _obs("direct-plain", gateway__plain_result="reset"), _obs("direct-ppv2", gateway__ppv2_result="ok")]
    ids = [f.id for f in diagnose([*healthy_path, refused])]
    assert ids[0] == "PPD021" and "PPD000" not in ids
    finding = ppd021(_view(*healthy_path, refused))
    assert finding.severity == "info" and finding.confidence < 0.5 and finding.confirm
    assert diagnose(healthy_path)[0].id == "PPD000"  # the same world without the refused probe: healthy
