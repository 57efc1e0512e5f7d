"""ELB DNS names: which kind of load balancer and which region they name (ELB User Guide formats)."""

from __future__ import annotations

import pytest

from ppdoctor.discovery.hostname import parse_lb_hostname, same_dns_name


@pytest.mark.parametrize("host, kind, region, name", [
    ("my-nlb-1234567890abcdef.elb.us-east-2.amazonaws.com", "nlb", "us-east-2", "my-nlb"),
    ("dualstack.my-nlb-1234567890abcdef.elb.eu-west-1.amazonaws.com", "nlb", "eu-west-1", "my-nlb"),
    ("k8s-istiosys-istioing-0123456789-0123456789abcdef.elb.cn-north-1.amazonaws.com.cn", "nlb", "cn-north-1",
     "k8s-istiosys-istioing-0123456789"),
    ("my-alb-1234567890.us-west-2.elb.amazonaws.com", "alb-or-classic", "us-west-2", "my-alb"),
    ("internal-my-alb-1234567890.ap-southeast-1.elb.amazonaws.com", "alb-or-classic", "ap-southeast-1", "my-alb"),
    ("a1b2c3d4e5f6-1234567890.us-gov-west-1.elb.amazonaws.com", "alb-or-classic", "us-gov-west-1", "a1b2c3d4e5f6"),
    ("gateway.example.com", "unknown", "", ""),
    ("203.0.113.7", "unknown", "", ""),
])
def test_kind_and_region(host, kind, region, name):
    parsed = parse_lb_hostname(host)
    assert (parsed.kind, parsed.region) == (kind, region)
    if name:
        assert parsed.load_balancer_name == name


def test_dns_names_compare_without_case_dot_or_dualstack():
    assert same_dns_name("My-NLB-1.elb.us-east-1.amazonaws.com.", "dualstack.my-nlb-1.elb.us-east-1.amazonaws.com")
    assert not same_dns_name("my-nlb-1.elb.us-east-1.amazonaws.com", "my-nlb-2.elb.us-east-1.amazonaws.com")
