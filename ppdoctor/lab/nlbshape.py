"""A moto load balancer re-keyed to the ARN and DNS name a real Network Load Balancer has.

moto names every load balancer like an ALB: ARN ``…:loadbalancer/app/<name>/<id>`` and DNS name
``<name>-1.<region>.elb.amazonaws.com``. A real Network Load Balancer's ARN reads
``…:loadbalancer/net/<name>/<id>`` and its DNS name ``<name>-<hash>.elb.<region>.amazonaws.com``
(ELB User Guide, "Network Load Balancers" → "Load balancer DNS name"; ELBv2 API Reference ARN
format). The lab runs moto in-process, so right after CreateLoadBalancer the seeding re-keys the
load balancer in moto's backend before anything else (listener, ENI, target group) refers to it.
"""

from __future__ import annotations

import hashlib


def real_nlb_shape(lb_arn: str) -> tuple[str, str]:
    """(ARN, DNS name) AWS gives the Network Load Balancer moto created as ``lb_arn``."""
    head, _, path = lb_arn.partition(":loadbalancer/")
    _kind, name, lb_id = path.split("/", 2)
    region = head.split(":")[3]
    digest = hashlib.sha256(lb_arn.encode()).hexdigest()[:16]
    return f"{head}:loadbalancer/net/{name}/{lb_id}", f"{name}-{digest}.elb.{region}.amazonaws.com"


def make_nlb_real(lb_arn: str, moto_dns_name: str = "") -> tuple[str, str]:
    """Re-key a moto network load balancer to the real ARN and DNS name; returns them.

    Only valid right after CreateLoadBalancer (no listener yet: listener ARNs derive from the LB ARN).
    A moto in another process (not the lab's) keeps its own shapes: (lb_arn, moto_dns_name).
    """
    from moto.elbv2.models import elbv2_backends

    new_arn, dns_name = real_nlb_shape(lb_arn)
    parts = lb_arn.split(":")
    region, account = parts[3], parts[4]
    backend = elbv2_backends[account][region]
    if lb_arn not in backend.load_balancers:
        return lb_arn, moto_dns_name
    lb = backend.load_balancers.pop(lb_arn)
    lb.arn = new_arn
    lb.dns_name = dns_name
    backend.load_balancers[new_arn] = lb
    backend.tagging_service.copy_tags(lb_arn, new_arn)
    backend.tagging_service.delete_all_tags_for_resource(lb_arn)
    return new_arn, dns_name
