"""IPv6 clients on the lab NLB: what a dualstack NLB does with them in front of an IPv4 target group.

"Target groups for your Network Load Balancers" (client IP preservation): with a dualstack
NLB and IPv4 targets, the NLB translates IPv6 clients, so preservation cannot carry their
address — the target sees the NLB's IPv4 address; PROXY protocol v2 carries it (family
INET6). An NLB without IPv6 addresses (IpAddressType ipv4) cannot be reached over IPv6 at
all: the lab resets such a connection as the stand-in for "no AAAA record, no route".
The lab's target groups are IPv4 (moto's default; the lab seeds no IPv6 target group).
"""

from __future__ import annotations

import ipaddress

from .aws_live import LiveState


def is_ipv6(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).version == 6
    except ValueError:
        return False


def ipv6_flow_mode(state: LiveState, client_ip: str) -> str | None:
    """For an IPv6 client: "refuse" (the NLB has no IPv6 address) or "nlb" (translated to the NLB's
    IPv4 address, whatever preservation says); None for an IPv4 client."""
    if not is_ipv6(client_ip):
        return None
    if state.lb_ip_address_type != "dualstack":
        return "refuse"
    return "nlb"
