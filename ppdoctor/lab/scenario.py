"""Lab scenarios: the initial state of one AWS NLB + Istio gateway world, as data.

A scenario file (TOML, ``assets/scenarios/*.toml``) holds the AWS objects, the
Kubernetes knobs and manifests, and the client side. The lab derives every behaviour
from this *state* (and from later changes made through the real APIs); the
``expected_findings`` list is read by tests only. The schema is documented in
``docs/scenarios.md``; unknown keys and invalid values are rejected with the file,
the key and what is allowed.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..drain import safe_pre_stop
from ..errors import LabError
from . import addresses

DEFAULT_SCENARIO = "tg-pp-on-gateway-off"

# Container ports of the Istio ingress gateway chart; the lab maps them to free host ports.
TRAFFIC_PORT = 8080
TLS_PORT = 8443
STATUS_PORT = 15021
# The `tcp` port of the istio-ingressgateway chart (gateways/istio-ingress values: tcp 31400): the lab's
# TCP (non-HTTP) gateway listener, opened when a Gateway server with protocol TCP lands on it.
TCP_PORT = 31400
ADMIN_PORT = 15000
PORT_ALIASES = {"traffic-port": "traffic-port", "status-port": str(STATUS_PORT)}
# The Istio release of the lab's gateway image (docker.io/istio/proxyv2:<version>) unless a scenario says otherwise.
DEFAULT_ISTIO_VERSION = "1.24.2"
# The shipped gateway's preStop sleep: outlasts the default deregistration delay (ppdoctor/drain.py).
DEFAULT_PRE_STOP_SLEEP_S = safe_pre_stop(None)[0]


class ScenarioError(LabError):
    kind = "scenario"


# --- schema -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ClientSpec:
    source: str = addresses.CLIENT_IP
    extra_headers: dict[str, str] = field(default_factory=dict)
    vpc_endpoint_id: str | None = None  # arrives over PrivateLink: NLB adds TLV 0xEA
    # Arrives through the interface endpoint the lab seeds for the NLB's endpoint service
    # (aws.endpoint_service): the TLV carries that endpoint's id as moto holds it.
    privatelink: bool = False


@dataclass(frozen=True)
class HealthCheckSpec:
    protocol: str = "TCP"  # TCP | HTTP | HTTPS
    port: str = "traffic-port"  # "traffic-port" or a container port number as text
    path: str | None = None
    interval_seconds: int = 10
    timeout_seconds: int = 6
    healthy_threshold: int = 3
    unhealthy_threshold: int = 3


@dataclass(frozen=True)
class TargetGroupSpec:
    name: str = "k8s-istiosys-istioing-5f1e2d3c4b"
    target_type: str = "ip"  # ip | instance
    protocol: str = "TCP"
    port: int = TRAFFIC_PORT
    attributes: dict[str, str] = field(default_factory=dict)  # absent → AWS defaults
    tags: dict[str, str] = field(default_factory=dict)
    health_check: HealthCheckSpec = field(default_factory=HealthCheckSpec)


@dataclass(frozen=True)
class AwsSpec:
    region: str = "us-east-1"
    load_balancer_name: str = "istio-ingress-nlb"
    scheme: str = "internet-facing"
    listener_port: int = 80
    # TLS: the NLB terminates TLS with a certificate made at lab start (imported into moto's ACM)
    listener_protocol: str = "TCP"
    target_group: TargetGroupSpec = field(default_factory=TargetGroupSpec)
    # Where 0.0.0.0/0 of the targets' (private) subnet points: "nat" (NAT gateway) or "igw".
    private_default_route: str = "nat"
    # A second listener 443 → the gateway's 8443 (its own target group, same ownership tags' style).
    tls_listener: bool = True
    # Inbound sources of the security group on the targets' ENIs (all protocols and ports).
    # "0.0.0.0/0": nothing is filtered; the VPC CIDR alone is what LBC >= 2.6 manages for an
    # NLB without security groups (aws-load-balancer-controller #3521, #4632).
    target_sg_ingress: tuple[str, ...] = ("0.0.0.0/0",)
    # A VPC endpoint service (PrivateLink) in front of the NLB, with one consumer endpoint.
    endpoint_service: bool = False
    # Listener attributes, e.g. {"tcp.idle_timeout.seconds" = "60"} (absent: AWS defaults, 350 s).
    listener_attributes: dict[str, str] = field(default_factory=dict)
    # A TCP (non-HTTP) listener on this port (0: none) → the gateway's `tcp` port 31400, its own target
    # group with the main one's attributes; the scenario's Gateway/VirtualService route it (greeter).
    tcp_listener_port: int = 0
    # "dualstack": the NLB has IPv6 addresses too (the lab's on ::1); target groups stay IPv4.
    ip_address_type: str = "ipv4"


@dataclass(frozen=True)
class GatewaySpec:
    pod_template_annotations: dict[str, str] = field(default_factory=dict)
    deployment_annotations: dict[str, str] = field(default_factory=dict)
    service_annotations: dict[str, str] = field(default_factory=dict)
    external_traffic_policy: str = "Cluster"
    env: dict[str, str] = field(default_factory=dict)
    istio_version: str = DEFAULT_ISTIO_VERSION  # tag of the istio-proxy image; decides what the proxy supports
    # The gateway container's preStop sleep and the pod's grace period (ppdoctor/drain.py). The default is what
    # a well-run cluster has: longer than the NLB keeps sending to a deregistered pod; 0: no preStop hook.
    pre_stop_sleep_s: int = DEFAULT_PRE_STOP_SLEEP_S
    termination_grace_period_s: int | None = None  # None: the sleep's own grace period, or Kubernetes' 30 s


@dataclass(frozen=True)
class MeshSpec:
    # meshConfig.defaultConfig.gatewayTopology, e.g. {proxyProtocol = {}, numTrustedProxies = 1}
    gateway_topology: dict[str, Any] | None = None
    # The gateway pods started before the istio ConfigMap got gateway_topology.
    pods_predate_change: bool = False


@dataclass(frozen=True)
class EchoSpec:
    image: str = "mccutchen/go-httpbin:v2.15.0"


@dataclass(frozen=True)
class InClusterCaller:
    """A pod that calls the gateway Service's ClusterIP (kube-proxy → the pods' target port), not the NLB."""

    name: str  # e.g. "cert-manager" (HTTP-01 self-check, cert-manager #656)
    namespace: str
    path: str = "/"
    every_seconds: float = 0.5  # lab time: compressed like the NLB's health checks


@dataclass(frozen=True)
class KubernetesSpec:
    lbc_installed: bool = True
    gateway: GatewaySpec = field(default_factory=GatewaySpec)
    mesh: MeshSpec = field(default_factory=MeshSpec)
    echo: EchoSpec = field(default_factory=EchoSpec)
    extra_manifests: str = ""  # YAML documents (EnvoyFilters, VirtualServices, …)
    in_cluster_callers: tuple[InClusterCaller, ...] = ()


# The Service annotations the AWS Load Balancer Controller reads for an NLB with PROXY v2 (its docs,
# "Service annotations"); the lab's Gateway API gateway carries them by default.
GATEWAY_API_LB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-type": "external",
    "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
    "service.beta.kubernetes.io/aws-load-balancer-proxy-protocol": "*",
    "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes": "preserve_client_ip.enabled=false",
}
GATEWAY_API_PROXY_CONFIG = {"proxy.istio.io/config": '{"gatewayTopology":{"proxyProtocol":{}}}'}


@dataclass(frozen=True)
class GatewayApiSpec:
    """A second ingress gateway created the Gateway API way (istiod's deployment controller in the lab)."""

    enabled: bool = True
    name: str = "public-gw"
    namespace: str = "istio-system"
    load_balancer_name: str = "istio-gwapi-nlb"
    annotations: dict[str, str] = field(default_factory=lambda: {**GATEWAY_API_LB_ANNOTATIONS, **GATEWAY_API_PROXY_CONFIG})
    labels: dict[str, str] = field(default_factory=dict)
    # None: absent (istiod copies metadata.annotations/labels); a table replaces them entirely.
    infrastructure_annotations: dict[str, str] | None = None
    infrastructure_labels: dict[str, str] | None = None
    target: bool = False  # the lab-written config points at this gateway's path


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    client: ClientSpec = field(default_factory=ClientSpec)
    aws: AwsSpec = field(default_factory=AwsSpec)
    kubernetes: KubernetesSpec = field(default_factory=KubernetesSpec)
    expected_findings: tuple[str, ...] = ()  # tests only; the lab never reads it
    path: Path | None = None
    gateway_api: GatewayApiSpec = field(default_factory=GatewayApiSpec)


# --- validation ---------------------------------------------------------------------

_CHOICES = {
    ("aws", "scheme"): ("internet-facing", "internal"),
    ("aws", "listener_protocol"): ("TCP", "TLS", "TCP_UDP"),
    ("aws", "private_default_route"): ("nat", "igw"),
    ("aws", "ip_address_type"): ("ipv4", "dualstack"),
    ("aws", "target_group", "target_type"): ("ip", "instance"),
    ("aws", "target_group", "protocol"): ("TCP", "TLS", "TCP_UDP"),
    ("aws", "target_group", "health_check", "protocol"): ("TCP", "HTTP", "HTTPS"),
    ("kubernetes", "gateway", "external_traffic_policy"): ("Cluster", "Local"),
}

_BOOL_ATTRIBUTES = {
    "proxy_protocol_v2.enabled",
    "preserve_client_ip.enabled",
    "deregistration_delay.connection_termination.enabled",
    "stickiness.enabled",
}
_KNOWN_ATTRIBUTES = _BOOL_ATTRIBUTES | {
    "deregistration_delay.timeout_seconds",
    "proxy_protocol_v2.client_to_server.header_placement",
    "stickiness.type",
    "target_health_state.unhealthy.connection_termination.enabled",
}


class _Reader:
    """Walks one TOML table, tracking the dotted key for error messages."""

    def __init__(self, data: dict[str, Any], where: tuple[str, ...], source: str) -> None:
        if not isinstance(data, dict):
            raise ScenarioError(
                f"{source}: [{'.'.join(where)}] must be a table, got {type(data).__name__}"
            )
        self.data = dict(data)
        self.where = where
        self.source = source
        self.allowed: list[str] = []

    def _key(self, key: str) -> str:
        return ".".join((*self.where, key))

    def fail(self, key: str, problem: str) -> ScenarioError:
        return ScenarioError(f"{self.source}: key '{self._key(key)}' {problem}")

    def take(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        self.allowed.append(key)
        if key not in self.data:
            return default
        value = self.data.pop(key)
        if kind is bool and not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {value!r}")
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise self.fail(key, f"must be an integer, got {value!r}")
        if not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self.fail(key, f"must be {names}, got {value!r}")
        choices = _CHOICES.get((*self.where, key))
        if choices and value not in choices:
            raise self.fail(key, f"is {value!r}; allowed: {', '.join(choices)}")
        return value

    def strings(self, key: str) -> dict[str, str]:
        table = self.take(key, dict, {})
        out: dict[str, str] = {}
        for k, v in table.items():
            if not isinstance(v, str):
                raise self.fail(f"{key}.{k}", f"must be a string, got {v!r}")
            out[str(k)] = v
        return out

    def sub(self, key: str) -> "_Reader":
        self.allowed.append(key)
        return _Reader(self.data.pop(key, {}), (*self.where, key), self.source)

    def done(self) -> None:
        for key in self.data:
            allowed = ", ".join(sorted(self.allowed)) or "(none)"
            raise self.fail(key, f"is not known; allowed here: {allowed}")


def _loopback(r: _Reader, key: str, value: str) -> str:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise r.fail(key, f"must be an IP address, got {value!r}") from None
    if not ip.is_loopback:
        raise r.fail(key, f"must be a loopback address (127.0.0.0/8 or ::1): the lab talks to nothing else, got {value}")
    return value


def _health_check(r: _Reader) -> HealthCheckSpec:
    d = HealthCheckSpec()
    protocol = r.take("protocol", str, d.protocol)
    port = r.take("port", (str, int), d.port)
    port = PORT_ALIASES.get(str(port), str(port))
    if port != "traffic-port" and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise r.fail("port", f"is {port!r}; allowed: traffic-port, status-port or a port number")
    path = r.take("path", str, "/healthz/ready" if protocol != "TCP" else None)
    spec = HealthCheckSpec(
        protocol=protocol,
        port=port,
        path=path,
        interval_seconds=r.take("interval_seconds", int, d.interval_seconds),
        timeout_seconds=r.take("timeout_seconds", int, d.timeout_seconds),
        healthy_threshold=r.take("healthy_threshold", int, d.healthy_threshold),
        unhealthy_threshold=r.take("unhealthy_threshold", int, d.unhealthy_threshold),
    )
    r.done()
    return spec


def _target_group(r: _Reader) -> TargetGroupSpec:
    d = TargetGroupSpec()
    attributes = r.strings("attributes")
    for key, value in attributes.items():
        if key not in _KNOWN_ATTRIBUTES:
            raise r.fail(f"attributes.{key}", f"is not a target-group attribute the lab knows; allowed: {', '.join(sorted(_KNOWN_ATTRIBUTES))}")
        if key in _BOOL_ATTRIBUTES and value not in ("true", "false"):
            raise r.fail(f"attributes.{key}", f"is {value!r}; allowed: \"true\", \"false\"")
    spec = TargetGroupSpec(
        name=r.take("name", str, d.name),
        target_type=r.take("target_type", str, d.target_type),
        protocol=r.take("protocol", str, d.protocol),
        port=r.take("port", int, d.port),
        attributes=attributes,
        tags=r.strings("tags"),
        health_check=_health_check(r.sub("health_check")),
    )
    r.done()
    return spec


def _aws(r: _Reader) -> AwsSpec:
    d = AwsSpec()
    spec = AwsSpec(
        region=r.take("region", str, d.region),
        load_balancer_name=r.take("load_balancer_name", str, d.load_balancer_name),
        scheme=r.take("scheme", str, d.scheme),
        listener_port=r.take("listener_port", int, d.listener_port),
        listener_protocol=r.take("listener_protocol", str, d.listener_protocol),
        target_group=_target_group(r.sub("target_group")),
        private_default_route=r.take("private_default_route", str, d.private_default_route),
        tls_listener=r.take("tls_listener", bool, d.tls_listener),
        tcp_listener_port=r.take("tcp_listener_port", int, d.tcp_listener_port),
        target_sg_ingress=_cidrs(r, "target_sg_ingress", d.target_sg_ingress),
        endpoint_service=r.take("endpoint_service", bool, d.endpoint_service),
        ip_address_type=r.take("ip_address_type", str, d.ip_address_type),
        listener_attributes=_listener_attributes(r),
    )
    taken = {spec.listener_port, *((443,) if spec.tls_listener else ())}
    if spec.tcp_listener_port and (not 1 <= spec.tcp_listener_port <= 65535 or spec.tcp_listener_port in taken):
        raise r.fail("tcp_listener_port", f"is {spec.tcp_listener_port}; allowed: 0 (none) or a port from 1 to 65535 "
                     f"other than the NLB's other listeners ({', '.join(map(str, sorted(taken)))})")
    r.done()
    return spec


# ELB docs, "Update the TCP idle timeout for your Network Load Balancer listener": 60-6000 s.
LISTENER_IDLE_TIMEOUT_RANGE = (60, 6000)


def _listener_attributes(r: _Reader) -> dict[str, str]:
    attributes = r.strings("listener_attributes")
    for key, value in attributes.items():
        if key != "tcp.idle_timeout.seconds":
            raise r.fail(f"listener_attributes.{key}", "is not a listener attribute the lab knows; allowed: tcp.idle_timeout.seconds")
        low, high = LISTENER_IDLE_TIMEOUT_RANGE
        if not (value.isdigit() and low <= int(value) <= high):
            raise r.fail(f"listener_attributes.{key}", f"is {value!r}; allowed: whole seconds from {low} to {high}")
    return attributes


def _cidrs(r: _Reader, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    values = r.take(key, list, list(default))
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except (TypeError, ValueError):
            raise r.fail(key, f"holds {value!r}; allowed: CIDR blocks such as \"127.1.0.0/16\" or \"0.0.0.0/0\"") from None
    return tuple(values)


def _kubernetes(r: _Reader) -> KubernetesSpec:
    g = r.sub("gateway")
    gateway = GatewaySpec(
        pod_template_annotations=g.strings("pod_template_annotations"),
        deployment_annotations=g.strings("deployment_annotations"),
        service_annotations=g.strings("service_annotations"),
        external_traffic_policy=g.take("external_traffic_policy", str, "Cluster"),
        env=g.strings("env"),
        istio_version=g.take("istio_version", str, DEFAULT_ISTIO_VERSION),
        pre_stop_sleep_s=g.take("pre_stop_sleep_s", int, DEFAULT_PRE_STOP_SLEEP_S),
        termination_grace_period_s=g.take("termination_grace_period_s", int, None),
    )
    if gateway.pre_stop_sleep_s < 0 or (gateway.termination_grace_period_s or 0) < 0:
        raise g.fail("pre_stop_sleep_s", "and termination_grace_period_s must not be negative")
    if not re.fullmatch(r"\d+\.\d+(\.\d+)?([-.][A-Za-z0-9.-]+)?", gateway.istio_version):
        raise g.fail("istio_version", f"is {gateway.istio_version!r}; allowed: an Istio release such as 1.27.1")
    g.done()
    m = r.sub("mesh")
    mesh = MeshSpec(
        gateway_topology=m.take("gateway_topology", dict, None),
        pods_predate_change=m.take("pods_predate_change", bool, False),
    )
    if mesh.pods_predate_change and mesh.gateway_topology is None:
        raise m.fail("pods_predate_change", "needs gateway_topology: there is no change for the pods to predate")
    m.done()
    e = r.sub("echo")
    echo = EchoSpec(image=e.take("image", str, EchoSpec().image))
    e.done()
    extra = r.take("extra_manifests", str, "")
    if extra:
        import yaml

        try:
            docs = [doc for doc in yaml.safe_load_all(extra) if doc is not None]
        except yaml.YAMLError as exc:
            raise r.fail("extra_manifests", f"is not valid YAML: {exc}") from None
        for doc in docs:
            if not isinstance(doc, dict) or not {"apiVersion", "kind", "metadata"} <= doc.keys():
                raise r.fail("extra_manifests", "must hold Kubernetes objects with apiVersion, kind and metadata")
    callers = []
    for i, item in enumerate(r.take("in_cluster_callers", list, [])):
        c = _Reader(item, (*r.where, f"in_cluster_callers[{i}]"), r.source)
        name = c.take("name", str, "")
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name):
            raise c.fail("name", f"is {name!r}; allowed: a Kubernetes name (lower case, digits, '-')")
        every = c.take("every_seconds", (int, float), 0.5)
        if every <= 0:
            raise c.fail("every_seconds", "must be positive")
        callers.append(InClusterCaller(name=name, namespace=c.take("namespace", str, name),
                                       path=c.take("path", str, "/"), every_seconds=float(every)))
        c.done()
    if len(callers) > len(addresses.IN_CLUSTER_CALLER_IPS):
        raise r.fail("in_cluster_callers", f"holds {len(callers)}; the lab has addresses for "
                                           f"{len(addresses.IN_CLUSTER_CALLER_IPS)}")
    spec = KubernetesSpec(
        lbc_installed=r.take("lbc_installed", bool, True),
        gateway=gateway,
        mesh=mesh,
        echo=echo,
        extra_manifests=extra,
        in_cluster_callers=tuple(callers),
    )
    r.done()
    return spec


def _optional_strings(r: _Reader, key: str) -> dict[str, str] | None:
    if key not in r.data:
        r.allowed.append(key)
        return None
    return r.strings(key)


def _gateway_api(r: _Reader) -> GatewayApiSpec:
    d = GatewayApiSpec()
    annotations = _optional_strings(r, "annotations")
    spec = GatewayApiSpec(
        enabled=r.take("enabled", bool, d.enabled),
        name=r.take("name", str, d.name),
        namespace=r.take("namespace", str, d.namespace),
        load_balancer_name=r.take("load_balancer_name", str, d.load_balancer_name),
        annotations=d.annotations if annotations is None else annotations,
        labels=r.strings("labels"),
        infrastructure_annotations=_optional_strings(r, "infrastructure_annotations"),
        infrastructure_labels=_optional_strings(r, "infrastructure_labels"),
        target=r.take("target", bool, d.target),
    )
    if spec.target and not spec.enabled:
        raise r.fail("target", "needs enabled = true")
    r.done()
    return spec


def parse_scenario(data: dict[str, Any], source: str, path: Path | None = None) -> Scenario:
    r = _Reader(data, (), source)
    name = r.take("name", str, None)
    if not name:
        raise r.fail("name", "is required")
    description = r.take("description", str, "")
    c = r.sub("client")
    client = ClientSpec(
        source=_loopback(c, "source", c.take("source", str, addresses.CLIENT_IP)),
        extra_headers=c.strings("extra_headers"),
        vpc_endpoint_id=c.take("vpc_endpoint_id", str, None),
        privatelink=c.take("privatelink", bool, False),
    )
    c.done()
    aws = _aws(r.sub("aws"))
    if client.privatelink and not aws.endpoint_service:
        raise c.fail("privatelink", "needs aws.endpoint_service = true: the client reaches the NLB through its endpoint")
    kubernetes = _kubernetes(r.sub("kubernetes"))
    gateway_api = _gateway_api(r.sub("gateway_api"))
    expected = r.take("expected_findings", list, [])
    for item in expected:
        if not (isinstance(item, str) and item.startswith("PPD") and item[3:].isdigit() and len(item) == 6):
            raise r.fail("expected_findings", f"holds {item!r}; allowed: catalogue ids PPD000–PPD099")
    r.done()
    return Scenario(
        name=name,
        description=description,
        client=client,
        aws=aws,
        kubernetes=kubernetes,
        expected_findings=tuple(expected),
        path=path,
        gateway_api=gateway_api,
    )


# --- loading -------------------------------------------------------------------------

def scenario_dir() -> Path:
    return Path(str(resources.files("ppdoctor.assets") / "scenarios"))


def load_scenario_file(path: Path) -> Scenario:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    return parse_scenario(data, str(path), path)


def list_scenarios() -> list[Scenario]:
    return [load_scenario_file(p) for p in sorted(scenario_dir().glob("*.toml"))]


def load_scenario(name_or_path: str | None) -> Scenario:
    """A scenario by name (shipped) or by path to a TOML file."""
    name_or_path = name_or_path or DEFAULT_SCENARIO
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        return load_scenario_file(candidate)
    path = scenario_dir() / f"{name_or_path}.toml"
    if not path.exists():
        names = ", ".join(s.name for s in list_scenarios())
        raise ScenarioError(
            f"no scenario named {name_or_path!r}",
            hint=f"`ppdoctor lab list` shows them: {names}",
        )
    return load_scenario_file(path)
