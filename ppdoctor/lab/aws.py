"""The lab's AWS: moto in server mode, seeded from a scenario, and the live state the NLB emulator polls.

boto3 talks HTTP to a moto server running in this process (``MotoServer``), exactly as it
would talk to AWS with ``--endpoint-url``. Two things moto does not do on its own are added
here: the NLB's ENI (moto creates none for a network load balancer) and target health
that reflects real health checks (moto reports every registered target ``healthy``; the
lab's NLB emulator pushes what its checks found through ``MotoServer.set_target_health``).

moto and boto3 are imported lazily: this module is imported on ppdoctor's start-up path.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import LabError
from . import addresses

if TYPE_CHECKING:  # pragma: no cover
    from .scenario import AwsSpec

log = logging.getLogger(__name__)

# moto accepts any credentials; these keep boto3 from looking for real ones.
DUMMY_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "aws_session_token": "testing",
}

_INSTALL_HINT = "pip install 'ppdoctor[lab]'"

# The NLB emulator's own reads carry this in their User-Agent, so that the lab's moto server
# does not count them as activity (``MotoServer.activity``): the emulator re-reads the state
# only after someone else has talked to moto.
EMULATOR_USER_AGENT = "ppdoctor-lab-nlb"


# --- target health ------------------------------------------------------------------------

TARGET_STATES = ("initial", "healthy", "unhealthy", "unused", "draining", "unavailable")


@dataclass(frozen=True)
class TargetHealthRecord:
    """One target's health as DescribeTargetHealth reports it (State, Reason, Description)."""

    state: str
    reason: str | None = None
    description: str | None = None


# Reason codes: Elastic Load Balancing API Reference, "TargetHealth". For Network Load
# Balancers every failed check is Target.FailedHealthChecks ("Check the health of your Network
# Load Balancer targets"); Target.ResponseCodeMismatch and Target.Timeout apply only to
# Application and Gateway Load Balancers. Descriptions are the texts AWS puts beside them.
HEALTH_REGISTRATION = TargetHealthRecord(
    "initial", "Elb.RegistrationInProgress", "Target registration is in progress"
)
HEALTH_INITIAL = TargetHealthRecord(
    "initial", "Elb.InitialHealthChecking", "Initial health checks in progress"
)
HEALTH_HEALTHY = TargetHealthRecord("healthy")
HEALTH_FAILED = TargetHealthRecord("unhealthy", "Target.FailedHealthChecks", "Health checks failed")


class _TargetHealthRegistry:
    """What the lab's health checks found, consulted by the patched ``FakeTargetGroup.health_for``.

    moto keeps its backends per process, so this registry is per process too: every
    ``MotoServer`` in the process shares it. The patch is installed while at least one
    ``MotoServer`` runs and removed when the last one stops.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str, str], TargetHealthRecord] = {}
        self._servers = 0
        self._original: Any = None

    @staticmethod
    def key(tg_arn: str, target_id: str, port: int | str) -> tuple[str, str, str]:
        return (tg_arn, str(target_id), str(int(port)))

    def set(self, tg_arn: str, target_id: str, port: int | str, record: TargetHealthRecord) -> None:
        with self._lock:
            self._records[self.key(tg_arn, target_id, port)] = record

    def clear(self, tg_arn: str, target_id: str, port: int | str) -> None:
        with self._lock:
            self._records.pop(self.key(tg_arn, target_id, port), None)

    def get(self, tg_arn: str, target_id: str, port: int | str) -> TargetHealthRecord:
        with self._lock:
            return self._records.get(self.key(tg_arn, target_id, port), HEALTH_INITIAL)

    def acquire(self) -> None:
        from moto.elbv2.models import FakeHealthStatus, FakeTargetGroup

        with self._lock:
            self._servers += 1
            if self._original is not None:
                return
            original = FakeTargetGroup.health_for
            registry = self

            def health_for(tg: Any, target: dict[str, Any], ec2_backend: Any) -> Any:
                status = original(tg, target, ec2_backend)
                # Unregistered, draining, stopped instances: moto's own answer stands.
                if status.status != "healthy":
                    return status
                record = registry.get(tg.arn, status.instance_id, status.port)
                # AWS reports the health-check port as a number, "traffic-port" resolved.
                hc_port = status.health_check_port
                if hc_port in (None, "traffic-port"):
                    hc_port = str(status.port)
                return FakeHealthStatus(
                    status.instance_id,
                    status.port,
                    hc_port,
                    record.state,
                    record.reason,
                    record.description,
                )

            self._original = original
            FakeTargetGroup.health_for = health_for  # type: ignore[method-assign]

    def release(self) -> None:
        from moto.elbv2.models import FakeTargetGroup

        with self._lock:
            self._servers = max(0, self._servers - 1)
            if self._servers or self._original is None:
                return
            FakeTargetGroup.health_for = self._original  # type: ignore[method-assign]
            self._original = None
            self._records.clear()
            # moto's backends are per process: the last lab to stop leaves a clean account, so a
            # later lab in the same process (tests, the TUI) can seed the same names again.
            from moto.moto_api._internal.models import moto_api_backend

            moto_api_backend.reset()


_HEALTH = _TargetHealthRegistry()


# --- moto server --------------------------------------------------------------------------

_CLIENTS_LOCK = threading.Lock()
_botocore_session: Any = None


def aws_client(
    service: str, endpoint_url: str, region: str = "us-east-1", *, user_agent_extra: str | None = None
) -> Any:
    """A boto3-compatible client for the lab's moto server; safe to call from any thread.

    One private botocore session serves every lab client (service models load once), and
    it ignores the operator's AWS config files and profile: the lab talks to moto only.
    ``user_agent_extra`` is appended to the User-Agent (``EMULATOR_USER_AGENT``: the NLB
    emulator's reads, not counted as activity).
    """
    global _botocore_session
    import botocore.session
    from botocore.config import Config

    with _CLIENTS_LOCK:
        if _botocore_session is None:
            # No AWS_PROFILE lookup (a profile missing from the empty config would be an error).
            session = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
            session.set_config_variable("config_file", os.devnull)
            session.set_config_variable("credentials_file", os.devnull)
            _botocore_session = session
        return _botocore_session.create_client(
            service,
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(
                retries={"max_attempts": 2, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
                user_agent_extra=user_agent_extra,
            ),
            **DUMMY_CREDENTIALS,
        )


class _ActivityCounter:
    """WSGI middleware: counts the requests moto has answered, except the NLB emulator's reads.

    The count goes up once moto has handled a request (its backend changed, if the request
    changes anything) and before the response is sent, so a caller whose boto3 call returned
    already sees it.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        try:
            return self.app(environ, start_response)
        finally:
            if EMULATOR_USER_AGENT not in environ.get("HTTP_USER_AGENT", ""):
                with self._lock:
                    self.count += 1


class MotoServer:
    """moto's ``ThreadedMotoServer`` on loopback with a dynamic port, quiet, health-aware."""

    def __init__(self, host: str = addresses.CONTROL_PLANE_IP, port: int = 0, *, region: str = "us-east-1") -> None:
        self.host = host
        self.region = region
        self._requested_port = port
        self._server: Any = None
        self._port: int | None = None
        self._activity = _ActivityCounter(None)

    # lifecycle

    def start(self) -> str:
        """Start the server; returns ``endpoint_url``."""
        if self._server is not None:
            return self.endpoint_url
        try:
            from moto.moto_server.threaded_moto_server import ThreadedMotoServer
            from moto.moto_server.werkzeug_app import (
                DomainDispatcherApplication,
                MotoRequestHandler,
                create_backend_app,
            )
            from werkzeug.serving import make_server

            import moto.elbv2.models  # noqa: F401  (the health override patches it)
        except ImportError as exc:
            raise LabError("moto is not installed", hint=_INSTALL_HINT) from exc
        except Exception as exc:  # botocore's ProfileNotFound and the like, raised while moto loads
            raise LabError(
                f"moto failed to load: {exc}",
                hint="moto reads the AWS profile when it loads: unset AWS_PROFILE or name an existing profile",
            ) from exc

        class QuietRequestHandler(MotoRequestHandler):  # type: ignore[misc, valid-type]
            # werkzeug logs every request to stderr; the lab's moto is an implementation detail.
            def log(self, type: str, message: str, *args: Any) -> None:
                log.debug("moto %s: " + message, type, *args)

        activity = self._activity

        class LabMotoServer(ThreadedMotoServer):  # type: ignore[misc, valid-type]
            startup_error: BaseException | None = None

            def _server_entry(self) -> None:
                activity.app = DomainDispatcherApplication(create_backend_app)
                app = activity
                try:
                    self._server = make_server(
                        self._ip_address, self._port, app, True, request_handler=QuietRequestHandler
                    )
                # werkzeug exits (SystemExit) on a busy port; moto's own entry would die here and
                # leave start() waiting forever.
                except (OSError, SystemExit) as exc:
                    self.startup_error = exc
                    self._server_ready_event.set()
                    return
                self._server_ready_event.set()
                self._server.serve_forever()

        server = LabMotoServer(ip_address=self.host, port=self._requested_port, verbose=False)
        server.start()
        if server.startup_error is not None:
            server._thread.join()
            error = server.startup_error
            reason = "the address is in use" if isinstance(error, SystemExit) else str(error)
            raise LabError(
                f"cannot start moto on {self.host}:{self._requested_port}: {reason}",
                hint="choose another port, or port 0 for a free one",
            ) from server.startup_error
        self._port = server.get_host_and_port()[1]
        self._server = server
        _HEALTH.acquire()
        return self.endpoint_url

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        _HEALTH.release()
        server.stop()
        # ThreadedMotoServer.stop() shuts the loop down but leaves the listening socket open.
        inner = getattr(server, "_server", None)
        if inner is not None:
            inner.server_close()

    def __enter__(self) -> "MotoServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._port is None:
            raise LabError("the lab's moto server has not been started")
        return self._port

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client(self, service: str) -> Any:
        return aws_client(service, self.endpoint_url, self.region)

    @property
    def activity(self) -> int:
        """How many requests this server has answered, not counting the NLB emulator's reads
        (``EMULATOR_USER_AGENT``). Unchanged: nothing but the emulator has talked to moto, so
        nothing the emulator reads has changed (moto changes none of it by itself)."""
        return self._activity.count

    # target health

    def set_target_health(
        self,
        tg_arn: str,
        target_id: str,
        port: int | str,
        state: str,
        reason: str | None = None,
        description: str | None = None,
    ) -> None:
        """What DescribeTargetHealth reports for one registered target from now on."""
        if state not in TARGET_STATES:
            raise LabError(f"unknown target health state {state!r}; allowed: {', '.join(TARGET_STATES)}")
        _HEALTH.set(tg_arn, target_id, port, TargetHealthRecord(state, reason, description))

    def clear_target_health(self, tg_arn: str, target_id: str, port: int | str) -> None:
        """Forget a target's health: it reads ``initial`` again (e.g. after deregistration)."""
        _HEALTH.clear(tg_arn, target_id, port)

    def target_health(self, tg_arn: str, target_id: str, port: int | str) -> TargetHealthRecord:
        return _HEALTH.get(tg_arn, target_id, port)


# --- seeding ------------------------------------------------------------------------------

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
    az = f"{region}a"
    ec2 = aws_client("ec2", endpoint_url, region)
    elbv2 = aws_client("elbv2", endpoint_url, region)
    cluster_tag = {f"kubernetes.io/cluster/{tags_cluster}": "shared"}

    target_port = _host_port(port_map, tg_spec.port, "target-group port")
    hc_port = hc.port if hc.port == "traffic-port" else str(_host_port(port_map, int(hc.port), "health-check port"))

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

    with _Step("load balancer"):
        if "elbv2.k8s.aws/cluster" in tg_spec.tags:
            # The AWS Load Balancer Controller tags the NLB like its target groups.
            lb_tags = {k: v for k, v in tg_spec.tags.items() if k in ("elbv2.k8s.aws/cluster", "service.k8s.aws/stack")}
            lb_tags["service.k8s.aws/resource"] = "LoadBalancer"
        else:
            lb_tags = {f"kubernetes.io/cluster/{tags_cluster}": "owned"}
        lb = elbv2.create_load_balancer(
            Name=spec.load_balancer_name,
            Subnets=[public_subnet_id],
            Scheme=spec.scheme,
            Type="network",
            Tags=_tags(lb_tags),
        )["LoadBalancers"][0]
        from .awsshape import make_nlb_real

        # moto's ARN/DNS name read like an ALB's; a real NLB's read loadbalancer/net/… and …elb.<region>…
        lb_arn, lb_dns_name = make_nlb_real(lb["LoadBalancerArn"], lb["DNSName"])
    with _Step("NLB network interface"):
        # moto creates no ENI for a network load balancer; AWS creates one per subnet,
        # requester-managed, with this description (InterfaceType stays "interface" in moto).
        eni_id = ec2.create_network_interface(
            SubnetId=public_subnet_id,
            PrivateIpAddress=addresses.NLB_IP,
            Description=eni_description(spec.load_balancer_name, lb_arn),
        )["NetworkInterface"]["NetworkInterfaceId"]

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
        tg = elbv2.create_target_group(**tg_args)["TargetGroups"][0]
        tg_arn = tg["TargetGroupArn"]
    if tg_spec.attributes:
        with _Step("target group attributes"):
            elbv2.modify_target_group_attributes(TargetGroupArn=tg_arn, Attributes=_tags(tg_spec.attributes))
    with _Step("listener"):
        listener_protocol = "TCP_UDP" if tg_spec.protocol == "TCP_UDP" else "TCP"
        listener_arn = elbv2.create_listener(
            LoadBalancerArn=lb_arn,
            Protocol=listener_protocol,
            Port=spec.listener_port,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
        )["Listeners"][0]["ListenerArn"]

    with _Step("target registration"):
        if tg_spec.target_type == "instance":
            target_id = _launch_node(ec2, private_subnet_id, target_ip, tags_cluster)
        else:
            target_id = target_ip
        elbv2.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": target_id, "Port": target_port}])

    return AwsWorld(
        endpoint_url=endpoint_url,
        region=region,
        vpc_id=vpc_id,
        vpc_cidr=addresses.VPC_CIDR,
        igw_id=igw_id,
        nat_gateway_id=nat_gateway_id,
        eip_allocation_id=eip_allocation_id,
        public_subnet_id=public_subnet_id,
        private_subnet_id=private_subnet_id,
        public_route_table_id=public_rt,
        private_route_table_id=private_rt,
        lb_arn=lb_arn,
        lb_name=spec.load_balancer_name,
        lb_dns_name=lb_dns_name,
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
    )


def _launch_node(ec2: Any, subnet_id: str, private_ip: str, tags_cluster: str) -> str:
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
        TagSpecifications=[{"ResourceType": "instance", "Tags": _tags(
            {"Name": f"{tags_cluster}-node", f"kubernetes.io/cluster/{tags_cluster}": "owned"}
        )}],
    )["Instances"][0]["InstanceId"]


# --- live state ---------------------------------------------------------------------------

# Matcher: "For Network Load Balancers ... the default value being 200-399" (API Reference, "Matcher").
NLB_DEFAULT_MATCHER = "200-399"


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


def read_live_state(clients: AwsClients, world: AwsWorld) -> LiveState:
    """Read the target group, its attributes and targets, and the private subnet's default route."""
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

    registered = [
        d["Target"] for d in elbv2.describe_target_health(TargetGroupArn=world.tg_arn)["TargetHealthDescriptions"]
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
    )


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
