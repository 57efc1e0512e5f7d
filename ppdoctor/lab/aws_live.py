"""The lab's AWS as it is right now: the target group, its attributes, targets and routes read from moto."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..constants import HC_DEFAULT_MATCHER
from ..drain import in_service
from .aws_moto import aws_client

if TYPE_CHECKING:  # pragma: no cover
    from .aws_seed import AwsWorld

log = logging.getLogger(__name__)

NLB_DEFAULT_MATCHER = HC_DEFAULT_MATCHER


def default_preserve_client_ip(target_type: str, protocol: str) -> bool:
    """preserve_client_ip.enabled when unset ("Target groups for your Network Load Balancers"):
    disabled for IP targets with TCP/TLS, enabled for instance targets and for UDP/TCP_UDP."""
    if protocol in ("UDP", "TCP_UDP"):
        return True
    return target_type == "instance"


def _bool_attribute(attributes: Mapping[str, str], key: str, default: bool) -> bool:
    value = attributes.get(key)
    if value is None:
        return default
    if value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    # AWS rejects other values; moto stores anything. Behave as AWS would have left it.
    log.warning("target-group attribute %s=%r is not a boolean; using the default %s", key, value, default)
    return default


@dataclass(frozen=True)
class HealthCheckSettings:
    enabled: bool
    protocol: str
    port: str  # "traffic-port" or a host port number as text
    path: str | None
    interval_seconds: int
    timeout_seconds: int
    healthy_threshold: int
    unhealthy_threshold: int
    matcher: str  # HTTP codes, e.g. "200-399"

    def port_for(self, target_port: int) -> int:
        return target_port if self.port == "traffic-port" else int(self.port)


@dataclass(frozen=True)
class LiveTarget:
    id: str
    ip: str | None  # None: an instance id moto does not know
    port: int


@dataclass(frozen=True)
class LiveState:
    """The target group and routing as AWS (moto) holds them right now."""

    tg_arn: str
    target_type: str
    protocol: str
    attributes: Mapping[str, str]  # as DescribeTargetGroupAttributes returned them
    pp_v2: bool
    preserve_client_ip: bool
    preserve_client_ip_explicit: bool  # False: the attribute is absent and the AWS default applies
    health_check: HealthCheckSettings
    targets: tuple[LiveTarget, ...]
    private_default_route: str  # "nat", "igw", another target id (tgw-…, eni-…), or "none"
    private_default_route_target: str | None  # nat-…/igw-… id
    # Inbound permissions of the security groups on each target's ENI, by target IP; a target
    # whose address no ENI holds is absent (nothing to enforce).
    target_permissions: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)
    lb_security_groups: tuple[str, ...] = ()  # the NLB's own groups (none: NLBs created before Aug 2023)
    lb_permissions: tuple[Mapping[str, Any], ...] = ()
    vpc_endpoint_ids: tuple[str, ...] = ()  # available interface endpoints of the NLB's endpoint service
    lb_ip_address_type: str = "ipv4"  # "dualstack": IPv6 clients can reach the NLB
    idle_timeout_seconds: int = 350  # the listener's tcp.idle_timeout.seconds (AWS default 350)
    listener_protocol: str = "TCP"  # "TLS": the NLB terminates TLS (DescribeListeners)


@dataclass(frozen=True)
class AwsClients:
    ec2: Any
    elbv2: Any

    @classmethod
    def connect(
        cls, endpoint_url: str, region: str = "us-east-1", *, user_agent_extra: str | None = None
    ) -> "AwsClients":
        return cls(
            aws_client("ec2", endpoint_url, region, user_agent_extra=user_agent_extra),
            aws_client("elbv2", endpoint_url, region, user_agent_extra=user_agent_extra),
        )


def read_live_state(clients: AwsClients, world: AwsWorld, read_listener_protocol: bool = False) -> LiveState:
    """Read the target group, its attributes and targets, and the private subnet's default route.

    ``read_listener_protocol``: also DescribeListeners for TCP vs TLS — only an emulator that holds a
    listener certificate can act on TLS, so the others spare the extra request.
    """
    elbv2, ec2 = clients.elbv2, clients.ec2
    tg = elbv2.describe_target_groups(TargetGroupArns=[world.tg_arn])["TargetGroups"][0]
    attributes = {
        a["Key"]: a["Value"]
        for a in elbv2.describe_target_group_attributes(TargetGroupArn=world.tg_arn)["Attributes"]
    }
    target_type = tg.get("TargetType", "instance")
    protocol = tg.get("Protocol", "TCP")
    hc_protocol = tg.get("HealthCheckProtocol", "TCP")
    health_check = HealthCheckSettings(
        enabled=bool(tg.get("HealthCheckEnabled", True)),
        protocol=hc_protocol,
        port=str(tg.get("HealthCheckPort", "traffic-port")),
        path=tg.get("HealthCheckPath") if hc_protocol != "TCP" else None,
        interval_seconds=int(tg.get("HealthCheckIntervalSeconds", 30)),
        timeout_seconds=int(tg.get("HealthCheckTimeoutSeconds", 10)),
        healthy_threshold=int(tg.get("HealthyThresholdCount", 5)),
        unhealthy_threshold=int(tg.get("UnhealthyThresholdCount", 2)),
        # moto drops Matcher on TCP target groups whose health check became HTTP later.
        matcher=(tg.get("Matcher") or {}).get("HttpCode") or NLB_DEFAULT_MATCHER,
    )

    # draining targets are listed too (as on AWS): the emulator keeps its own record of them (nlb_drain.py)
    registered = [
        d["Target"] for d in in_service(elbv2.describe_target_health(TargetGroupArn=world.tg_arn)["TargetHealthDescriptions"])
    ]
    instance_ips: dict[str, str] = {}
    instance_ids = [t["Id"] for t in registered if t["Id"].startswith("i-")]
    if instance_ids:
        for reservation in ec2.describe_instances(InstanceIds=instance_ids)["Reservations"]:
            for instance in reservation["Instances"]:
                if instance.get("PrivateIpAddress"):
                    instance_ips[instance["InstanceId"]] = instance["PrivateIpAddress"]
    targets = tuple(
        LiveTarget(
            id=t["Id"],
            ip=instance_ips.get(t["Id"]) if t["Id"].startswith("i-") else t["Id"],
            port=int(t.get("Port", tg.get("Port", 0))),
        )
        for t in registered
    )

    route, route_target = _private_default_route(ec2, world)
    security = read_security(ec2, elbv2, world, [t.ip for t in targets if t.ip])
    listener_attributes = {
        a["Key"]: a["Value"]
        for a in elbv2.describe_listener_attributes(ListenerArn=world.listener_arn).get("Attributes", [])
    }
    listeners = (elbv2.describe_listeners(ListenerArns=[world.listener_arn])["Listeners"]
                 if world.listener_arn and read_listener_protocol else [])
    listener_protocol = listeners[0].get("Protocol", "TCP") if listeners else "TCP"
    return LiveState(
        tg_arn=world.tg_arn,
        target_type=target_type,
        protocol=protocol,
        attributes=attributes,
        pp_v2=_bool_attribute(attributes, "proxy_protocol_v2.enabled", False),
        preserve_client_ip=_bool_attribute(
            attributes, "preserve_client_ip.enabled", default_preserve_client_ip(target_type, protocol)
        ),
        preserve_client_ip_explicit="preserve_client_ip.enabled" in attributes,
        health_check=health_check,
        targets=targets,
        private_default_route=route,
        private_default_route_target=route_target,
        idle_timeout_seconds=_int_attribute(listener_attributes, "tcp.idle_timeout.seconds", 350),
        listener_protocol=listener_protocol,
        **security,
    )


def _int_attribute(attributes: Mapping[str, str], key: str, default: int) -> int:
    try:
        return int(attributes[key])
    except (KeyError, ValueError):
        return default


def read_security(ec2: Any, elbv2: Any, world: "AwsWorld", target_ips: list[str]) -> dict[str, Any]:
    """Security groups of the targets' ENIs and of the NLB, and the NLB's PrivateLink endpoints."""
    enis = ec2.describe_network_interfaces(
        Filters=[{"Name": "addresses.private-ip-address", "Values": target_ips}]
    )["NetworkInterfaces"] if target_ips else []
    groups_of: dict[str, list[str]] = {}
    for eni in enis:
        addresses = {a.get("PrivateIpAddress") for a in eni.get("PrivateIpAddresses", [])} | {eni.get("PrivateIpAddress")}
        for ip in target_ips:
            if ip in addresses:
                groups_of.setdefault(ip, []).extend(g["GroupId"] for g in eni.get("Groups", []))
    lb = elbv2.describe_load_balancers(LoadBalancerArns=[world.lb_arn])["LoadBalancers"][0]
    lb_groups = tuple(lb.get("SecurityGroups") or ())
    wanted = sorted({g for gs in groups_of.values() for g in gs} | set(lb_groups))
    permissions = {
        sg["GroupId"]: tuple(sg.get("IpPermissions", []))
        for sg in (ec2.describe_security_groups(GroupIds=wanted)["SecurityGroups"] if wanted else [])
    }
    endpoints: tuple[str, ...] = ()
    if world.endpoint_service_id:
        endpoints = tuple(
            e["VpcEndpointId"] for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]
            if e.get("ServiceName", "").endswith(world.endpoint_service_id)
            and e.get("State", "available").lower() == "available"
        )
    return {
        "target_permissions": {
            ip: tuple(p for g in gs for p in permissions.get(g, ())) for ip, gs in groups_of.items()
        },
        "lb_security_groups": lb_groups,
        "lb_permissions": tuple(p for g in lb_groups for p in permissions.get(g, ())),
        "vpc_endpoint_ids": endpoints,
        "lb_ip_address_type": lb.get("IpAddressType", "ipv4"),
    }


def _private_default_route(ec2: Any, world: AwsWorld) -> tuple[str, str | None]:
    tables = ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": [world.private_subnet_id]}]
    )["RouteTables"]
    if not tables:  # no explicit association: the VPC's main route table applies
        tables = ec2.describe_route_tables(
            Filters=[
                {"Name": "vpc-id", "Values": [world.vpc_id]},
                {"Name": "association.main", "Values": ["true"]},
            ]
        )["RouteTables"]
    for table in tables:
        for route in table.get("Routes", []):
            if route.get("DestinationCidrBlock") != "0.0.0.0/0":
                continue
            if route.get("NatGatewayId"):
                return "nat", route["NatGatewayId"]
            gateway = route.get("GatewayId") or ""
            if gateway.startswith("igw-"):
                return "igw", gateway
            for key in ("TransitGatewayId", "VpcPeeringConnectionId", "NetworkInterfaceId", "InstanceId", "GatewayId"):
                if route.get(key):
                    return route[key], route[key]
    return "none", None


def in_cidr(ip: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
