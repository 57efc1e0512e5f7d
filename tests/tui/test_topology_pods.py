"""The topology's gateway hop counts the serving pods; Terminating pods of a rollout are named apart (PPD094)."""

from __future__ import annotations

from ppdoctor.config import TargetConfig
from ppdoctor.diagnosis.engine import FactView
from ppdoctor.probes.model import Observation
from ppdoctor.widgets.topology import describe_hops


def _pods_line(pods):
    kube = Observation("kube")
    kube.fact("gateway.pods", pods)
    hops, _ = describe_hops(TargetConfig(), FactView([kube]))
    gateway = next(h for h in hops if any(label == "pods ready" for label, _, _ in h.lines))
    return next(value for label, value, _ in gateway.lines if label == "pods ready")


def test_terminating_pods_are_not_counted_as_not_ready():
    new = {"name": "gw-new", "ready": True, "ip": "10.0.2.11", "started": "2026-12-02T12:00:00Z"}
    old = {"name": "gw-old", "ready": False, "ip": "10.0.2.10", "started": "2026-12-01T12:00:00Z",
           "deleted": "2026-12-02T12:00:05Z"}
    assert _pods_line([new, old]) == "1/1 (+1 terminating)"
    assert _pods_line([new]) == "1/1"
    assert _pods_line([{**new, "ready": False}]) == "0/1"
