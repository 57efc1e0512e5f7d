"""Seeding the lab's AWS: a scenario's VPC, subnets, routes, NLB, target group and targets created in moto."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LabError
from . import addresses
from ..constants import HC_DEFAULT_MATCHER as NLB_DEFAULT_MATCHER
from .nlbshape import make_nlb_real
from .aws_moto import aws_client

if TYPE_CHECKING:  # pragma: no cover
    from .scenario import AwsSpec

@dataclass(frozen=True)
class AwsWorld:
    """Every id the seeded lab world has: what probes discover and the emulator polls."""

    endpoint_url: str
    region: str
    vpc_id: str
    vpc_cidr: str
    igw_id: str
    nat_gateway_id: str
    eip_allocation_id: str
    public_subnet_id: str
    private_subnet_id: str
    public_route_table_id: str
    private_route_table_id: str
    lb_arn: str
    lb_name: str
    lb_dns_name: str
    listener_arn: str
    listener_port: int
    tg_arn: str
    tg_name: str
    eni_id: str
    nlb_private_ip: str
    target_type: str
    target_id: str  # the IP for ip targets, the instance id for instance targets
    target_ip: str
    target_port: int
    target_sg_id: str = ""  # the security group on the targets' ENI
    target_eni_id: str = ""  # the ENI holding an IP target's address ("" for instance targets)
    endpoint_service_id: str = ""  # the VPC endpoint service in front of the NLB ("" without PrivateLink)
    vpc_endpoint_id: str = ""  # the consumer's interface endpoint of that service


def lb_id_from_arn(lb_arn: str) -> str:
    """The id part of a load balancer ARN (its last path segment), as in the ENI description."""
    return lb_arn.rsplit("/", 1)[-1]


def eni_description(lb_name: str, lb_arn: str) -> str:
    """How AWS describes a Network Load Balancer's ENI: ``ELB net/<name>/<id>``."""
    return f"ELB net/{lb_name}/{lb_id_from_arn(lb_arn)}"


def _host_port(port_map: Mapping[int, int], container_port: int, what: str) -> int:
    try:
        return int(port_map[container_port])
    except KeyError:
        raise LabError(
            f"{what} {container_port} has no host port in the lab's port map",
            hint=f"map container port {container_port} to a host port (known: {sorted(port_map) or 'none'})",
        ) from None


def _tags(values: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in values.items()]


class _Step:
    """Turns a botocore error during seeding into a LabError naming the step."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, LabError):
            return False
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, (ClientError, BotoCoreError)):
            raise LabError(
                f"seeding the lab's AWS failed at '{self.what}': {exc}",
                hint="the scenario asks for something moto rejects; see docs/lab-aws.md",
            ) from exc
        return False


def seed_aws(
    endpoint_url: str,
    spec: "AwsSpec",
    *,
    target_ip: str,
    port_map: Mapping[int, int],
    tags_cluster: str = "lab",
    tls_cert: tuple[Path, Path] | None = None,
) -> AwsWorld:
    """Create the scenario's AWS objects in moto and return their ids.

    ``port_map`` maps container ports (8080, 15021, …) to the host ports the lab's gateway
    really listens on; the target group's port, the registered target's port and a numeric
    health-check port are translated through it. Target-group attributes are set only where
    the scenario sets them, so that "absent → AWS default" stays observable.
    """
    tg_spec = spec.target_group
    hc = tg_spec.health_check
    region = spec.region
    ec2 = aws_client("ec2", endpoint_url, region)
    elbv2 = aws_client("elbv2", endpoint_url, region)

    target_port = _host_port(port_map, tg_spec.port, "target-group port")
    hc_port = hc.port if hc.port == "traffic-port" else str(_host_port(port_map, int(hc.port), "health-check port"))

    net = _seed_network(ec2, spec, tags_cluster)
    lb, eni_id = _seed_load_balancer(ec2, elbv2, spec, net, tags_cluster)
    tg_arn = _seed_target_group(elbv2, spec, net.vpc_id, target_port, hc_port)
    certificate_arn = _seed_certificate(endpoint_url, region, tls_cert) if spec.listener_protocol == "TLS" else None
    listener_arn = _seed_listener(elbv2, spec, lb["LoadBalancerArn"], tg_arn, certificate_arn)
    target_sg_id = _seed_target_security_group(ec2, spec, net, tags_cluster)
    target_id, target_eni_id = _seed_target(
        ec2, elbv2, spec, net, tg_arn, target_ip, target_port, tags_cluster, target_sg_id
    )
    endpoint_service_id, vpc_endpoint_id = (
        _seed_endpoint_service(ec2, lb["LoadBalancerArn"], net) if spec.endpoint_service else ("", "")
    )

    return AwsWorld(
        endpoint_url=endpoint_url,
        region=region,
        vpc_id=net.vpc_id,
        vpc_cidr=addresses.VPC_CIDR,
        igw_id=net.igw_id,
        nat_gateway_id=net.nat_gateway_id,
        eip_allocation_id=net.eip_allocation_id,
        public_subnet_id=net.public_subnet_id,
        private_subnet_id=net.private_subnet_id,
        public_route_table_id=net.public_route_table_id,
        private_route_table_id=net.private_route_table_id,
        lb_arn=lb["LoadBalancerArn"],
        lb_name=spec.load_balancer_name,
        lb_dns_name=lb["DNSName"],
        listener_arn=listener_arn,
        listener_port=spec.listener_port,
        tg_arn=tg_arn,
        tg_name=tg_spec.name,
        eni_id=eni_id,
        nlb_private_ip=addresses.NLB_IP,
        target_type=tg_spec.target_type,
        target_id=target_id,
        target_ip=target_ip,
        target_port=target_port,
        target_sg_id=target_sg_id,
        target_eni_id=target_eni_id,
        endpoint_service_id=endpoint_service_id,
        vpc_endpoint_id=vpc_endpoint_id,
    )


@dataclass(frozen=True)
class _Network:
    """The seeded VPC's ids: what the load balancer and the targets are placed into."""

    vpc_id: str
    public_subnet_id: str
    private_subnet_id: str
    igw_id: str
    public_route_table_id: str
    nat_gateway_id: str
    eip_allocation_id: str
    private_route_table_id: str


def _seed_network(ec2: Any, spec: "AwsSpec", tags_cluster: str) -> _Network:
    """VPC, public and private subnets, internet gateway, NAT gateway and both route tables."""
    az = f"{spec.region}a"
    cluster_tag = {f"kubernetes.io/cluster/{tags_cluster}": "shared"}
    with _Step("VPC"):
        vpc_id = ec2.create_vpc(
            CidrBlock=addresses.VPC_CIDR,
            TagSpecifications=[{"ResourceType": "vpc", "Tags": _tags({"Name": f"{tags_cluster}-vpc", **cluster_tag})}],
        )["Vpc"]["VpcId"]
    with _Step("subnets"):
        public_subnet_id = ec2.create_subnet(
            VpcId=vpc_id,
            CidrBlock=addresses.PUBLIC_SUBNET_CIDR,
            AvailabilityZone=az,
            TagSpecifications=[{"ResourceType": "subnet", "Tags": _tags(
                {"Name": f"{tags_cluster}-public-{az}", "kubernetes.io/role/elb": "1", **cluster_tag}
            )}],
        )["Subnet"]["SubnetId"]
        private_subnet_id = ec2.create_subnet(
            VpcId=vpc_id,
            CidrBlock=addresses.PRIVATE_SUBNET_CIDR,
            AvailabilityZone=az,
            TagSpecifications=[{"ResourceType": "subnet", "Tags": _tags(
                {"Name": f"{tags_cluster}-private-{az}", "kubernetes.io/role/internal-elb": "1", **cluster_tag}
            )}],
        )["Subnet"]["SubnetId"]
    with _Step("internet gateway"):
        igw_id = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
    with _Step("public route table"):
        public_rt = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=public_rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw_id)
        ec2.associate_route_table(RouteTableId=public_rt, SubnetId=public_subnet_id)
    with _Step("NAT gateway"):
        eip_allocation_id = ec2.allocate_address(Domain="vpc")["AllocationId"]
        nat_gateway_id = ec2.create_nat_gateway(
            SubnetId=public_subnet_id, AllocationId=eip_allocation_id
        )["NatGateway"]["NatGatewayId"]
    with _Step("private route table"):
        private_rt = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
        default_route = {"NatGatewayId": nat_gateway_id} if spec.private_default_route == "nat" else {"GatewayId": igw_id}
        ec2.create_route(RouteTableId=private_rt, DestinationCidrBlock="0.0.0.0/0", **default_route)
        ec2.associate_route_table(RouteTableId=private_rt, SubnetId=private_subnet_id)
    return _Network(
        vpc_id=vpc_id,
        public_subnet_id=public_subnet_id,
        private_subnet_id=private_subnet_id,
        igw_id=igw_id,
        public_route_table_id=public_rt,
        nat_gateway_id=nat_gateway_id,
        eip_allocation_id=eip_allocation_id,
        private_route_table_id=private_rt,
    )


def _seed_load_balancer(
    ec2: Any, elbv2: Any, spec: "AwsSpec", net: _Network, tags_cluster: str
) -> tuple[dict[str, Any], str]:
    """The NLB in the public subnet and the ENI AWS would give it; returns (load balancer, ENI id)."""
    tg_spec = spec.target_group
    with _Step("load balancer"):
        if "elbv2.k8s.aws/cluster" in tg_spec.tags:
            # The AWS Load Balancer Controller tags the NLB like its target groups.
            lb_tags = {k: v for k, v in tg_spec.tags.items() if k in ("elbv2.k8s.aws/cluster", "service.k8s.aws/stack")}
            lb_tags["service.k8s.aws/resource"] = "LoadBalancer"
        else:
            lb_tags = {f"kubernetes.io/cluster/{tags_cluster}": "owned"}
        lb = elbv2.create_load_balancer(
            Name=spec.load_balancer_name,
            Subnets=[net.public_subnet_id],
            Scheme=spec.scheme,
            Type="network",
            IpAddressType=spec.ip_address_type,
            Tags=_tags(lb_tags),
        )["LoadBalancers"][0]
        # moto's ARN/DNS name read like an ALB's; a real NLB's read loadbalancer/net/… and …elb.<region>…
        lb["LoadBalancerArn"], lb["DNSName"] = make_nlb_real(lb["LoadBalancerArn"], lb["DNSName"])
    with _Step("NLB network interface"):
        # moto creates no ENI for a network load balancer; AWS creates one per subnet,
        # requester-managed, with this description (InterfaceType stays "interface" in moto).
        eni_id = ec2.create_network_interface(
            SubnetId=net.public_subnet_id,
            PrivateIpAddress=addresses.NLB_IP,
            Description=eni_description(spec.load_balancer_name, lb["LoadBalancerArn"]),
        )["NetworkInterface"]["NetworkInterfaceId"]
    return lb, eni_id


def _seed_target_group(elbv2: Any, spec: "AwsSpec", vpc_id: str, target_port: int, hc_port: str) -> str:
    """The target group with its health check, tags and the attributes the scenario sets."""
    tg_spec = spec.target_group
    hc = tg_spec.health_check
    with _Step("target group"):
        tg_args: dict[str, Any] = {
            "Name": tg_spec.name,
            "Protocol": tg_spec.protocol,
            "Port": target_port,
            "VpcId": vpc_id,
            "TargetType": tg_spec.target_type,
            "HealthCheckEnabled": True,
            "HealthCheckProtocol": hc.protocol,
            "HealthCheckPort": hc_port,
            "HealthCheckIntervalSeconds": hc.interval_seconds,
            "HealthCheckTimeoutSeconds": hc.timeout_seconds,
            "HealthyThresholdCount": hc.healthy_threshold,
            "UnhealthyThresholdCount": hc.unhealthy_threshold,
        }
        if hc.protocol != "TCP":
            tg_args["HealthCheckPath"] = hc.path or "/"
            tg_args["Matcher"] = {"HttpCode": NLB_DEFAULT_MATCHER}
        if tg_spec.tags:
            tg_args["Tags"] = _tags(tg_spec.tags)
        tg_arn: str = elbv2.create_target_group(**tg_args)["TargetGroups"][0]["TargetGroupArn"]
    if tg_spec.attributes:
        with _Step("target group attributes"):
            elbv2.modify_target_group_attributes(TargetGroupArn=tg_arn, Attributes=_tags(tg_spec.attributes))
    return tg_arn


def _seed_certificate(endpoint_url: str, region: str, tls_cert: tuple[Path, Path] | None) -> str:
    """The TLS listener's certificate: the lab's self-signed pair imported into (moto's) ACM."""
    if tls_cert is None:
        raise LabError("a TLS listener needs a certificate", hint="seed_aws(..., tls_cert=(cert, key))")
    with _Step("ACM certificate"):
        acm = aws_client("acm", endpoint_url, region)
        cert, key = (Path(p).read_bytes() for p in tls_cert)
        return str(acm.import_certificate(Certificate=cert, PrivateKey=key)["CertificateArn"])


# The NLB's recommended TLS policy ("Security policies for your Network Load Balancer").
NLB_TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


def _seed_listener(elbv2: Any, spec: "AwsSpec", lb_arn: str, tg_arn: str, certificate_arn: str | None = None) -> str:
    """The NLB listener forwarding to the target group; returns its ARN."""
    with _Step("listener"):
        listener_protocol = "TCP_UDP" if spec.target_group.protocol == "TCP_UDP" else spec.listener_protocol
        tls: dict[str, Any] = {}
        if listener_protocol == "TLS":
            tls = {"Certificates": [{"CertificateArn": certificate_arn}], "SslPolicy": NLB_TLS_POLICY}
        listener_arn: str = elbv2.create_listener(
            LoadBalancerArn=lb_arn,
            Protocol=listener_protocol,
            Port=spec.listener_port,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
            **tls,
        )["Listeners"][0]["ListenerArn"]
    if spec.listener_attributes:
        with _Step("listener attributes"):
            elbv2.modify_listener_attributes(ListenerArn=listener_arn, Attributes=_tags(spec.listener_attributes))
    return listener_arn


def _seed_target_security_group(ec2: Any, spec: "AwsSpec", net: _Network, tags_cluster: str) -> str:
    """The security group on the targets' ENIs, admitting the scenario's sources on every port.

    In EKS this is the node (or cluster) security group the VPC CNI puts on the ENIs that carry
    pod addresses; the AWS Load Balancer Controller adds its rules there.
    """
    with _Step("target security group"):
        sg_id: str = ec2.create_security_group(
            GroupName=f"eks-cluster-sg-{tags_cluster}",
            Description="EKS created security group applied to ENI that is attached to EKS nodes and pods",
            VpcId=net.vpc_id,
        )["GroupId"]
        if spec.target_sg_ingress:
            v4 = [{"CidrIp": c} for c in spec.target_sg_ingress if ":" not in c]
            v6 = [{"CidrIpv6": c} for c in spec.target_sg_ingress if ":" in c]
            ec2.authorize_security_group_ingress(
                GroupId=sg_id, IpPermissions=[{"IpProtocol": "-1", "IpRanges": v4, "Ipv6Ranges": v6}]
            )
    return sg_id


def _seed_target(
    ec2: Any, elbv2: Any, spec: "AwsSpec", net: _Network, tg_arn: str, target_ip: str, target_port: int,
    tags_cluster: str, sg_id: str,
) -> tuple[str, str]:
    """Register the gateway (its IP, or a node instance for instance targets); returns (target id, ENI id).

    An IP target's address lives on an ENI in the private subnet (the VPC CNI's), carrying the
    target security group; an instance target's node is launched with that group.
    """
    eni_id = ""
    with _Step("target registration"):
        if spec.target_group.target_type == "instance":
            target_id = _launch_node(ec2, net.private_subnet_id, target_ip, tags_cluster, sg_id)
        else:
            eni_id = ec2.create_network_interface(
                SubnetId=net.private_subnet_id,
                PrivateIpAddress=target_ip,
                Groups=[sg_id],
                Description=f"aws-K8S-{tags_cluster}-node",
            )["NetworkInterface"]["NetworkInterfaceId"]
            target_id = target_ip
            # The addresses later gateway pods get (addresses.GATEWAY_POD_IPS): ENIs with the same group, as the
            # VPC CNI keeps warm ones on the node, so a pod that moves keeps its security group.
            for spare in addresses.GATEWAY_POD_IPS if target_ip == addresses.GATEWAY_POD_IP else ():
                if spare != target_ip:
                    ec2.create_network_interface(SubnetId=net.private_subnet_id, PrivateIpAddress=spare, Groups=[sg_id],
                                                 Description=f"aws-K8S-{tags_cluster}-node")
        elbv2.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": target_id, "Port": target_port}])
    return target_id, eni_id


def _seed_endpoint_service(ec2: Any, lb_arn: str, net: _Network) -> tuple[str, str]:
    """A VPC endpoint service (PrivateLink) for the NLB and one consumer's interface endpoint.

    The consumer's VPC uses the same CIDR as the provider's on purpose: consumer addresses can
    overlap (hashicorp/vault #9450), which is why only the endpoint id tells clients apart.
    """
    with _Step("VPC endpoint service"):
        service = ec2.create_vpc_endpoint_service_configuration(
            NetworkLoadBalancerArns=[lb_arn], AcceptanceRequired=False
        )["ServiceConfiguration"]
    with _Step("consumer VPC endpoint"):
        consumer_vpc = ec2.create_vpc(CidrBlock=addresses.VPC_CIDR)["Vpc"]["VpcId"]
        consumer_subnet = ec2.create_subnet(VpcId=consumer_vpc, CidrBlock=addresses.PUBLIC_SUBNET_CIDR)["Subnet"]["SubnetId"]
        endpoint_id: str = ec2.create_vpc_endpoint(
            VpcId=consumer_vpc,
            ServiceName=service["ServiceName"],
            VpcEndpointType="Interface",
            SubnetIds=[consumer_subnet],
        )["VpcEndpoint"]["VpcEndpointId"]
    return service["ServiceId"], endpoint_id


def _launch_node(ec2: Any, subnet_id: str, private_ip: str, tags_cluster: str, sg_id: str) -> str:
    """An EC2 instance standing for the Kubernetes node behind instance targets."""
    # Filtered: moto holds ~1,300 AMIs and listing them all takes a second.
    images = ec2.describe_images(
        Owners=["amazon"], Filters=[{"Name": "name", "Values": ["al2023-ami-2023*-x86_64"]}]
    )["Images"] or ec2.describe_images(Owners=["amazon"])["Images"]
    image_id = images[0]["ImageId"]
    return ec2.run_instances(
        ImageId=image_id,
        MinCount=1,
        MaxCount=1,
        InstanceType="m5.large",
        SubnetId=subnet_id,
        PrivateIpAddress=private_ip,
        SecurityGroupIds=[sg_id],
        TagSpecifications=[{"ResourceType": "instance", "Tags": _tags(
            {"Name": f"{tags_cluster}-node", f"kubernetes.io/cluster/{tags_cluster}": "owned"}
        )}],
    )["Instances"][0]["InstanceId"]

