"""The aws probe: load balancer, listeners, target groups, attributes, health, tags, and the targets' routes.

Read-only ELBv2/EC2 calls through boto3 with adaptive retries. An attribute AWS does not
return takes its documented default ("Target groups for your Network Load Balancers":
``preserve_client_ip.enabled`` is false for IP targets with TCP/TLS, true for instance
targets and for UDP/TCP_UDP; ``proxy_protocol_v2.enabled`` is false) and the fact says so.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from .. import drain
from ..constants import (
    ATTR_DEREGISTRATION_DELAY,
    ATTR_PRESERVE_CLIENT_IP,
    ATTR_PROXY_PROTOCOL_V2,
    LBC_TAGS,
    NLB_DEFAULT_DEREGISTRATION_DELAY_S,
)
from ..errors import AwsError, ConfigError
from .context import _DENIED, _THROTTLED, ProbeContext, run_blocking
from .permissions import AWS_ACTIONS
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


class Unread:
    """A part of the AWS state a call could not read: any use of it raises that call's error.

    ``collect`` keeps what it could read; the probes that build on it (health, idle, ipv6, the
    fix planner, …) fail exactly as before when they touch a part that is unread, while the aws
    probe reports every fact it has and names what is missing.
    """

    def __init__(self, error: AwsError) -> None:
        self.error = error

    def _raise(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error

    __getitem__ = __iter__ = __len__ = __bool__ = __contains__ = get = items = keys = values = _raise

    def __repr__(self) -> str:
        return f"Unread({self.error.message!r})"


# What a target group's calls establish (facts.py declares them); the first group unsuffixed, then tg[1]., …
TG_FACTS = ("tg.arn", "tg.target_type", "tg.protocol", "tg.pp_v2", "tg.preserve_ip", "tg.deregistration_delay_s", "tg.health", "tg.healthy_count",
            "tg.lbc_managed", "hc.protocol", "hc.port", "hc.path", "hc.interval_s", "hc.healthy_threshold",
            "routes.private_default")


def _indexed(name: str, i: int) -> str:
    head, _, tail = name.partition(".")
    return name if i == 0 else f"{head}[{i}].{tail}"


def _gap_kind(err: AwsError) -> str:
    code = getattr(err, "code", "")
    if code in _DENIED:
        return "denied"
    if code in _THROTTLED:
        return "throttled"
    return "failed"


def collect(ctx: ProbeContext) -> dict[str, Any]:
    """Every describe call in its own guarded step: what one refused call cannot read becomes ``Unread``.

    ``gaps`` lists the refused/throttled/failed steps with the IAM action and the facts each would
    have established. Only the load balancer itself is required: without it nothing else can be found.
    """
    gaps: list[dict[str, Any]] = []

    def step(operation: str, facts: list[str], fn: Any) -> Any:
        try:
            return fn()
        except AwsError as err:
            if "NotFound" in getattr(err, "code", ""):
                raise  # the config names something that does not exist: bad input, not partial access
            operation = getattr(err, "operation", operation)  # subnets vs route tables in one step
            gaps.append({"operation": operation, "action": AWS_ACTIONS.get(operation, operation), "kind": _gap_kind(err),
                         "facts": facts, "message": err.message, "hint": err.hint or ""})
            return Unread(err)

    lb = _load_balancer(ctx)
    lb_id = lb["LoadBalancerArn"].split("/")[-1]
    description = f"ELB net/{lb['LoadBalancerName']}/{lb_id}"
    enis = step("describe_network_interfaces", ["nlb.private_ips"], lambda: ctx.aws_call(
        "ec2", "describe_network_interfaces",
        Filters=[{"Name": "description", "Values": [description]}]).get("NetworkInterfaces", []))
    nlb_ips = enis if isinstance(enis, Unread) else sorted(
        {a["PrivateIpAddress"] for e in enis for a in e.get("PrivateIpAddresses", [])} |
        {e["PrivateIpAddress"] for e in enis if e.get("PrivateIpAddress")})
    vpcs = step("describe_vpcs", ["vpc.cidrs"], lambda: ctx.aws_call(
        "ec2", "describe_vpcs", VpcIds=[lb["VpcId"]]).get("Vpcs", []))
    cidrs = vpcs if isinstance(vpcs, Unread) else sorted(
        {a["CidrBlock"] for v in vpcs for a in v.get("CidrBlockAssociationSet", []) if a.get("CidrBlock")} |
        {v["CidrBlock"] for v in vpcs if v.get("CidrBlock")})
    net = {"nlb_ips": nlb_ips, "vpc_cidrs": cidrs, "eni_description": description, "vpc_id": lb["VpcId"]}

    tg_arns = list(ctx.config.aws.target_group_arns)
    listeners = step("describe_listeners", ["lb.listener_protocols"] + ([] if tg_arns else list(TG_FACTS)),
                     lambda: ctx.aws_call("elbv2", "describe_listeners",
                                          LoadBalancerArn=lb["LoadBalancerArn"]).get("Listeners", []))
    out: dict[str, Any] = {"network": net, "load_balancer": lb, "listeners": listeners, "gaps": gaps}
    if not tg_arns and isinstance(listeners, Unread):
        out["target_groups"] = listeners  # which target group is behind the listener is unknown
        return out
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

    def per_tg(base: list[str]) -> list[str]:
        return [_indexed(name, i) for i in range(len(tg_arns)) for name in base]

    groups = step("describe_target_groups",
                  per_tg(["tg.target_type", "tg.protocol", "hc.protocol", "hc.port", "hc.path", "hc.interval_s",
                          "hc.healthy_threshold"]),
                  lambda: ctx.aws_call("elbv2", "describe_target_groups", TargetGroupArns=tg_arns).get("TargetGroups", []))
    by_arn = {} if isinstance(groups, Unread) else {g["TargetGroupArn"]: g for g in groups}
    arns = tg_arns if isinstance(groups, Unread) else [g["TargetGroupArn"] for g in groups]
    tag_docs = step("describe_tags", per_tg(["tg.lbc_managed"]), lambda: ctx.aws_call(
        "elbv2", "describe_tags", ResourceArns=tg_arns).get("TagDescriptions", []))
    tags = None if isinstance(tag_docs, Unread) else {
        d["ResourceArn"]: {t["Key"]: t["Value"] for t in d.get("Tags", [])} for d in tag_docs}
    out_groups = []
    for i, arn in enumerate(arns):
        suffix = "" if i == 0 else f"[{i}]"
        attrs = step("describe_target_group_attributes", [f"tg{suffix}.pp_v2", f"tg{suffix}.preserve_ip",
                                                               f"tg{suffix}.deregistration_delay_s"],
                     lambda arn=arn: {a["Key"]: a["Value"] for a in ctx.aws_call(
                         "elbv2", "describe_target_group_attributes", TargetGroupArn=arn).get("Attributes", [])})
        health = step("describe_target_health",
                      [f"tg{suffix}.health", f"tg{suffix}.healthy_count", f"routes{suffix}.private_default"],
                      lambda arn=arn: ctx.aws_call("elbv2", "describe_target_health",
                                           TargetGroupArn=arn).get("TargetHealthDescriptions", []))
        routes = None
        if not isinstance(health, Unread):
            ip_targets = [h["Target"]["Id"] for h in drain.in_service(health) if not h["Target"]["Id"].startswith("i-")]
            if ip_targets:
                # subnets then route tables: one step, the second call needs the first's answer
                routes = step("describe_route_tables", [f"routes{suffix}.private_default"],
                              lambda ip=ip_targets[0]: _route_default(ctx, net["vpc_id"], ip))
        out_groups.append({"arn": arn, "tg": by_arn[arn] if by_arn else groups, "attributes": attrs,
                           "health": health, "tags": tag_docs if tags is None else tags.get(arn, {}), "routes": routes})
    out["target_groups"] = out_groups
    return out


def _trim(value: Any) -> Any:
    """API responses as evidence: datetimes to text, ResponseMetadata dropped, unread parts named."""
    if isinstance(value, Unread):
        return {"unread": value.error.message}
    if isinstance(value, dict):
        return {k: _trim(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [_trim(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _read(value: Any) -> bool:
    return not isinstance(value, Unread)


async def probe_aws(ctx: ProbeContext) -> Observation:
    obs = Observation("aws")
    data = await ctx.cached("aws", lambda: run_blocking(collect, ctx))
    net, lb, listeners, gaps = data["network"], data["load_balancer"], data["listeners"], data.get("gaps", [])
    obs.evidence["load_balancer"] = _trim({k: lb.get(k) for k in ("LoadBalancerArn", "LoadBalancerName", "DNSName", "Scheme", "Type", "VpcId")})
    obs.fact("lb.arn", lb["LoadBalancerArn"])
    obs.fact("lb.type", lb.get("Type"))
    if _read(listeners):
        obs.evidence["listeners"] = _trim([{k: l.get(k) for k in ("ListenerArn", "Port", "Protocol", "DefaultActions")} for l in listeners])
        obs.fact("lb.listener_protocols", [l.get("Protocol") for l in listeners])
    if _read(net["nlb_ips"]):
        obs.fact("nlb.private_ips", net["nlb_ips"])
    if _read(net["vpc_cidrs"]):
        obs.fact("vpc.cidrs", net["vpc_cidrs"])
    groups_ev = []
    problems = []
    groups = data["target_groups"] if _read(data["target_groups"]) else []
    for i, group in enumerate(groups):
        tg, attrs, tags = group["tg"], group["attributes"], group["tags"]
        suffix = "" if i == 0 else f"[{i}]"
        obs.fact(f"tg{suffix}.arn", group["arn"])
        target_type = protocol = None
        if _read(tg):
            target_type, protocol = tg.get("TargetType", "instance"), tg.get("Protocol", "TCP")
            obs.fact(f"tg{suffix}.target_type", target_type)
            obs.fact(f"tg{suffix}.protocol", protocol)
            obs.fact(f"hc{suffix}.protocol", tg.get("HealthCheckProtocol"))
            obs.fact(f"hc{suffix}.port", tg.get("HealthCheckPort"))
            obs.fact(f"hc{suffix}.path", tg.get("HealthCheckPath") if tg.get("HealthCheckProtocol") != "TCP" else None)
            if tg.get("HealthCheckIntervalSeconds") is not None:
                obs.fact(f"hc{suffix}.interval_s", int(tg["HealthCheckIntervalSeconds"]))
            if tg.get("HealthyThresholdCount") is not None:
                obs.fact(f"hc{suffix}.healthy_threshold", int(tg["HealthyThresholdCount"]))
        if _read(attrs):
            pp_raw = attrs.get(ATTR_PROXY_PROTOCOL_V2)
            obs.fact(f"tg{suffix}.pp_v2", pp_raw == "true", "" if pp_raw is not None else "AWS default: attribute absent")
            preserve_raw = attrs.get(ATTR_PRESERVE_CLIENT_IP)
            if preserve_raw is not None:
                obs.fact(f"tg{suffix}.preserve_ip", preserve_raw == "true")
            elif target_type is not None:
                obs.fact(f"tg{suffix}.preserve_ip", preserve_client_ip_default(target_type, protocol),
                         f"AWS default for {target_type} targets over {protocol}: attribute absent")
            # else: the default depends on the target type, which DescribeTargetGroups would have told
            delay_raw = str(attrs.get(ATTR_DEREGISTRATION_DELAY, ""))
            obs.fact(f"tg{suffix}.deregistration_delay_s",
                     int(delay_raw) if delay_raw.isdigit() else NLB_DEFAULT_DEREGISTRATION_DELAY_S,
                     "" if delay_raw.isdigit() else "AWS default: attribute absent")
        health = None
        if _read(group["health"]):
            health = [{"id": h["Target"]["Id"], "port": h["Target"].get("Port"),
                       "state": h["TargetHealth"].get("State"), "reason": h["TargetHealth"].get("Reason"),
                       "description": h["TargetHealth"].get("Description")} for h in group["health"]]
            obs.fact(f"tg{suffix}.health", health)
            obs.fact(f"tg{suffix}.healthy_count", sum(1 for h in health if h["state"] == "healthy"))
            # draining: deregistered (a rollout), no longer checked nor sent new flows — not a health problem
            unhealthy = [h for h in health if h["state"] not in ("healthy", "initial", drain.DRAINING)]
            if unhealthy:
                problems.append(f"{len(unhealthy)} unhealthy target(s): " + ", ".join(f"{h['id']} {h['reason']}" for h in unhealthy))
        if _read(tags):
            lbc = all(k in tags for k in LBC_TAGS[:1]) and any(k in tags for k in LBC_TAGS[1:])
            obs.fact(f"tg{suffix}.lbc_managed", lbc, "tags " + ", ".join(k for k in LBC_TAGS if k in tags) if lbc else "")
        routes = group["routes"]
        if routes is not None and _read(routes):
            obs.fact(f"routes{suffix}.private_default", routes.get("default_route"), routes.get("default_route_target", ""))
        groups_ev.append(_trim({"target_group": {k: tg.get(k) for k in (
            "TargetGroupArn", "TargetGroupName", "Protocol", "Port", "TargetType", "HealthCheckProtocol",
            "HealthCheckPort", "HealthCheckPath", "HealthCheckIntervalSeconds", "HealthyThresholdCount",
            "UnhealthyThresholdCount")} if _read(tg) else tg, "attributes": attrs,
            "health": health if health is not None else group["health"], "tags": tags, "routes": routes}))
    obs.evidence["target_groups"] = groups_ev
    summary = []
    if groups:
        first = groups[0]
        name = first["tg"].get("TargetGroupName") if _read(first["tg"]) else first["arn"].split("/")[-2]
        part = f"target group {name}"
        if "tg.target_type" in obs.facts:
            part += f": {obs.facts['tg.target_type'].value} targets"
        for fact, label in (("tg.pp_v2", "proxy_protocol_v2"), ("tg.preserve_ip", "preserve_client_ip")):
            if fact in obs.facts:
                part += f", {label}={'on' if obs.facts[fact].value else 'off'}"
        if "hc.protocol" in obs.facts:
            part += f", health check {obs.facts['hc.protocol'].value}:{obs.facts['hc.port'].value}"
        summary.append(part)
    else:
        summary.append(f"load balancer {lb.get('LoadBalancerName')}: its target group could not be found")
    summary += problems
    if gaps:
        # Partially blocked: the facts above stand; these could not be established (FactView and PPD091 read this)
        obs.evidence["unavailable"] = gaps
        actions = sorted({g["action"] for g in gaps})
        kinds = sorted({g["kind"] for g in gaps})
        denied = sorted({g["action"] for g in gaps if g["kind"] == "denied"})
        hints = ([f"grant the IAM action(s) {', '.join(denied)} to the identity ppdoctor runs as "
                  "(`ppdoctor permissions --aws` prints the whole policy)"] if denied else [])
        hints += [g["hint"] for g in gaps if g["kind"] != "denied" and g["hint"]]
        summary.append(f"partially blocked ({'/'.join(kinds)}): could not read " + ", ".join(actions)
                       + (" — " + "; ".join(dict.fromkeys(hints)) if hints else ""))
    obs.summary = "; ".join(summary)
    if problems:
        obs.status = Status.FAIL
    return obs
