"""A rollout in progress (PPD094): Terminating gateway pods the NLB may still send new flows to, draining targets;
the helpers that time it (drain.py) and keep draining targets out of what the probes check."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from ppdoctor.diagnosis.engine import INCONCLUSIVE, diagnose, exit_code
from ppdoctor.drain import deleted_at, in_service, replaced_routed_s

from tests.unit.rulefacts import HEALTHY, REQUIRED, obs

NOW = datetime(2026, 12, 2, 12, 0, 0, tzinfo=timezone.utc)


def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _terminating(deleted: datetime, grace: int = 325) -> dict:
    return {"metadata": {"name": "old", "deletionTimestamp": _stamp(deleted + timedelta(seconds=grace)),
                         "deletionGracePeriodSeconds": grace}}


def test_deleted_at_is_the_deletion_timestamp_minus_the_grace_period():
    assert deleted_at(_terminating(NOW - timedelta(seconds=30))) == NOW - timedelta(seconds=30)
    assert deleted_at({"metadata": {"name": "serving"}}) is None
    assert deleted_at({"metadata": {"deletionTimestamp": "garbage"}}) is None


def test_replaced_pods_are_routed_for_the_window_and_the_controller_lag():
    # 120 s propagation + 20 s lag from deletion, against AWS (scale 1)
    assert replaced_routed_s([_terminating(NOW - timedelta(seconds=30))], NOW) == 110
    assert replaced_routed_s([_terminating(NOW - timedelta(seconds=200))], NOW) == 0
    assert replaced_routed_s([{"metadata": {"name": "serving"}}], NOW) == 0
    # the lab's time factor compresses the window: 140 s × 0.05 = 7 s
    assert replaced_routed_s([_terminating(NOW - timedelta(seconds=2), grace=16)], NOW, 0.05) == 5


def test_draining_targets_are_not_in_service():
    health = [{"Target": {"Id": "10.0.2.10", "Port": 8080}, "TargetHealth": {"State": "healthy"}},
              {"Target": {"Id": "10.0.2.11", "Port": 8080}, "TargetHealth": {"State": "draining",
                                                                           "Reason": "Target.DeregistrationInProgress"}},
              {"Target": {"Id": "10.0.2.12", "Port": 8080}, "TargetHealth": {"State": "unhealthy"}}]
    assert [h["Target"]["Id"] for h in in_service(health)] == ["10.0.2.10", "10.0.2.12"]


def _healthy_world(aws_extra=None, kube=None):
    aws = {k: v for k, v in HEALTHY.items() if k.startswith(("tg.", "hc."))} | (aws_extra or {})
    observations = [obs("aws", "ok", "", aws),
                    obs("direct-plain", "fail", "", {"gateway.plain_result": REQUIRED["gateway.plain_result"]}),
                    obs("direct-ppv2", "ok", "", {"gateway.ppv2_result": "ok"}),
                    obs("http-via-nlb", "ok", "", {k: v for k, v in HEALTHY.items() if k.startswith("via_nlb.")}),
                    obs("xff-forge", "ok", "", {"xff.spoofable": False})]
    if kube is not None:
        observations.append(obs("kube", "ok", "", kube))
    return observations


PODS = [{"name": "istio-ingressgateway-new", "ready": True, "ip": "10.0.2.11", "started": "2026-12-02T11:59:00Z"},
        {"name": "istio-ingressgateway-old", "ready": False, "ip": "10.0.2.10", "started": "2026-12-01T08:00:00Z",
         "deleted": "2026-12-02T11:59:30Z"}]


def test_a_replaced_pod_still_routed_withholds_healthy():
    findings = diagnose(_healthy_world(kube={"gateway.pods": PODS, "gateway.replaced_routed_s": 110.0}))
    ids = [f.id for f in findings]
    assert "PPD000" not in ids and ids[0] == "PPD094"
    assert "istio-ingressgateway-old" in findings[0].explanation and "110 s" in findings[0].explanation
    assert exit_code(findings) == INCONCLUSIVE
    # the same world once the window has passed: healthy
    settled = diagnose(_healthy_world(kube={"gateway.pods": PODS, "gateway.replaced_routed_s": 0.0}))
    assert [f.id for f in settled] == ["PPD000"] and exit_code(settled) == 0


def test_draining_targets_with_the_pods_unread_cannot_be_timed():
    health = [{"id": "10.0.2.11", "port": 8080, "state": "healthy"},
              {"id": "10.0.2.10", "port": 8080, "state": "draining", "reason": "Target.DeregistrationInProgress"}]
    findings = diagnose(_healthy_world({"tg.health": health}))
    ids = [f.id for f in findings]
    assert "PPD000" not in ids and "PPD094" in ids and "10.0.2.10:8080" in findings[ids.index("PPD094")].explanation
    assert exit_code(findings) == INCONCLUSIVE
    # with the pods read and no replaced pod still routed, draining is only old flows finishing
    timed = diagnose(_healthy_world({"tg.health": health}, kube={"gateway.pods": PODS[:1], "gateway.replaced_routed_s": 0.0}))
    assert [f.id for f in timed] == ["PPD000"]
