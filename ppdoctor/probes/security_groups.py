"""The sg probe: do the security groups on the targets' ENIs (and the NLB's own) admit the clients?

With client IP preservation on, the target sees the client's own address, so its security
group must admit every client range; AWS Load Balancer Controller >= 2.6 manages rules for
the VPC CIDR only when the NLB has no security group of its own (aws-load-balancer-controller
#3521, #4632). The probe reads the groups and tests two sources against them, as the target
would see them: the prober's own address and a sample public address (TEST-NET-3).
Read-only EC2/ELBv2 calls; the target addresses come from the aws probe's (cached) read.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from .. import drain
from ..aws_sg import groups_admit, ingress_cidrs
from .context import ProbeContext, run_blocking
from .model import Observation, Status

# RFC 5737 TEST-NET-3: stands for "any client on the internet".
SAMPLE_PUBLIC_SOURCE = "203.0.113.50"


def collect(ctx: ProbeContext, data: dict[str, Any]) -> dict[str, Any]:
    """The targets' ENIs and their groups, from the aws probe's read (``data``) plus two EC2 calls."""
    group = data["target_groups"][0]
    targets = [(h["Target"]["Id"], int(h["Target"].get("Port") or group["tg"].get("Port") or 0)) for h in drain.in_service(group["health"])]
    instance_ids = [t for t, _ in targets if t.startswith("i-")]
    ips: dict[str, str] = {t: t for t, _ in targets if not t.startswith("i-")}
    if instance_ids:
        for res in ctx.aws_call("ec2", "describe_instances", InstanceIds=instance_ids).get("Reservations", []):
            for inst in res.get("Instances", []):
                if inst.get("PrivateIpAddress"):
                    ips[inst["InstanceId"]] = inst["PrivateIpAddress"]
    wanted_ips = sorted(set(ips.values()))
    enis = ctx.aws_call("ec2", "describe_network_interfaces",
                        Filters=[{"Name": "addresses.private-ip-address", "Values": wanted_ips}]
                        ).get("NetworkInterfaces", []) if wanted_ips else []
    groups_of: dict[str, list[str]] = {}
    for eni in enis:
        held = {a.get("PrivateIpAddress") for a in eni.get("PrivateIpAddresses", [])} | {eni.get("PrivateIpAddress")}
        for ip in wanted_ips:
            if ip in held:
                groups_of.setdefault(ip, []).extend(g["GroupId"] for g in eni.get("Groups", []))
    lb_groups = list(data["load_balancer"].get("SecurityGroups") or [])
    wanted = sorted({g for gs in groups_of.values() for g in gs} | set(lb_groups))
    sgs = ctx.aws_call("ec2", "describe_security_groups", GroupIds=wanted).get("SecurityGroups", []) if wanted else []
    return {"targets": [(ips.get(t), port) for t, port in targets], "groups_of": groups_of, "lb_groups": lb_groups,
            "permissions": {sg["GroupId"]: sg.get("IpPermissions", []) for sg in sgs},
            "nlb_ips": data["network"]["nlb_ips"], "listener_port": ctx.config.nlb.listener_port,
            "preserve": group["attributes"].get("preserve_client_ip.enabled"),
            "target_type": group["tg"].get("TargetType", "instance"), "protocol": group["tg"].get("Protocol", "TCP")}


def _family(ip: str | None) -> int | None:
    try:
        return ipaddress.ip_address((ip or "").strip("[]")).version
    except ValueError:
        return None


def evaluate(data: dict[str, Any], prober_ip: str | None) -> dict[str, Any]:
    """Which sources the groups admit, as the target would see them (pure; unit-tested)."""
    from .aws import preserve_client_ip_default

    preserve_raw = data.get("preserve")
    preserve = (preserve_raw == "true") if preserve_raw is not None else preserve_client_ip_default(
        data["target_type"], data["protocol"])
    perms = data["permissions"]
    lb_groups = data["lb_groups"]
    lb_perms = [p for g in lb_groups for p in perms.get(g, [])]
    # the NLB's own address a target of each family sees when the client's is not preserved
    nlb_ip_of: dict[int | None, str] = {}
    for addr in data["nlb_ips"] or []:
        nlb_ip_of.setdefault(_family(addr), addr)

    def admitted(client_ip: str | None) -> bool | None:
        if not client_ip:
            return None
        if lb_groups and not groups_admit(lb_perms, client_ip, data["listener_port"] or 0):
            return False
        verdicts = []
        for ip, port in data["targets"]:
            if ip is None or ip not in data["groups_of"]:
                continue
            # Preservation cannot carry an address across families: an IPv6 client of a dualstack NLB reaches
            # an IPv4 target from the NLB's own address (AWS "Target groups for your Network Load Balancers",
            # client IP preservation table), whatever the attribute says.
            seen = client_ip if preserve and _family(client_ip) == _family(ip) else nlb_ip_of.get(_family(ip))
            if seen is None:
                return None
            target_perms = [p for g in data["groups_of"][ip] for p in perms.get(g, [])]
            verdicts.append(groups_admit(target_perms, seen, port, source_groups=lb_groups))
        return all(verdicts) if verdicts else None

    target_perms_all = [p for gs in data["groups_of"].values() for g in gs for p in perms.get(g, [])]
    return {"preserve": preserve, "prober_allowed": admitted(prober_ip),
            "public_allowed": admitted(SAMPLE_PUBLIC_SOURCE),
            "target_groups": sorted({g for gs in data["groups_of"].values() for g in gs}),
            "target_ingress_cidrs": ingress_cidrs(target_perms_all), "nlb_groups": lb_groups}


async def probe_sg(ctx: ProbeContext) -> Observation:
    from .aws import collect as aws_collect

    obs = Observation("sg")
    aws_data = await ctx.cached("aws", lambda: run_blocking(aws_collect, ctx))
    data = await run_blocking(collect, ctx, aws_data)
    prober = ctx.config.nlb.client_source or None
    result = evaluate(data, prober)
    obs.evidence["security_groups"] = {g: data["permissions"].get(g, []) for g in
                                       result["target_groups"] + result["nlb_groups"]}
    obs.evidence["sources_tested"] = {"prober": prober, "sample_public": SAMPLE_PUBLIC_SOURCE,
                                      "as_seen_by_target": "client address" if result["preserve"] else "NLB address"}
    obs.fact("sg.target_groups", result["target_groups"])
    obs.fact("sg.nlb_groups", result["nlb_groups"])
    obs.fact("sg.target_ingress_cidrs", result["target_ingress_cidrs"])
    obs.fact("sg.prober_allowed", result["prober_allowed"],
             f"{prober} as the target sees it" if prober else "no prober source configured")
    obs.fact("sg.public_allowed", result["public_allowed"], f"{SAMPLE_PUBLIC_SOURCE} (TEST-NET-3) as the target sees it")
    blocked = [name for name, key in (("the prober", "prober_allowed"), ("a public client", "public_allowed"))
               if result[key] is False]
    if not result["target_groups"]:
        obs.summary = "no ENI found for the targets' addresses: security groups not evaluated"
    elif blocked:
        obs.status = Status.FAIL
        obs.summary = (f"security groups drop {' and '.join(blocked)} (the target sees the "
                       f"{'client' if result['preserve'] else 'NLB'} address); inbound from "
                       + (", ".join(result["target_ingress_cidrs"]) or "nothing"))
    else:
        obs.summary = "security groups admit the prober and a public client"
    return obs
