"""`diagnose` on the tg-pp-on-gateway-off lab with only two ELBv2 calls refused (issue 13, "Partial access").

The AWS fault proxy (tests/probes/awsfault.py) sits between boto3 and the lab's moto and answers
DescribeTargetGroupAttributes and DescribeTargetHealth with AWS's AccessDenied document; everything else
is read. The aws probe keeps the load balancer, listener and health-check facts, and the diagnosis reaches
PPD003 from the network evidence with a lower confidence, naming the permission that would confirm it.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from ppdoctor.diagnosis.engine import diagnose
from ppdoctor.probes import ProbeContext, run_probes
from ppdoctor.probes.model import Status

from ..probes.awsfault import FaultProxy
from .coverage import PROBE_NAMES, TIMEOUTS

SCENARIO = "tg-pp-on-gateway-off"
DENIED = ("elasticloadbalancing:DescribeTargetGroupAttributes", "elasticloadbalancing:DescribeTargetHealth")


def _diagnose(config):
    ctx = ProbeContext(config)
    try:
        observations = asyncio.run(run_probes(config, PROBE_NAMES, ctx=ctx))
    finally:
        ctx.close()
    return {o.probe: o for o in observations}, diagnose(observations)


@pytest.mark.lab
def test_tg_attributes_and_health_denied_still_ends_in_ppd003(lab_pool):
    lab = lab_pool.get(SCENARIO)
    lab.wait_health("healthy", timeout=20.0)
    config = replace(lab.config, timeouts=TIMEOUTS)
    _, full = _diagnose(config)
    assert full[0].id == "PPD003", [f.id for f in full]

    proxy = FaultProxy(config.aws.endpoint_url)
    try:
        for action in DENIED:
            proxy.deny(action.split(":")[1], action)
        observations, findings = _diagnose(replace(config, aws=replace(config.aws, endpoint_url=proxy.endpoint_url)))
    finally:
        proxy.close()

    aws = observations["aws"]
    assert aws.status != Status.ERROR, aws.as_dict()
    assert {"lb.arn", "tg.arn", "hc.protocol", "hc.port", "lb.listener_protocols"} <= set(aws.facts)
    assert "tg.pp_v2" not in aws.facts and "tg.health" not in aws.facts
    assert sorted(g["action"] for g in aws.evidence["unavailable"]) == sorted(DENIED)

    top = findings[0]
    assert top.id == "PPD003", [(f.id, f.confidence) for f in findings]
    assert top.confidence < full[0].confidence
    assert any("elasticloadbalancing:DescribeTargetGroupAttributes would confirm" in line for line in top.confirm), top.confirm
    blocked = next(f for f in findings if f.id == "PPD091")
    assert "aws" in blocked.explains
    assert any("grant the IAM action elasticloadbalancing:DescribeTargetHealth" in h for h in blocked.confirm), blocked.confirm
