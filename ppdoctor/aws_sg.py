"""How EC2 security-group inbound rules decide on a TCP connection: shared by the lab's NLB and the sg probe.

A security group is an allow list: a connection is admitted when any inbound permission of
any group on the ENI matches its protocol, port and source ("Security group rules", Amazon
VPC User Guide). A rule's source is a CIDR (``IpRanges`` / ``Ipv6Ranges``) or another group
(``UserIdGroupPairs``): the latter admits traffic from ENIs that carry that group, which for a
Network Load Balancer with security groups means "came through this NLB" ("Update the
security groups for your Network Load Balancer"). Prefix lists are not evaluated (reported
as unknown by callers that care).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any


def permission_admits(perm: Mapping[str, Any], source_ip: str, port: int, *,
                      source_groups: Iterable[str] = ()) -> bool:
    """Does one IpPermission admit TCP from ``source_ip`` to ``port``?"""
    protocol = str(perm.get("IpProtocol", "-1")).lower()
    if protocol not in ("-1", "tcp", "6", "all"):
        return False
    if protocol != "-1":
        low, high = perm.get("FromPort"), perm.get("ToPort")
        if low is not None and high is not None and int(low) != -1 and not int(low) <= port <= int(high):
            return False
    try:
        addr = ipaddress.ip_address(source_ip)
    except ValueError:
        return False
    key, cidr_key = ("Ipv6Ranges", "CidrIpv6") if addr.version == 6 else ("IpRanges", "CidrIp")
    for rng in perm.get(key) or []:
        try:
            if addr in ipaddress.ip_network(rng.get(cidr_key, ""), strict=False):
                return True
        except ValueError:
            continue
    groups = set(source_groups)
    return any(pair.get("GroupId") in groups for pair in perm.get("UserIdGroupPairs") or [])


def groups_admit(permissions: Iterable[Mapping[str, Any]], source_ip: str, port: int, *,
                 source_groups: Iterable[str] = ()) -> bool:
    """Any permission of the ENI's groups admits the connection (security groups only allow)."""
    groups = tuple(source_groups)
    return any(permission_admits(p, source_ip, port, source_groups=groups) for p in permissions)


def ingress_cidrs(permissions: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every source CIDR the permissions name (for evidence and guidance)."""
    out: list[str] = []
    for perm in permissions:
        for rng in perm.get("IpRanges") or []:
            out.append(rng.get("CidrIp", ""))
        for rng in perm.get("Ipv6Ranges") or []:
            out.append(rng.get("CidrIpv6", ""))
    return [c for c in dict.fromkeys(out) if c]
