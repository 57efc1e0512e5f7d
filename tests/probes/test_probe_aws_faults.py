"""The aws (and health) probe against real moto through boto3, with AWS API faults injected by a proxy.

A refused or throttled call costs only the facts it would have established: the aws probe keeps the
rest and lists the gap (IAM action, facts, hint) under evidence ``unavailable``; only a load balancer
it cannot read (denied, NotFound) ends as an ``error`` observation. Never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import pytest

from ppdoctor.config import AwsTarget, NlbTarget, TargetConfig, Timeouts
from ppdoctor.lab import addresses
from ppdoctor.lab.aws import MotoServer, seed_aws
from ppdoctor.lab.scenario import (
    ADMIN_PORT,
    STATUS_PORT,
    TLS_PORT,
    TRAFFIC_PORT,
    load_scenario,
)
from ppdoctor.probes import ProbeContext, run_probe, run_probes
from ppdoctor.probes.model import Status

from . import peers
from .awsfault import FaultProxy

DENIED = ("User: arn:aws:iam::123456789012:user/oncall is not authorized to perform: "
          "elasticloadbalancing:DescribeTargetGroupAttributes")


@pytest.fixture(scope="module")
def world():
    moto = MotoServer()
    moto.start()
    # moto keeps one backend per process: start from an empty one whatever ran before
    req = urllib.request.Request(f"{moto.endpoint_url}/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=10).close()
    port_map = {TRAFFIC_PORT: peers.refused_port(), TLS_PORT: 18443, STATUS_PORT: 15021, ADMIN_PORT: 15000}
    spec = load_scenario("healthy").aws
    aws = seed_aws(moto.endpoint_url, spec, target_ip=addresses.GATEWAY_POD_IP, port_map=port_map)
    proxy = FaultProxy(moto.endpoint_url)
    yield moto, aws, proxy
    proxy.close()
    moto.stop()


@pytest.fixture
def proxy(world):
    _, _, proxy = world
    proxy.reset()
    yield proxy
    proxy.reset()


def config_for(world, **aws_overrides) -> TargetConfig:
    _, aws, proxy = world
    nlb = NlbTarget(arn=aws_overrides.pop("lb_arn", aws.lb_arn), listener_port=aws.listener_port)
    return TargetConfig(
        nlb=nlb,
        aws=AwsTarget(region=aws.region, endpoint_url=proxy.endpoint_url, static_credentials=True, **aws_overrides),
        timeouts=Timeouts(connect=1.0, response=2.0, api=5.0, total=20.0),
    )


def run(name: str, config: TargetConfig):
    async def one():
        ctx = ProbeContext(config)
        try:
            return await run_probe(name, ctx)
        finally:
            ctx.close()

    t0 = time.perf_counter()
    obs = asyncio.run(one())
    return obs, time.perf_counter() - t0


def test_through_the_proxy_the_probe_sees_moto(world, proxy):
    obs, _ = run("aws", config_for(world))
    assert obs.status == Status.OK, obs.as_dict()
    _, aws, _ = world
    assert obs.facts["tg.arn"].value == aws.tg_arn
    assert obs.facts["tg.pp_v2"].value is True
    assert obs.facts["nlb.private_ips"].value == [addresses.NLB_IP]
    assert proxy.calls["DescribeTargetGroupAttributes"] == 1
    assert proxy.calls["DescribeRouteTables"] >= 1


ALL_FACTS = {"lb.arn", "lb.type", "lb.listener_protocols", "nlb.private_ips", "vpc.cidrs", "tg.arn", "tg.target_type",
             "tg.protocol", "tg.pp_v2", "tg.preserve_ip", "tg.deregistration_delay_s", "tg.health", "tg.healthy_count", "tg.lbc_managed",
             "hc.protocol", "hc.port", "hc.path", "hc.interval_s", "hc.healthy_threshold", "routes.private_default"}
TG_LEVEL = ALL_FACTS - {"lb.arn", "lb.type", "lb.listener_protocols", "nlb.private_ips", "vpc.cidrs"}

# One refused call each: what the probe can no longer establish (everything else it must still report).
# hc.path is None for the lab's TCP check, so it is never a fact with a value; it is left out of the comparison.
SINGLE_DENIALS = [
    ("DescribeNetworkInterfaces", "ec2:DescribeNetworkInterfaces", {"nlb.private_ips"}),
    ("DescribeVpcs", "ec2:DescribeVpcs", {"vpc.cidrs"}),
    ("DescribeListeners", "elasticloadbalancing:DescribeListeners", {"lb.listener_protocols"} | TG_LEVEL),
    ("DescribeTargetGroups", "elasticloadbalancing:DescribeTargetGroups",
     {"tg.target_type", "tg.protocol", "hc.protocol", "hc.port", "hc.path", "hc.interval_s", "hc.healthy_threshold"}),
    ("DescribeTags", "elasticloadbalancing:DescribeTags", {"tg.lbc_managed"}),
    ("DescribeTargetGroupAttributes", "elasticloadbalancing:DescribeTargetGroupAttributes",
     {"tg.pp_v2", "tg.preserve_ip", "tg.deregistration_delay_s"}),
    ("DescribeTargetHealth", "elasticloadbalancing:DescribeTargetHealth",
     {"tg.health", "tg.healthy_count", "routes.private_default"}),
    ("DescribeSubnets", "ec2:DescribeSubnets", {"routes.private_default"}),
    ("DescribeRouteTables", "ec2:DescribeRouteTables", {"routes.private_default"}),
]


@pytest.mark.parametrize("api_action,iam_action,lost", SINGLE_DENIALS, ids=[d[0] for d in SINGLE_DENIALS])
def test_one_denied_call_loses_only_its_facts(world, proxy, api_action, iam_action, lost):
    ec2 = iam_action.startswith("ec2:")
    proxy.fail(api_action, 403, "UnauthorizedOperation" if ec2 else "AccessDenied",
               "You are not authorized to perform this operation." if ec2 else DENIED.replace(
                   "DescribeTargetGroupAttributes", api_action))
    obs, _ = run("aws", config_for(world))
    assert obs.status == Status.OK, obs.as_dict()
    assert set(obs.facts) | {"hc.path"} == ALL_FACTS - lost | {"hc.path"}, "every fact another call could read stays"
    gaps = obs.evidence["unavailable"]
    assert [g["action"] for g in gaps] == [iam_action]
    assert gaps[0]["kind"] == "denied"
    assert lost - {"hc.path"} <= set(gaps[0]["facts"]), "the gap names the facts the call would have established"
    assert f"grant the IAM action {iam_action}" in gaps[0]["hint"]
    assert "partially blocked (denied)" in obs.summary and iam_action in obs.summary
    assert proxy.calls[api_action] == 1, "a denial is not retried"
    assert iam_action in json.dumps(obs.as_dict()), "the report/JSON output carries the gap"


def test_tg_attributes_and_health_denied_keep_the_rest(world, proxy):
    """The issue's example: the load balancer, listeners, health-check config, tags and VPC stay readable."""
    _, aws, _ = world
    proxy.deny("DescribeTargetGroupAttributes", "elasticloadbalancing:DescribeTargetGroupAttributes")
    proxy.deny("DescribeTargetHealth", "elasticloadbalancing:DescribeTargetHealth")
    obs, _ = run("aws", config_for(world))
    assert obs.status == Status.OK, obs.as_dict()
    assert obs.facts["tg.arn"].value == aws.tg_arn
    assert obs.facts["lb.arn"].value == aws.lb_arn
    assert obs.facts["hc.protocol"].value == "TCP" and obs.facts["hc.port"].value == "traffic-port"
    assert obs.facts["nlb.private_ips"].value == [addresses.NLB_IP]
    for gone in ("tg.pp_v2", "tg.preserve_ip", "tg.health", "routes.private_default"):
        assert gone not in obs.facts, gone
    assert sorted(g["action"] for g in obs.evidence["unavailable"]) == [
        "elasticloadbalancing:DescribeTargetGroupAttributes", "elasticloadbalancing:DescribeTargetHealth"]
    assert "user/oncall" in obs.evidence["unavailable"][0]["message"], "AWS's own message is kept"


def test_load_balancer_denied_reads_nothing(world, proxy):
    proxy.deny("DescribeLoadBalancers", "elasticloadbalancing:DescribeLoadBalancers")
    obs, _ = run("aws", config_for(world))
    assert obs.status == Status.ERROR, obs.as_dict()
    assert obs.error["kind"] == "aws"
    assert obs.error["hint"].startswith("grant the IAM action elasticloadbalancing:DescribeLoadBalancers "
                                        "to the identity ppdoctor runs as")
    assert "ppdoctor permissions --aws" in obs.error["hint"], "the whole policy is one command away"
    assert obs.facts == {}


def test_health_probe_reports_the_same_denial(world, proxy):
    proxy.deny("DescribeTargetHealth", "elasticloadbalancing:DescribeTargetHealth")
    obs, _ = run("health", config_for(world))
    assert obs.status == Status.ERROR, obs.as_dict()
    assert "elasticloadbalancing:DescribeTargetHealth" in obs.summary


def test_throttled_then_adaptive_retries_succeed(world, proxy):
    proxy.throttle("DescribeTargetHealth", times=2)
    obs, wall = run("aws", config_for(world))
    assert obs.status == Status.OK, obs.as_dict()
    assert proxy.calls["DescribeTargetHealth"] == 3, proxy.calls
    assert obs.facts["tg.health"].value[0]["id"] == addresses.GATEWAY_POD_IP
    assert wall < 15


def test_throttled_forever_is_classified(world, proxy, monkeypatch):
    # botocore's jittered backoff (up to 1+2+4+8 s) is botocore's business; keep the test short
    from botocore.retries.standard import ExponentialBackoff

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.01)
    proxy.throttle("DescribeTargetGroups")
    obs, wall = run("aws", config_for(world))
    assert obs.status == Status.OK, obs.as_dict()
    gap, = obs.evidence["unavailable"]
    assert gap["kind"] == "throttled"
    assert gap["message"].startswith("AWS throttled elasticloadbalancing:DescribeTargetGroups even after adaptive retries")
    assert "(Throttling)" in gap["message"]
    assert "wait a minute" in gap["hint"]
    assert "partially blocked (throttled)" in obs.summary
    assert "tg.pp_v2" in obs.facts and "hc.protocol" not in obs.facts
    assert proxy.calls["DescribeTargetGroups"] == 5, "adaptive mode: the first attempt and max_attempts=4 retries"
    assert wall < 15  # the adaptive rate limiter spaces the retries out; the probe deadline (20 s) is not reached


def test_health_probe_errors_when_the_check_config_is_throttled(world, proxy, monkeypatch):
    """Probes that build on the aws data fail as before when they need an unread part."""
    from botocore.retries.standard import ExponentialBackoff

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.01)
    proxy.fail("DescribeTargetGroups", 503, "RequestLimitExceeded", "Request limit exceeded.")  # the EC2-style code
    obs, _ = run("health", config_for(world))
    assert obs.status == Status.ERROR, obs.as_dict()
    assert "AWS throttled elasticloadbalancing:DescribeTargetGroups" in obs.summary


def test_target_group_not_found(world, proxy):
    _, aws, _ = world
    missing = aws.tg_arn.rsplit("/", 2)[0] + "/k8s-gone/0000000000000000"
    obs, _ = run("aws", config_for(world, target_group_arns=(missing,)))
    assert obs.status == Status.ERROR, obs.as_dict()
    assert obs.summary.startswith("elasticloadbalancing:DescribeTargetGroups failed: TargetGroupNotFound: ")
    assert "check the ARN/name in the target config" in obs.summary


def test_load_balancer_not_found(world, proxy):
    _, aws, _ = world
    missing = aws.lb_arn.rsplit("/", 1)[0] + "/ffffffffffffffff"
    obs, _ = run("aws", config_for(world, lb_arn=missing))
    assert obs.status == Status.ERROR, obs.as_dict()
    assert "LoadBalancerNotFound" in obs.summary
    assert "check the ARN/name" in obs.summary


def test_no_nlb_named_is_a_config_error(world, proxy):
    obs, _ = run("aws", config_for(world, lb_arn=""))
    assert obs.status == Status.ERROR
    assert obs.error["kind"] == "config"
    assert "set nlb.arn or nlb.name" in obs.summary


def test_via_nlb_classification_degrades_when_ec2_is_denied(world, proxy, hostile):
    """The echo answered, but the NLB's addresses are unknown: the probe says so instead of failing."""
    echo = json.dumps({"headers": {"X-Envoy-External-Address": ["127.1.1.10"]}, "origin": "127.1.1.10"}).encode()
    port = hostile.serve(peers.json_reply(echo))
    proxy.deny("DescribeNetworkInterfaces", "ec2:DescribeNetworkInterfaces")
    cfg = config_for(world)
    from dataclasses import replace

    cfg = replace(cfg, nlb=replace(cfg.nlb, address=f"127.0.0.1:{port}"))
    observations = asyncio.run(run_probes(cfg, ["http-via-nlb"]))
    obs = observations[0]
    assert obs.facts["via_nlb.client_ip"].value == "127.1.1.10"
    # without the ENI addresses and VPC CIDRs the NLB's own IP cannot be told from a client's: not "external"
    assert obs.facts["via_nlb.client_ip_class"].value == "unknown"
    assert obs.status == Status.FAIL
    assert "ec2:DescribeNetworkInterfaces" in obs.evidence["classification_note"]
    proxy.reset()
    obs = asyncio.run(run_probes(cfg, ["http-via-nlb"]))[0]
    assert obs.facts["via_nlb.client_ip_class"].value == "nlb"
    assert "classification_note" not in obs.evidence
