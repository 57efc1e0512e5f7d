"""PPD027 from hand-built facts: fires on the dropped proxy config, ranks first over PPD003; near misses stay quiet."""

from __future__ import annotations

import pytest

from ppdoctor.diagnosis.model import FactView
from ppdoctor.diagnosis.rules_disc import ppd027
from ppdoctor.probes.gatewayapi import dropped_annotations, lost_proxy_protocol

PP = '{"gatewayTopology":{"proxyProtocol":{}}}'
TRAPPED = {"gwapi.gateway": "istio-system/public-gw", "gwapi.infrastructure_annotations": True,
           "gwapi.dropped_annotations": ["proxy.istio.io/config"], "gwapi.proxy_config_dropped": True,
           "gwapi.proxy_protocol_dropped": True, "gwapi.trapped_gateways": ["istio-system/public-gw"]}


@pytest.mark.parametrize("facts, severity", [
    ({**TRAPPED, "tg.pp_v2": True, "gateway.pp_live": False}, "error"),
    ({**TRAPPED}, "error"),  # AWS denied: decided from the Kubernetes side alone
    ({**TRAPPED, "tg.pp_v2": False}, "warning"),  # nothing sends PROXY yet: lost config, no outage
    ({**TRAPPED, "gwapi.proxy_protocol_dropped": False}, "warning"),  # the dropped config is about something else
    ({"gwapi.gateway": "", "gwapi.trapped_gateways": ["team-a/edge"]}, "warning"),  # another Gateway in the cluster
])
def test_fires(facts, severity):
    finding = ppd027(FactView.from_values(facts))
    assert finding is not None and finding.id == "PPD027" and finding.severity == severity


@pytest.mark.parametrize("facts", [
    {},  # no gatewayapi facts (probe not run or denied)
    {"gwapi.gateway": "", "gwapi.trapped_gateways": []},  # a Helm gateway, no trapped Gateway
    {**TRAPPED, "gwapi.proxy_config_dropped": False, "gwapi.dropped_annotations": ["example.com/team"],
     "gwapi.trapped_gateways": []},
])
def test_quiet(facts):
    assert ppd027(FactView.from_values(facts)) is None


def test_supersedes_ppd003_and_ranks_first():
    from ppdoctor.diagnosis import diagnose
    from ppdoctor.probes.model import Observation

    obs = []
    for probe, values in (("gatewayapi", TRAPPED), ("aws", {"tg.pp_v2": True}), ("envoy", {"gateway.pp_live": False}),
                          ("kube", {"gateway.pp_pod_template": False})):
        o = Observation(probe)
        for k, v in values.items():
            o.fact(k, v)
        obs.append(o)
    findings = diagnose(obs)
    assert findings[0].id == "PPD027"
    ppd003 = [f for f in findings if f.id == "PPD003"]
    assert not ppd003 or ppd003[0].superseded_by == "PPD027"


def _gw(annotations, infra):
    gw = {"metadata": {"name": "g", "namespace": "n", "annotations": annotations}, "spec": {"gatewayClassName": "istio"}}
    if infra is not None:
        gw["spec"]["infrastructure"] = {"annotations": infra}
    return gw


@pytest.mark.parametrize("annotations, infra, dropped, pp", [
    ({"proxy.istio.io/config": PP}, {"a": "b"}, ["proxy.istio.io/config"], True),
    ({"proxy.istio.io/config": PP}, None, [], False),  # infrastructure unset: annotations are copied
    ({"proxy.istio.io/config": PP}, {"proxy.istio.io/config": PP}, [], False),  # in both places: kept
    ({"proxy.istio.io/config": '{"concurrency":2}'}, {}, ["proxy.istio.io/config"], False),  # set but empty still wins
    ({"gateway.networking.k8s.io/x": "1", "kubectl.kubernetes.io/last-applied-configuration": "{}"}, {"a": "b"}, [], False),
])
def test_dropped_annotations(annotations, infra, dropped, pp):
    gw = _gw(annotations, infra)
    assert dropped_annotations(gw) == dropped
    assert lost_proxy_protocol(gw) is pp
