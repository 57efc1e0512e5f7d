"""Security groups on the lab NLB's path: which flows the NLB's and the targets' groups let through.

AWS evaluates the target ENI's security groups on the source address the target sees: the
client's own address with client IP preservation on, the NLB's private address with it off
("Target groups for your Network Load Balancers", client IP preservation; "Target security
groups"). An NLB with security groups of its own checks the client address on the listener
port first ("Update the security groups for your Network Load Balancer"). A dropped packet
gets no answer: the lab cannot refuse a TCP handshake from user space, so a dropped flow is
black-holed (accepted, never answered) — the client times out either way.

Over PrivateLink, preservation has no effect: the target sees the NLB's private address
("Target groups for your Network Load Balancers", client IP preservation).
"""

from __future__ import annotations

from ..aws_sg import groups_admit
from .aws_live import LiveState, LiveTarget


def nlb_admits(state: LiveState, client_ip: str, listener_port: int) -> bool:
    """The NLB's own security groups on the client's address (no groups: everything passes)."""
    if not state.lb_security_groups:
        return True
    return groups_admit(state.lb_permissions, client_ip, listener_port)


def target_admits(state: LiveState, target: LiveTarget, source_ip: str) -> bool:
    """The target ENI's groups on the source the target sees; a rule naming one of the NLB's groups
    admits whatever came through the NLB."""
    if target.ip is None or target.ip not in state.target_permissions:
        return True  # no ENI known for the address: nothing to enforce
    return groups_admit(
        state.target_permissions[target.ip], source_ip, target.port, source_groups=state.lb_security_groups
    )
