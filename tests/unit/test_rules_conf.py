"""Table-driven tests of the configuration-trap rules (diagnosis/rules_conf.py): facts that fire, near misses that must not."""

from __future__ import annotations

import pytest

from ppdoctor.diagnosis import diagnose
from ppdoctor.diagnosis.engine import FactView
from ppdoctor.diagnosis import rules_conf
from ppdoctor.probes.model import Observation


def view(**facts) -> FactView:
    obs = Observation("hand-built")
    for name, value in facts.items():
        obs.fact(name.replace("__", "."), value)
    return FactView([obs])


def facts(**kw):
    return {k.replace(".", "__"): v for k, v in kw.items()}


CDN_TOO_HIGH = {"gateway.xff_num_trusted_hops": 2, "via_nlb.xff": "203.0.113.50,127.0.0.5",
                "via_nlb.external_address": "127.0.0.5", "via_nlb.client_ip_class": "proxy-in-front",
                "via_nlb.hops_in_front": 1, "tg.pp_v2": True}

PPD023_CASES = [
    # (name, facts, fires, wanted N in the explanation)
    ("one CDN, N=2", CDN_TOO_HIGH, True, 1),
    ("one CDN, N=0", {**CDN_TOO_HIGH, "gateway.xff_num_trusted_hops": 0}, True, 1),
    ("two proxies, N=3", {**CDN_TOO_HIGH, "gateway.xff_num_trusted_hops": 3,
                          "via_nlb.xff": "203.0.113.50, 198.51.100.9,127.0.0.5"}, True, 2),
    ("N from the kube probe only", {k: v for k, v in CDN_TOO_HIGH.items() if k != "gateway.xff_num_trusted_hops"}
     | {"gateway.num_trusted_proxies": 2}, True, 1),
    ("configured hops, no echo", {"gateway.xff_num_trusted_hops": 2, "via_nlb.hops_in_front": 1}, True, 1),
    # near misses
    ("one CDN, N=1 (right)", {**CDN_TOO_HIGH, "gateway.xff_num_trusted_hops": 1,
                              "via_nlb.external_address": "203.0.113.50", "via_nlb.client_ip_class": "external"}, False, None),
    ("no proxy in front (PPD010's case)", {"gateway.xff_num_trusted_hops": 1, "via_nlb.xff": "127.0.0.5",
                                           "via_nlb.client_ip_class": "prober", "via_nlb.hops_in_front": 0}, False, None),
    ("trusted hops unknown", {k: v for k, v in CDN_TOO_HIGH.items() if k != "gateway.xff_num_trusted_hops"}, False, None),
    ("client seen correctly although N differs", {**CDN_TOO_HIGH, "via_nlb.client_ip_class": "external"}, False, None),
]


@pytest.mark.parametrize("name,given,fires,wanted", PPD023_CASES, ids=[c[0] for c in PPD023_CASES])
def test_ppd023(name, given, fires, wanted):
    finding = rules_conf.ppd023(view(**facts(**given)))
    assert (finding is not None) == fires, finding
    if fires:
        assert finding.id == "PPD023"
        assert f"Set numTrustedProxies to {wanted}." in finding.explanation
        assert finding.fixes == ["FIX-TRUSTED-HOPS-CDN"]


def test_ppd023_supersedes_the_forgery_finding():
    obs = Observation("hand-built")
    for k, v in {**CDN_TOO_HIGH, "xff.spoofable": True}.items():
        obs.fact(k, v)
    findings = diagnose([obs])
    assert findings[0].id == "PPD023"
    assert {f.id: f.superseded_by for f in findings}.get("PPD010") == "PPD023"
