"""What an AWS load balancer's DNS name says: NLB, ALB or Classic ELB, and its region.

Formats (Elastic Load Balancing User Guide, "DNS name" of each load balancer type):
- Network Load Balancer: ``<name>-<hash>.elb.<region>.amazonaws.com`` (China: ``.amazonaws.com.cn``);
  a dualstack NLB also answers under ``dualstack.<name>…``.
- Application Load Balancer: ``<name>-<number>.<region>.elb.amazonaws.com``; internal ones start
  with ``internal-``; dualstack ones are also reachable as ``dualstack.…``.
- Classic Load Balancer: ``<name>-<number>.<region>.elb.amazonaws.com``, the same shape as an ALB:
  only DescribeLoadBalancers (elbv2 finds ALBs, not Classic ELBs) tells them apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NLB = re.compile(r"^(?:dualstack\.)?(?P<prefix>[a-z0-9-]+)\.elb\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)\.amazonaws\.com(?:\.cn)?\.?$")
_ALB_OR_CLB = re.compile(r"^(?:dualstack\.)?(?P<prefix>[a-z0-9-]+)\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)\.elb\.amazonaws\.com(?:\.cn)?\.?$")


@dataclass(frozen=True)
class LbHostname:
    hostname: str
    kind: str  # "nlb" | "alb-or-classic" | "unknown"
    region: str = ""
    name_prefix: str = ""  # "<name>-<hash>" (internal- included for ALB/CLB)

    @property
    def load_balancer_name(self) -> str:
        """The name part: AWS appends "-<hash>" to the (possibly truncated) name."""
        prefix = self.name_prefix
        if self.kind == "alb-or-classic" and prefix.startswith("internal-"):
            prefix = prefix[len("internal-"):]
        return prefix.rsplit("-", 1)[0] if "-" in prefix else prefix


def parse_lb_hostname(hostname: str) -> LbHostname:
    host = hostname.strip().lower()
    m = _NLB.match(host)
    if m:
        return LbHostname(hostname, "nlb", m["region"], m["prefix"])
    m = _ALB_OR_CLB.match(host)
    if m:
        return LbHostname(hostname, "alb-or-classic", m["region"], m["prefix"])
    return LbHostname(hostname, "unknown")


def same_dns_name(a: str, b: str) -> bool:
    """DNS names compare without case, a trailing dot or the ``dualstack.`` alias."""
    def norm(x: str) -> str:
        x = x.strip().lower().rstrip(".")
        return x[len("dualstack."):] if x.startswith("dualstack.") else x
    return norm(a) == norm(b)
