"""The lab NLB's deregistration: a target removed from the group drains, and new flows still reach it for a while.

ELB docs, "Edit target group attributes for your Network Load Balancer" → "Deregistration delay": a
deregistered target is ``draining`` for ``deregistration_delay.timeout_seconds`` (default 300 s) while
its open flows finish. The documents say a draining target gets no new flows; the field measures
otherwise: new connections keep arriving for about two minutes after DeregisterTargets, whatever the
delay (aws-load-balancer-controller #2366, #1719; aws/containers-roadmap #470; istio/istio #35964 up
to 180 s), and the EKS Best Practices Guide ("Load Balancing" → "Availability and Pod Lifecycle") says
the deregistration takes time to reach the load balancer. The emulator follows the field:
for ``NLB_DEREGISTRATION_PROPAGATION_S`` after it sees a target gone, a new flow may still be sent to
it (as if to a load-balancer node that has not heard yet), with the health it had when it left.

moto forgets a deregistered target at once, so the emulator remembers it. Times are multiplied by the
lab's time factor (``LAB_IDLE_TIMEOUT_SCALE``, docs/lab-aws.md): 120 s → 6 s, 300 s → 15 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from ..constants import NLB_DEREGISTRATION_PROPAGATION_S
from .aws_health import TargetHealthRecord, deregistration_delay
from .aws_live import LiveTarget


@dataclass(frozen=True)
class Draining:
    target: LiveTarget
    since: float  # loop time the emulator saw the target gone
    drained_at: float  # end of the deregistration delay: `unused` from then on
    routed_until: float  # new flows may reach it until then
    health: TargetHealthRecord  # what its checks said when it left


__all__ = ["Deregistrations", "Draining", "deregistration_delay"]


class Deregistrations:
    """Targets that left the group, while they drain or may still be routed to."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self._draining: dict[tuple[str, int], Draining] = {}

    def update(self, before: Iterable[LiveTarget], after: Iterable[LiveTarget], delay_s: float, now: float,
               health_of: Callable[[LiveTarget], TargetHealthRecord]) -> list[LiveTarget]:
        """Compare two reads of the group; returns the targets that started draining."""
        now_keys = {(t.id, t.port) for t in after}
        for key in [k for k in self._draining if k in now_keys]:
            del self._draining[key]  # registered again
        started = []
        for t in before:
            key = (t.id, t.port)
            if key not in now_keys and key not in self._draining:
                self._draining[key] = Draining(t, now, now + delay_s * self.scale,
                                               now + NLB_DEREGISTRATION_PROPAGATION_S * self.scale, health_of(t))
                started.append(t)
        self.expire(now)
        return started

    def expire(self, now: float) -> None:
        for key in [k for k, d in self._draining.items() if now >= max(d.drained_at, d.routed_until)]:
            del self._draining[key]

    def routed(self, now: float) -> list[Draining]:
        """Deregistered targets a new flow may still be sent to."""
        return [d for d in self._draining.values() if now < d.routed_until]

    def draining(self, now: float) -> list[Draining]:
        """Targets DescribeTargetHealth would show ``draining`` on AWS."""
        return [d for d in self._draining.values() if now < d.drained_at]
