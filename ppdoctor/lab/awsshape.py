"""Lab AWS objects in the shapes real AWS gives them, and the extra listener/target groups discovery chooses between.

moto names every load balancer like an ALB: ARN ``…:loadbalancer/app/<name>/<id>`` and DNS name
``<name>-1.<region>.elb.amazonaws.com``. A real Network Load Balancer's ARN reads
``…:loadbalancer/net/<name>/<id>`` and its DNS name ``<name>-<hash>.elb.<region>.amazonaws.com``
(ELB User Guide, "Network Load Balancers" → "Load balancer DNS name"; ELBv2 API Reference ARN
format); the re-keying of moto's load balancer is nlbshape.py's.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from .aws_moto import aws_client
from .aws_seed import AwsWorld, eni_description
from .nlbshape import make_nlb_real, real_nlb_shape  # noqa: F401  (re-exported for tests and callers)


def _tags(values: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in values.items()]


def owner_tags(base_tags: Mapping[str, str], namespace: str, service: str, port: int) -> dict[str, str]:
    """Target-group ownership tags for a Service port, in the style of ``base_tags`` (LBC or in-tree)."""
    if "elbv2.k8s.aws/cluster" in base_tags or "service.k8s.aws/stack" in base_tags:
        return {"elbv2.k8s.aws/cluster": base_tags.get("elbv2.k8s.aws/cluster", "lab"),
                "service.k8s.aws/stack": f"{namespace}/{service}",
                "service.k8s.aws/resource": f"{namespace}/{service}:{port}"}
    if base_tags:
        out = {k: v for k, v in base_tags.items() if k.startswith("kubernetes.io/cluster/")}
        out["kubernetes.io/service-name"] = f"{namespace}/{service}"
        return out
    return {}


def add_listener(endpoint_url: str, world: AwsWorld, *, listener_port: int, target_port: int, tg_name: str,
                 tags: Mapping[str, str], attributes: Mapping[str, str]) -> AwsWorld:
    """A second listener on the world's NLB forwarding to its own target group; the world as seen from it."""
    elbv2 = aws_client("elbv2", endpoint_url, world.region)
    first = elbv2.describe_target_groups(TargetGroupArns=[world.tg_arn])["TargetGroups"][0]
    args: dict[str, Any] = {
        "Name": tg_name, "Protocol": first.get("Protocol", "TCP"), "Port": target_port, "VpcId": world.vpc_id,
        "TargetType": world.target_type, "HealthCheckEnabled": True, "HealthCheckProtocol": "TCP",
        "HealthCheckPort": "traffic-port",
        "HealthCheckIntervalSeconds": first.get("HealthCheckIntervalSeconds", 10),
        "HealthCheckTimeoutSeconds": first.get("HealthCheckTimeoutSeconds", 10),
        "HealthyThresholdCount": first.get("HealthyThresholdCount", 3),
        "UnhealthyThresholdCount": first.get("UnhealthyThresholdCount", 3),
    }
    if tags:
        args["Tags"] = _tags(tags)
    tg_arn = elbv2.create_target_group(**args)["TargetGroups"][0]["TargetGroupArn"]
    if attributes:
        elbv2.modify_target_group_attributes(TargetGroupArn=tg_arn, Attributes=_tags(attributes))
    protocol = "TCP_UDP" if first.get("Protocol") == "TCP_UDP" else "TCP"
    listener_arn = elbv2.create_listener(
        LoadBalancerArn=world.lb_arn, Protocol=protocol, Port=listener_port,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
    )["Listeners"][0]["ListenerArn"]
    elbv2.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": world.target_id, "Port": target_port}])
    return replace(world, listener_arn=listener_arn, listener_port=listener_port, tg_arn=tg_arn, tg_name=tg_name,
                   target_port=target_port)


def add_network_load_balancer(endpoint_url: str, world: AwsWorld, *, name: str, nlb_ip: str, target_ip: str,
                              target_port: int, listener_port: int, tg_name: str, lb_tags: Mapping[str, str],
                              tg_tags: Mapping[str, str]) -> AwsWorld:
    """Another NLB (ip targets, TCP, TCP health check) in the world's VPC, shaped like a real one."""
    elbv2 = aws_client("elbv2", endpoint_url, world.region)
    ec2 = aws_client("ec2", endpoint_url, world.region)
    lb = elbv2.create_load_balancer(Name=name, Subnets=[world.public_subnet_id], Scheme="internet-facing",
                                    Type="network", Tags=_tags(lb_tags))["LoadBalancers"][0]
    lb_arn, dns_name = make_nlb_real(lb["LoadBalancerArn"], lb["DNSName"])
    eni_id = ec2.create_network_interface(SubnetId=world.public_subnet_id, PrivateIpAddress=nlb_ip,
                                          Description=eni_description(name, lb_arn))["NetworkInterface"]["NetworkInterfaceId"]
    tg_arn = elbv2.create_target_group(
        Name=tg_name, Protocol="TCP", Port=target_port, VpcId=world.vpc_id, TargetType="ip",
        HealthCheckEnabled=True, HealthCheckProtocol="TCP", HealthCheckPort="traffic-port",
        HealthCheckIntervalSeconds=10, HealthCheckTimeoutSeconds=10, HealthyThresholdCount=3,
        UnhealthyThresholdCount=3, Tags=_tags(tg_tags),
    )["TargetGroups"][0]["TargetGroupArn"]
    listener_arn = elbv2.create_listener(LoadBalancerArn=lb_arn, Protocol="TCP", Port=listener_port,
                                         DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
                                         )["Listeners"][0]["ListenerArn"]
    elbv2.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": target_ip, "Port": target_port}])
    return replace(world, lb_arn=lb_arn, lb_name=name, lb_dns_name=dns_name, listener_arn=listener_arn,
                   listener_port=listener_port, tg_arn=tg_arn, tg_name=tg_name, eni_id=eni_id, nlb_private_ip=nlb_ip,
                   target_type="ip", target_id=target_ip, target_ip=target_ip, target_port=target_port)
