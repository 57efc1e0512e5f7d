"""The privatelink probe: is the NLB behind a VPC endpoint service (PrivateLink)?

Read-only EC2 calls. Over PrivateLink, client IP preservation has no effect and only the
PROXY v2 header's TLV 0xEA (VPC endpoint id) tells consumers apart (AWS "Target groups for
your Network Load Balancers").
"""

from __future__ import annotations

from typing import Any

from .context import ProbeContext, run_blocking
from .model import Observation


def _lb_key(arn: str) -> tuple[str, ...]:
    # name/id: moto and AWS agree on these even where the ARN's type segment differs.
    return tuple(arn.split("/")[-2:])


def collect(ctx: ProbeContext, lb_arn: str) -> dict[str, Any]:
    configs = ctx.aws_call("ec2", "describe_vpc_endpoint_service_configurations").get("ServiceConfigurations", [])
    mine = [c for c in configs if any(_lb_key(a) == _lb_key(lb_arn) for a in c.get("NetworkLoadBalancerArns", []))]
    # Endpoint connections (DescribeVpcEndpointConnections) are not read: moto answers it with a
    # server error, and the service alone decides the finding.
    return {"services": [c["ServiceId"] for c in mine],
            "service_names": [c.get("ServiceName") for c in mine]}


async def probe_privatelink(ctx: ProbeContext) -> Observation:
    from .aws import collect as aws_collect

    obs = Observation("privatelink")
    aws_data = await ctx.cached("aws", lambda: run_blocking(aws_collect, ctx))
    data = await run_blocking(collect, ctx, aws_data["load_balancer"]["LoadBalancerArn"])
    obs.fact("privatelink.services", data["services"])
    obs.evidence["endpoint_services"] = data
    obs.summary = (f"behind VPC endpoint service(s) {', '.join(data['services'])}" if data["services"]
                   else "no VPC endpoint service in front of the NLB")
    return obs
