"""The aws probe: load balancer, listeners, target groups, attributes, health, tags, and the targets' routes.

Read-only ELBv2/EC2 calls through boto3 with adaptive retries. An attribute AWS does not
return takes its documented default ("Target groups for your Network Load Balancers":
``preserve_client_ip.enabled`` is false for IP targets with TCP/TLS, true for instance
targets and for UDP/TCP_UDP; ``proxy_protocol_v2.enabled`` is false) and the fact says so.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ..constants import ATTR_PRESERVE_CLIENT_IP, ATTR_PROXY_PROTOCOL_V2, LBC_TAGS
from ..errors import AwsError, ConfigError
from .context import ProbeContext, run_blocking
from .model import Observation, Status



def preserve_client_ip_default(target_type: str, protocol: str) -> bool:
    """AWS default for preserve_client_ip.enabled (ELB docs, "Client IP preservation")."""
    if target_type == "instance":
        return True
    return protocol in ("UDP", "TCP_UDP")


def _load_balancer(ctx: ProbeContext) -> dict[str, Any]:
    nlb = ctx.config.nlb
    if nlb.arn:
        found = ctx.aws_call("elbv2", "describe_load_balancers", LoadBalancerArns=[nlb.arn])
    elif nlb.name:
        found = ctx.aws_call("elbv2", "describe_load_balancers", Names=[nlb.name])
    else:
        raise ConfigError("no NLB named in the target config", hint="set nlb.arn or nlb.name")
    lbs = found.get("LoadBalancers", [])
    if not lbs:
        raise AwsError(f"no load balancer {nlb.arn or nlb.name}", hint="check nlb.arn / nlb.name and the region")
    return lbs[0]


def describe_network(ctx: ProbeContext) -> dict[str, Any]:
    """The NLB's private ENI addresses and its VPC's CIDRs (to tell 'the NLB' from 'a client')."""
    lb = _load_balancer(ctx)
    lb_id = lb["LoadBalancerArn"].split("/")[-1]
    description = f"ELB net/{lb['LoadBalancerName']}/{lb_id}"
    enis = ctx.aws_call("ec2", "describe_network_interfaces",
                        Filters=[{"Name": "description", "Values": [description]}]).get("NetworkInterfaces", [])
    nlb_ips = sorted({a["PrivateIpAddress"] for e in enis for a in e.get("PrivateIpAddresses", [])} |
                     {e["PrivateIpAddress"] for e in enis if e.get("PrivateIpAddress")})
    vpcs = ctx.aws_call("ec2", "describe_vpcs", VpcIds=[lb["VpcId"]]).get("Vpcs", [])
    cidrs = sorted({a["CidrBlock"] for v in vpcs for a in v.get("CidrBlockAssociationSet", []) if a.get("CidrBlock")} |
                   {v["CidrBlock"] for v in vpcs if v.get("CidrBlock")})
    return {"nlb_ips": nlb_ips, "vpc_cidrs": cidrs, "eni_description": description, "vpc_id": lb["VpcId"], "lb": lb}


def _route_default(ctx: ProbeContext, vpc_id: str, target_ip: str) -> dict[str, Any]:
    subnets = ctx.aws_call("ec2", "describe_subnets", Filters=[{"Name": "vpc-id", "Values": [vpc_id]}]).get("Subnets", [])
    addr = ipaddress.ip_address(target_ip)
    subnet = next((s for s in subnets if addr in ipaddress.ip_network(s["CidrBlock"])), None)
    if subnet is None:
        return {"subnet": None, "default_route": None}
    tables = ctx.aws_call("ec2", "describe_route_tables",
                          Filters=[{"Name": "association.subnet-id", "Values": [subnet["SubnetId"]]}]).get("RouteTables", [])
    if not tables:
        tables = ctx.aws_call("ec2", "describe_route_tables",
                              Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                       {"Name": "association.main", "Values": ["true"]}]).get("RouteTables", [])
    for table in tables:
        for route in table.get("Routes", []):
            if route.get("DestinationCidrBlock") == "0.0.0.0/0":
                target = (route.get("NatGatewayId") or route.get("GatewayId") or route.get("TransitGatewayId")
                          or route.get("NetworkInterfaceId") or route.get("InstanceId") or "")
                kind = ("nat" if target.startswith("nat-") else "igw" if target.startswith("igw-")
                        else "tgw" if target.startswith("tgw-") else "other")
                return {"subnet": subnet["SubnetId"], "route_table": table["RouteTableId"],
                        "default_route": kind, "default_route_target": target}
    return {"subnet": subnet["SubnetId"], "default_route": "none"}


def collect(ctx: ProbeContext) -> dict[str, Any]:
    net = describe_network(ctx)
    lb = net.pop("lb")
    listeners = ctx.aws_call("elbv2", "describe_listeners", LoadBalancerArn=lb["LoadBalancerArn"]).get("Listeners", [])
    tg_arns = list(ctx.config.aws.target_group_arns)
    if not tg_arns:
        for listener in listeners:
            if ctx.config.nlb.listener_port and listener.get("Port") != ctx.config.nlb.listener_port:
                continue
            for action in listener.get("DefaultActions", []):
                if action.get("TargetGroupArn"):
                    tg_arns.append(action["TargetGroupArn"])
    if not tg_arns:
        raise AwsError(f"no target group behind listener port {ctx.config.nlb.listener_port}",
                       hint="set aws.target_group_arns in the target config")
    groups = ctx.aws_call("elbv2", "describe_target_groups", TargetGroupArns=tg_arns).get("TargetGroups", [])
    tags = {d["ResourceArn"]: {t["Key"]: t["Value"] for t in d.get("Tags", [])}
            for d in ctx.aws_call("elbv2", "describe_tags", ResourceArns=tg_arns).get("TagDescriptions", [])}
    out_groups = []
    for tg in groups:
        arn = tg["TargetGroupArn"]
        attrs = {a["Key"]: a["Value"] for a in
                 ctx.aws_call("elbv2", "describe_target_group_attributes", TargetGroupArn=arn).get("Attributes", [])}
        health = ctx.aws_call("elbv2", "describe_target_health", TargetGroupArn=arn).get("TargetHealthDescriptions", [])
        routes = None
        ip_targets = [h["Target"]["Id"] for h in health if not h["Target"]["Id"].startswith("i-")]
        if ip_targets:
            routes = _route_default(ctx, net["vpc_id"], ip_targets[0])
        out_groups.append({"tg": tg, "attributes": attrs, "health": health, "tags": tags.get(arn, {}), "routes": routes})
    return {"network": net, "load_balancer": lb, "listeners": listeners, "target_groups": out_groups}


def _trim(value: Any) -> Any:
    """API responses as evidence: datetimes to text, ResponseMetadata dropped."""
    if isinstance(value, dict):
        return {k: _trim(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [_trim(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


async def probe_aws(ctx: ProbeContext) -> Observation:
    obs = Observation("aws")
    data = await ctx.cached("aws", lambda: run_blocking(collect, ctx))
    net, lb = data["network"], data["load_balancer"]
    obs.evidence["load_balancer"] = _trim({k: lb.get(k) for k in ("LoadBalancerArn", "LoadBalancerName", "DNSName", "Scheme", "Type", "VpcId")})
    obs.evidence["listeners"] = _trim([{k: l.get(k) for k in ("ListenerArn", "Port", "Protocol", "DefaultActions")} for l in data["listeners"]])
    obs.fact("lb.arn", lb["LoadBalancerArn"])
    obs.fact("lb.listener_protocols", [l.get("Protocol") for l in data["listeners"]])
    obs.fact("lb.type", lb.get("Type"))
    obs.fact("nlb.private_ips", net["nlb_ips"])
    obs.fact("vpc.cidrs", net["vpc_cidrs"])
    groups_ev = []
    problems = []
    for i, group in enumerate(data["target_groups"]):
        tg, attrs = group["tg"], group["attributes"]
        target_type, protocol = tg.get("TargetType", "instance"), tg.get("Protocol", "TCP")
        suffix = "" if i == 0 else f"[{i}]"
        pp_raw = attrs.get(ATTR_PROXY_PROTOCOL_V2)
        obs.fact(f"tg{suffix}.arn", tg["TargetGroupArn"])
        obs.fact(f"tg{suffix}.target_type", target_type)
        obs.fact(f"tg{suffix}.protocol", protocol)
        obs.fact(f"tg{suffix}.pp_v2", pp_raw == "true", "" if pp_raw is not None else "AWS default: attribute absent")
        preserve_raw = attrs.get(ATTR_PRESERVE_CLIENT_IP)
        if preserve_raw is None:
            obs.fact(f"tg{suffix}.preserve_ip", preserve_client_ip_default(target_type, protocol),
                     f"AWS default for {target_type} targets over {protocol}: attribute absent")
        else:
            obs.fact(f"tg{suffix}.preserve_ip", preserve_raw == "true")
        obs.fact(f"hc{suffix}.protocol", tg.get("HealthCheckProtocol"))
        obs.fact(f"hc{suffix}.port", tg.get("HealthCheckPort"))
        obs.fact(f"hc{suffix}.path", tg.get("HealthCheckPath") if tg.get("HealthCheckProtocol") != "TCP" else None)
        if tg.get("HealthCheckIntervalSeconds") is not None:
            obs.fact(f"hc{suffix}.interval_s", int(tg["HealthCheckIntervalSeconds"]))
        if tg.get("HealthyThresholdCount") is not None:
            obs.fact(f"hc{suffix}.healthy_threshold", int(tg["HealthyThresholdCount"]))
        health = [{"id": h["Target"]["Id"], "port": h["Target"].get("Port"),
                   "state": h["TargetHealth"].get("State"), "reason": h["TargetHealth"].get("Reason"),
                   "description": h["TargetHealth"].get("Description")} for h in group["health"]]
        obs.fact(f"tg{suffix}.health", health)
        obs.fact(f"tg{suffix}.healthy_count", sum(1 for h in health if h["state"] == "healthy"))
        lbc = all(k in group["tags"] for k in LBC_TAGS[:1]) and any(k in group["tags"] for k in LBC_TAGS[1:])
        obs.fact(f"tg{suffix}.lbc_managed", lbc, "tags " + ", ".join(k for k in LBC_TAGS if k in group["tags"]) if lbc else "")
        if group["routes"] is not None:
            obs.fact(f"routes{suffix}.private_default", group["routes"].get("default_route"),
                     group["routes"].get("default_route_target", ""))
        unhealthy = [h for h in health if h["state"] not in ("healthy", "initial")]
        if unhealthy:
            problems.append(f"{len(unhealthy)} unhealthy target(s): " + ", ".join(f"{h['id']} {h['reason']}" for h in unhealthy))
        groups_ev.append(_trim({"target_group": {k: tg.get(k) for k in (
            "TargetGroupArn", "TargetGroupName", "Protocol", "Port", "TargetType", "HealthCheckProtocol",
            "HealthCheckPort", "HealthCheckPath", "HealthCheckIntervalSeconds", "HealthyThresholdCount",
            "UnhealthyThresholdCount")}, "attributes": attrs, "health": health, "tags": group["tags"],
            "routes": group["routes"]}))
    obs.evidence["target_groups"] = groups_ev
    first = data["target_groups"][0]
    pp = obs.facts["tg.pp_v2"].value
    preserve = obs.facts["tg.preserve_ip"].value
    obs.summary = (f"target group {first['tg'].get('TargetGroupName')}: {first['tg'].get('TargetType')} targets, "
                   f"proxy_protocol_v2={'on' if pp else 'off'}, preserve_client_ip={'on' if preserve else 'off'}, "
                   f"health check {first['tg'].get('HealthCheckProtocol')}:{first['tg'].get('HealthCheckPort')}")
    if problems:
        obs.summary += "; " + "; ".join(problems)
        obs.status = Status.FAIL
    return obs
