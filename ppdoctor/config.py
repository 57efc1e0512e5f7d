"""Target configuration: which NLB, target group, cluster and gateway one client-IP path goes through.

Sources, lowest to highest: defaults, the config file (TOML; ``--config`` or
``$XDG_CONFIG_HOME/ppdoctor/config.toml``), the environment (AWS_PROFILE, AWS_REGION,
AWS_ENDPOINT_URL, KUBECONFIG) and command-line flags. The lab writes a complete file.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError


def split_host_port(value: str, *, what: str) -> tuple[str, int]:
    """"host:port" or "[v6]:port" → (host, port), with an error that names the setting."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"{what}: {value!r} is not HOST:PORT", hint="write it like 127.1.2.10:8080 or [::1]:8080")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    number = int(port)
    if not 0 < number < 65536:
        raise ConfigError(f"{what}: port {number} is out of range")
    return host, number


@dataclass(frozen=True)
class NlbTarget:
    name: str = ""
    arn: str = ""
    address: str = ""  # HOST:PORT clients connect to (the NLB DNS name and listener port)
    listener_port: int = 80
    client_source: str = ""  # bind probes to this source address (lab: the "internet" client)
    # AWS timeouts (listener idle timeout) are multiplied by this: 1 for real AWS; the lab writes
    # its own compression factor (lab/nlb_idle.py) so an idle probe takes seconds, not minutes.
    time_scale: float = 1.0
    # "Name: value" headers the client path adds before the NLB (what a CDN in front adds, its
    # X-Forwarded-For entry included): probes through the NLB send them as that hop would.
    client_headers: tuple[str, ...] = ()
    # The NLB listener speaks TLS: probes through the NLB do a TLS handshake (SNI tls_server_name) first.
    tls: bool = False
    tls_server_name: str = ""


@dataclass(frozen=True)
class AwsTarget:
    region: str = ""
    profile: str = ""
    endpoint_url: str = ""
    target_group_arns: tuple[str, ...] = ()
    static_credentials: bool = False  # lab only: moto accepts any key; never set for real AWS


@dataclass(frozen=True)
class KubeTarget:
    kubeconfig: str = ""
    context: str = ""
    namespace: str = "istio-system"
    gateway_deployment: str = "istio-ingressgateway"
    gateway_service: str = "istio-ingressgateway"
    mesh_configmap: str = "istio"


@dataclass(frozen=True)
class GatewayTarget:
    direct: str = "port-forward"  # HOST:PORT of a gateway pod's traffic port, or "port-forward"
    admin: str = "port-forward"  # HOST:PORT of the Envoy admin, or "port-forward"
    tls_direct: str = ""


@dataclass(frozen=True)
class EchoTarget:
    path: str = "/get"
    host: str = ""  # Host header to send (VirtualService host), empty = the address


@dataclass(frozen=True)
class ResolverTarget:
    """Lab only: how a load balancer's DNS name and listener port reach the NLB emulator on loopback.

    ``endpoints``: "DNS_NAME:LISTENER_PORT=HOST:PORT" entries. On a real cluster this stays empty
    and the DNS name is resolved with DNS (never /etc/hosts). ``client_source``: the address probes
    bind to when they come through one of these endpoints (the lab's "internet" client);
    ``client_headers``: the headers that client path adds (a CDN in front), copied like it.
    """

    endpoints: tuple[str, ...] = ()
    client_source: str = ""
    client_headers: tuple[str, ...] = ()  # what the lab's client path adds in front of the NLB (a CDN hop)
    time_scale: float = 1.0  # the lab emulator's compression of AWS timeouts (nlb.time_scale)

    def lookup(self, dns_name: str, port: int) -> str | None:
        want = f"{dns_name.lower().rstrip('.')}:{port}"
        for entry in self.endpoints:
            key, sep, target = entry.partition("=")
            if sep and key.strip().lower() == want:
                return target.strip()
        return None


@dataclass(frozen=True)
class Timeouts:
    connect: float = 3.0
    response: float = 5.0
    api: float = 10.0
    total: float = 20.0


@dataclass(frozen=True)
class TargetConfig:
    name: str = "default"
    nlb: NlbTarget = field(default_factory=NlbTarget)
    aws: AwsTarget = field(default_factory=AwsTarget)
    kubernetes: KubeTarget = field(default_factory=KubeTarget)
    gateway: GatewayTarget = field(default_factory=GatewayTarget)
    echo: EchoTarget = field(default_factory=EchoTarget)
    timeouts: Timeouts = field(default_factory=Timeouts)
    resolver: ResolverTarget = field(default_factory=ResolverTarget)
    lab: bool = False
    path: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("path", None)
        data["aws"]["target_group_arns"] = list(self.aws.target_group_arns)
        data["resolver"]["endpoints"] = list(self.resolver.endpoints)
        data["resolver"]["client_headers"] = list(self.resolver.client_headers)
        return data


_SECTIONS = {
    "nlb": NlbTarget,
    "aws": AwsTarget,
    "kubernetes": KubeTarget,
    "gateway": GatewayTarget,
    "echo": EchoTarget,
    "timeouts": Timeouts,
    "resolver": ResolverTarget,
}


def _section(cls: type, data: Any, name: str, source: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: [{name}] must be a table")
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{source}: unknown key '{name}.{key}'; allowed: {', '.join(sorted(known))}")
        default = getattr(cls(), key)
        if isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{source}: '{name}.{key}' must be a list of strings")
            value = tuple(value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{source}: '{name}.{key}' must be true or false")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"{source}: '{name}.{key}' must be a positive number of seconds")
            value = float(value)
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{source}: '{name}.{key}' must be an integer")
        elif not isinstance(value, str):
            raise ConfigError(f"{source}: '{name}.{key}' must be a string")
        values[key] = value
    return cls(**values)


def parse_config(data: dict[str, Any], source: str) -> TargetConfig:
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in _SECTIONS:
            values[key] = _section(_SECTIONS[key], value, key, source)
        elif key == "name" and isinstance(value, str):
            values["name"] = value
        elif key == "lab" and isinstance(value, bool):
            values["lab"] = value
        else:
            allowed = ", ".join(["name", "lab", *sorted(_SECTIONS)])
            raise ConfigError(f"{source}: unknown or invalid key '{key}'; allowed: {allowed}")
    return TargetConfig(**values, path=source)


def default_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "ppdoctor" / "config.toml"


def load_config(path: str | os.PathLike[str] | None = None, *, env: dict[str, str] | None = None) -> TargetConfig:
    """Defaults ← file ← environment. ``path=None`` uses the XDG file when present."""
    env = dict(os.environ if env is None else env)
    cfg = TargetConfig()
    file = Path(path) if path else default_config_path()
    if path or file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {file} does not exist", hint="`ppdoctor lab up --json` prints the path of a lab config") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        cfg = parse_config(data, str(file))
    aws = cfg.aws
    if env.get("AWS_PROFILE") and not aws.profile:
        aws = replace(aws, profile=env["AWS_PROFILE"])
    if (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")) and not aws.region:
        aws = replace(aws, region=env.get("AWS_REGION") or env["AWS_DEFAULT_REGION"])
    if env.get("AWS_ENDPOINT_URL") and not aws.endpoint_url:
        aws = replace(aws, endpoint_url=env["AWS_ENDPOINT_URL"])
    kube = cfg.kubernetes
    if env.get("KUBECONFIG") and not kube.kubeconfig:
        kube = replace(kube, kubeconfig=env["KUBECONFIG"].split(os.pathsep)[0])
    return replace(cfg, aws=aws, kubernetes=kube)


def write_config(cfg: TargetConfig, path: Path) -> None:
    import tomli_w

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(tomli_w.dumps(cfg.as_dict()), encoding="utf-8")
    tmp.replace(path)


# --- is there anything to look at? (``ppdoctor`` without a sub-command decides what to open on) ---

def target_configured(config: TargetConfig) -> bool:
    """True when the config names something to probe (an NLB, AWS or Kubernetes settings)."""
    nlb, aws, kube = config.nlb, config.aws, config.kubernetes
    return bool(nlb.address or nlb.arn or nlb.name or aws.profile or aws.endpoint_url or aws.target_group_arns
                or kube.kubeconfig or kube.context)


def aws_credentials_source(env: dict[str, str] | None = None) -> str | None:
    """Where AWS credentials would come from, judged without boto3 and without the network (no IMDS query)."""
    env = dict(os.environ if env is None else env)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        if env.get(var):
            return f"${var}"
    home = Path(env.get("HOME") or Path.home())
    for var, default in (("AWS_SHARED_CREDENTIALS_FILE", home / ".aws" / "credentials"),
                         ("AWS_CONFIG_FILE", home / ".aws" / "config")):
        path = Path(env.get(var) or default)
        if path.is_file():
            return str(path)
    return None


def missing_target_reason(config: TargetConfig, path: str | None) -> str | None:
    """Why there is nothing to open on (no target and no AWS credentials), or None when there is."""
    if target_configured(config) or aws_credentials_source() is not None:
        return None
    where = path or str(default_config_path())
    source = config.path or f"no config file ({where} does not exist)"
    return (f"No target is configured — {source}: no nlb.address and no AWS or Kubernetes settings — "
            "and no AWS credentials were found (AWS_PROFILE, AWS_ACCESS_KEY_ID, ~/.aws/credentials, ~/.aws/config).")
