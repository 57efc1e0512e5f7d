"""The lab's moto world: what seed_aws creates, the health override, and read_live_state."""

from __future__ import annotations

import socket
import sys
import threading

import pytest

from ppdoctor.errors import LabError
from ppdoctor.lab import addresses
from ppdoctor.lab.aws import (
    AwsClients,
    MotoServer,
    aws_client,
    default_preserve_client_ip,
    lb_id_from_arn,
    read_live_state,
    seed_aws,
)

from .support import LBC_TAGS, make_spec

PORTS = {8080: 41234, 15021: 41235}


def seed(moto: MotoServer, spec=None, **kwargs):
    return seed_aws(moto.endpoint_url, spec or make_spec(), target_ip=addresses.GATEWAY_POD_IP, port_map=PORTS, **kwargs)


def test_seeded_network(moto: MotoServer) -> None:
    world = seed(moto)
    ec2 = moto.client("ec2")
    vpc = ec2.describe_vpcs(VpcIds=[world.vpc_id])["Vpcs"][0]
    assert vpc["CidrBlock"] == addresses.VPC_CIDR == world.vpc_cidr
    subnets = {s["SubnetId"]: s for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [world.vpc_id]}])["Subnets"]}
    assert subnets[world.public_subnet_id]["CidrBlock"] == addresses.PUBLIC_SUBNET_CIDR
    assert subnets[world.private_subnet_id]["CidrBlock"] == addresses.PRIVATE_SUBNET_CIDR

    private = ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": [world.private_subnet_id]}]
    )["RouteTables"]
    assert [t["RouteTableId"] for t in private] == [world.private_route_table_id]
    default = [r for r in private[0]["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
    assert default == [{**default[0], "NatGatewayId": world.nat_gateway_id}]
    nat = ec2.describe_nat_gateways(NatGatewayIds=[world.nat_gateway_id])["NatGateways"][0]
    assert nat["SubnetId"] == world.public_subnet_id

    public = ec2.describe_route_tables(RouteTableIds=[world.public_route_table_id])["RouteTables"][0]
    assert {r.get("GatewayId") for r in public["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"} == {world.igw_id}
    assert public["Associations"][0]["SubnetId"] == world.public_subnet_id


def test_seeded_load_balancer_eni_and_listener(moto: MotoServer) -> None:
    world = seed(moto)
    elbv2, ec2 = moto.client("elbv2"), moto.client("ec2")
    lb = elbv2.describe_load_balancers(LoadBalancerArns=[world.lb_arn])["LoadBalancers"][0]
    assert (lb["Type"], lb["Scheme"], lb["LoadBalancerName"]) == ("network", "internet-facing", "istio-ingress-nlb")
    assert lb["DNSName"] == world.lb_dns_name
    assert [z["SubnetId"] for z in lb["AvailabilityZones"]] == [world.public_subnet_id]

    eni = ec2.describe_network_interfaces(NetworkInterfaceIds=[world.eni_id])["NetworkInterfaces"][0]
    lb_id = world.lb_arn.rsplit("/", 1)[1]
    assert lb_id == lb_id_from_arn(world.lb_arn) and len(lb_id) == 16
    assert eni["Description"] == f"ELB net/istio-ingress-nlb/{lb_id}"
    assert eni["PrivateIpAddress"] == addresses.NLB_IP == world.nlb_private_ip
    assert eni["SubnetId"] == world.public_subnet_id

    listener = elbv2.describe_listeners(LoadBalancerArn=world.lb_arn)["Listeners"]
    assert [(l["Port"], l["Protocol"]) for l in listener] == [(80, "TCP")]
    assert listener[0]["DefaultActions"] == [{"Type": "forward", "TargetGroupArn": world.tg_arn}]

    lb_tags = elbv2.describe_tags(ResourceArns=[world.lb_arn])["TagDescriptions"][0]["Tags"]
    assert {t["Key"]: t["Value"] for t in lb_tags} == {
        "elbv2.k8s.aws/cluster": "lab",
        "service.k8s.aws/stack": "istio-system/istio-ingressgateway",
        "service.k8s.aws/resource": "LoadBalancer",
    }


def test_seeded_target_group_ports_tags_and_only_set_attributes(moto: MotoServer) -> None:
    spec = make_spec(attributes={"proxy_protocol_v2.enabled": "true"}, hc_protocol="HTTP", hc_port="15021")
    world = seed(moto, spec)
    elbv2 = moto.client("elbv2")
    tg = elbv2.describe_target_groups(TargetGroupArns=[world.tg_arn])["TargetGroups"][0]
    assert tg["TargetGroupName"] == "k8s-istiosys-istioing-5f1e2d3c4b"
    assert (tg["Protocol"], tg["Port"], tg["TargetType"]) == ("TCP", 41234, "ip")
    # container port 15021 → the host port the lab's status listener really uses
    assert (tg["HealthCheckProtocol"], tg["HealthCheckPort"], tg["HealthCheckPath"]) == ("HTTP", "41235", "/healthz/ready")
    assert (tg["HealthCheckIntervalSeconds"], tg["HealthCheckTimeoutSeconds"]) == (10, 6)
    assert (tg["HealthyThresholdCount"], tg["UnhealthyThresholdCount"]) == (2, 2)
    assert tg["Matcher"] == {"HttpCode": "200-399"}
    assert tg["LoadBalancerArns"] == [world.lb_arn]

    tags = elbv2.describe_tags(ResourceArns=[world.tg_arn])["TagDescriptions"][0]["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == LBC_TAGS

    attributes = {a["Key"]: a["Value"] for a in elbv2.describe_target_group_attributes(TargetGroupArn=world.tg_arn)["Attributes"]}
    assert attributes["proxy_protocol_v2.enabled"] == "true"
    # moto quirk the probes rely on: an attribute nobody set is absent (AWS would list its default)
    assert "preserve_client_ip.enabled" not in attributes

    targets = elbv2.describe_target_health(TargetGroupArn=world.tg_arn)["TargetHealthDescriptions"]
    assert [t["Target"] for t in targets] == [{"Id": addresses.GATEWAY_POD_IP, "Port": 41234}]


def test_traffic_port_health_check_stays_traffic_port(moto: MotoServer) -> None:
    world = seed(moto, make_spec())
    tg = moto.client("elbv2").describe_target_groups(TargetGroupArns=[world.tg_arn])["TargetGroups"][0]
    assert (tg["HealthCheckProtocol"], tg["HealthCheckPort"]) == ("TCP", "traffic-port")
    assert "HealthCheckPath" not in tg
    attributes = {
        a["Key"] for a in moto.client("elbv2").describe_target_group_attributes(TargetGroupArn=world.tg_arn)["Attributes"]
    }
    assert not attributes & {"proxy_protocol_v2.enabled", "preserve_client_ip.enabled"}


def test_health_override(moto: MotoServer) -> None:
    world = seed(moto)
    elbv2 = moto.client("elbv2")

    def health() -> dict:
        (description,) = elbv2.describe_target_health(TargetGroupArn=world.tg_arn)["TargetHealthDescriptions"]
        return description

    first = health()
    assert first["TargetHealth"] == {
        "State": "initial",
        "Reason": "Elb.InitialHealthChecking",
        "Description": "Initial health checks in progress",
    }
    assert first["HealthCheckPort"] == "41234"  # traffic-port, resolved as AWS reports it

    moto.set_target_health(world.tg_arn, world.target_id, world.target_port, "unhealthy", "Target.FailedHealthChecks", "Health checks failed")
    assert health()["TargetHealth"] == {"State": "unhealthy", "Reason": "Target.FailedHealthChecks", "Description": "Health checks failed"}
    moto.set_target_health(world.tg_arn, world.target_id, world.target_port, "healthy")
    assert health()["TargetHealth"] == {"State": "healthy"}

    with pytest.raises(LabError, match="unknown target health state"):
        moto.set_target_health(world.tg_arn, world.target_id, world.target_port, "fine")

    # A second server in the process shares the override; stopping it keeps ours working.
    other = MotoServer()
    other.start()
    other.stop()
    assert health()["TargetHealth"] == {"State": "healthy"}

    # Deregistered targets keep moto's own answer.
    elbv2.deregister_targets(TargetGroupArn=world.tg_arn, Targets=[{"Id": world.target_id, "Port": world.target_port}])
    (gone,) = elbv2.describe_target_health(
        TargetGroupArn=world.tg_arn, Targets=[{"Id": world.target_id, "Port": world.target_port}]
    )["TargetHealthDescriptions"]
    assert gone["TargetHealth"]["State"] == "unused"
    assert gone["TargetHealth"]["Reason"] == "Target.NotRegistered"


def test_read_live_state_applies_aws_defaults(moto: MotoServer) -> None:
    world = seed(moto)
    clients = AwsClients.connect(moto.endpoint_url)
    state = read_live_state(clients, world)
    assert (state.pp_v2, state.preserve_client_ip, state.preserve_client_ip_explicit) == (False, False, False)
    assert (state.private_default_route, state.private_default_route_target) == ("nat", world.nat_gateway_id)
    assert state.health_check.protocol == "TCP" and state.health_check.port == "traffic-port"
    assert state.health_check.port_for(41234) == 41234
    assert [(t.id, t.ip, t.port) for t in state.targets] == [(addresses.GATEWAY_POD_IP, addresses.GATEWAY_POD_IP, 41234)]

    clients.elbv2.modify_target_group_attributes(
        TargetGroupArn=world.tg_arn,
        Attributes=[{"Key": "preserve_client_ip.enabled", "Value": "true"}, {"Key": "proxy_protocol_v2.enabled", "Value": "true"}],
    )
    clients.ec2.replace_route(RouteTableId=world.private_route_table_id, DestinationCidrBlock="0.0.0.0/0", GatewayId=world.igw_id)
    state = read_live_state(clients, world)
    assert (state.pp_v2, state.preserve_client_ip, state.preserve_client_ip_explicit) == (True, True, True)
    assert (state.private_default_route, state.private_default_route_target) == ("igw", world.igw_id)


def test_aws_default_for_preserve_client_ip() -> None:
    assert default_preserve_client_ip("ip", "TCP") is False
    assert default_preserve_client_ip("ip", "TLS") is False
    assert default_preserve_client_ip("ip", "TCP_UDP") is True
    assert default_preserve_client_ip("instance", "TCP") is True


def test_igw_route_and_instance_targets(moto: MotoServer) -> None:
    world = seed(moto, make_spec(route="igw", target_type="instance", tags={}))
    assert world.target_id.startswith("i-") and world.target_ip == addresses.GATEWAY_POD_IP
    state = read_live_state(AwsClients.connect(moto.endpoint_url), world)
    assert state.private_default_route == "igw"
    assert state.preserve_client_ip is True and state.preserve_client_ip_explicit is False
    assert [(t.id, t.ip) for t in state.targets] == [(world.target_id, addresses.GATEWAY_POD_IP)]
    # without LBC tags the in-tree provider's ownership tag marks the NLB
    lb_tags = moto.client("elbv2").describe_tags(ResourceArns=[world.lb_arn])["TagDescriptions"][0]["Tags"]
    assert lb_tags == [{"Key": "kubernetes.io/cluster/lab", "Value": "owned"}]


def test_seed_needs_every_container_port_mapped(moto: MotoServer) -> None:
    with pytest.raises(LabError, match="health-check port 15021 has no host port"):
        seed_aws(moto.endpoint_url, make_spec(hc_protocol="HTTP", hc_port="15021"), target_ip=addresses.GATEWAY_POD_IP, port_map={8080: 1})


def test_moto_rejections_become_lab_errors(moto: MotoServer) -> None:
    seed(moto)
    # moto creates a second load balancer of the same name but refuses a second target group
    # of the same name (AWS would return the existing ones).
    with pytest.raises(LabError, match="seeding the lab's AWS failed at 'target group'.*DuplicateTargetGroupName"):
        seed(moto)


def test_missing_moto_is_a_lab_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "moto.moto_server.threaded_moto_server", None)
    with pytest.raises(LabError) as info:
        MotoServer().start()
    assert info.value.message == "moto is not installed"
    assert info.value.hint == "pip install 'ppdoctor[lab]'"


def test_client_uses_dummy_credentials(moto: MotoServer) -> None:
    client = aws_client("sts", moto.endpoint_url)
    assert client.get_caller_identity()["Account"] == "123456789012"


def test_moto_server_stop_leaves_no_thread_or_socket() -> None:
    before = set(threading.enumerate())
    server = MotoServer()
    url = server.start()
    assert aws_client("sts", url).get_caller_identity()["Account"] == "123456789012"
    server.stop()
    assert {t for t in threading.enumerate() if t.is_alive()} - before == set()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((server.host, server.port), timeout=2).close()
    server.stop()  # idempotent


def test_moto_server_on_a_busy_port_is_a_lab_error(moto_server: MotoServer) -> None:
    with pytest.raises(LabError, match=f"cannot start moto on 127.0.0.1:{moto_server.port}"):
        MotoServer(port=moto_server.port).start()
