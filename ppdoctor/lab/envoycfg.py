"""Envoy configuration of the lab's ingress gateway, shaped like what istiod sends a gateway pod.

The bootstrap holds what Istio puts in a gateway's bootstrap (admin, the static status
listener ``:15021``, clusters); the traffic listeners come from a file-based LDS source so
that the lab can push a new listener set (an "istiod push") by atomically replacing one
file. Listener names, stat prefixes and HCM options follow istiod's ingress gateway output
(``0.0.0.0_8080``, ``outbound_0.0.0.0_8080``, ``use_remote_address``, ``normalize_path``…),
so what a probe reads from the admin config_dump looks like a real gateway.

Rendering is pure: every function returns plain dicts (JSON-ready); only
:func:`ensure_tls_cert` and :func:`write_lds` touch the file system.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .addresses import GATEWAY_POD_IPS
from .istio import DirectResponseRoute, FaultDelay, GatewaySettings, ListenerFilter
from .scenario import STATUS_PORT, TCP_PORT, TLS_PORT, TRAFFIC_PORT

# Type URLs of the Envoy v3 API (envoyproxy/envoy api/envoy/...).
LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
FAULT_FILTER_NAME = "envoy.filters.http.fault"
FAULT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
DOWNSTREAM_TLS_TYPE = (
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
)
DOWNSTREAM_CONNECTIONS_MONITOR_TYPE = (
    "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3."
    "DownstreamConnectionsConfig"
)

# The SNI the lab's Gateway serves on the TLS listener (Gateway `hosts: ["*.lab.example"]`).
TLS_SERVER_NAMES = ("*.lab.example",)
# Istio's ingress gateways answer with this Server header (HCM server_name).
ISTIO_SERVER_NAME = "istio-envoy"
# Envoy's default listener_filters_timeout; istiod leaves it unset on gateway listeners.
DEFAULT_LISTENER_FILTERS_TIMEOUT_S = 15.0
ECHO_CLUSTER = "outbound|80||echo.default.svc.cluster.local"
TCP_PROXY_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


def outbound_cluster(host: str, port: int) -> str:
    """istiod's outbound cluster name for a Service host and port."""
    return f"outbound|{port}||{host}"


def listener_name(container_port: int) -> str:
    """istiod names gateway listeners after the wildcard bind address and the container port."""
    return f"0.0.0.0_{container_port}"


def _duration(seconds: float) -> str:
    return f"{seconds:.3f}s"


def _address(ip: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": ip, "port_value": port}}


def _listener_filter(f: ListenerFilter) -> dict[str, Any]:
    out: dict[str, Any] = {"name": f.name}
    if f.typed_config is not None:
        out["typed_config"] = f.typed_config
    return out


def _proto_duration(ns: int) -> str:
    """Nanoseconds as a proto-JSON Duration ("0.002s")."""
    seconds, nanos = divmod(ns, 10**9)
    return f"{seconds}.{nanos:09d}".rstrip("0").rstrip(".") + "s"


def _fault_per_route(delay: FaultDelay) -> dict[str, Any]:
    """What istiod puts in a route's ``typed_per_filter_config`` for a VirtualService fault delay."""
    return {
        "@type": FAULT_TYPE,
        "delay": {
            "fixed_delay": _proto_duration(delay.fixed_delay_ns),
            "percentage": {"numerator": delay.numerator, "denominator": delay.denominator},
        },
    }


def _direct_route(i: int, r: DirectResponseRoute) -> dict[str, Any]:
    route: dict[str, Any] = {
        "name": f"direct-response-{i}",
        "match": {"path": r.path} if r.match == "exact" else {"prefix": r.path},
        "direct_response": {"status": r.status, "body": {"inline_string": r.body}},
    }
    if r.delay is not None:
        # the fault filter (before the router in the HCM) holds the request, then the router answers
        route["typed_per_filter_config"] = {FAULT_FILTER_NAME: _fault_per_route(r.delay)}
    return route


def _route_config(name: str, settings: GatewaySettings, *, require_tls: bool = False) -> dict[str, Any]:
    routes: list[dict[str, Any]] = [_direct_route(i, r) for i, r in enumerate(settings.direct_routes)]
    routes.append(
        {
            "name": "echo",
            "match": {"prefix": "/"},
            "route": {"cluster": ECHO_CLUSTER, "timeout": "0s"},
        }
    )
    vhost: dict[str, Any] = {"name": "*:80", "domains": ["*"], "routes": routes}
    if require_tls:
        # Envoy answers 301 to https:// unless x-forwarded-proto is https, which it sets itself from the
        # downstream connection (use_remote_address): plaintext from a TLS-terminating NLB is "http".
        vhost["require_tls"] = "ALL"
    return {"name": name, "virtual_hosts": [vhost], "validate_clusters": False}


def _hcm(container_port: int, route_name: str, settings: GatewaySettings, *, require_tls: bool = False) -> dict[str, Any]:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": HCM_TYPE,
            "stat_prefix": f"outbound_{listener_name(container_port)}",
            "codec_type": "AUTO",
            "use_remote_address": True,
            "xff_num_trusted_hops": settings.num_trusted_hops,
            "normalize_path": True,
            "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
            "server_name": ISTIO_SERVER_NAME,
            "stream_idle_timeout": "0s",
            "upgrade_configs": [{"upgrade_type": "websocket"}],
            "route_config": _route_config(route_name, settings, require_tls=require_tls),
            # istiod always adds the fault filter (empty: routes configure it) before the router
            "http_filters": [
                {"name": FAULT_FILTER_NAME, "typed_config": {"@type": FAULT_TYPE}},
                {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}},
            ],
        },
    }


def render_listeners(
    settings: GatewaySettings,
    *,
    pod_ip: str,
    traffic_port: int,
    tls_port: int | None,
    tls_cert: tuple[Path, Path] | None = None,
    listener_filters_timeout_s: float = DEFAULT_LISTENER_FILTERS_TIMEOUT_S,
    version: str = "1",
    tcp_port: int | None = None,
) -> dict[str, Any]:
    """The gateway's dynamic listeners as an LDS DiscoveryResponse (what Envoy reads from the file).

    ``traffic_port``/``tls_port`` are where the lab binds; names and stat prefixes keep the
    container ports (8080, 8443) exactly as istiod would. The TLS listener is rendered only
    when ``tls_port`` and ``tls_cert`` (certificate chain, private key) are given.
    """
    listeners: list[dict[str, Any]] = []
    if settings.has_listener(TRAFFIC_PORT):
        listeners.append(
            {
                "@type": LISTENER_TYPE,
                "name": listener_name(TRAFFIC_PORT),
                "address": _address(pod_ip, traffic_port),
                "listener_filters": [_listener_filter(f) for f in settings.listener_filters.get(TRAFFIC_PORT, ())],
                "listener_filters_timeout": _duration(listener_filters_timeout_s),
                "traffic_direction": "OUTBOUND",
                "filter_chains": [{"filters": [_hcm(TRAFFIC_PORT, "http.8080", settings,
                                                    require_tls=_redirects(settings, TRAFFIC_PORT))]}],
            }
        )
    if tls_port is not None and tls_cert is not None and settings.has_listener(TLS_PORT):
        listeners.append(
            {
                "@type": LISTENER_TYPE,
                "name": listener_name(TLS_PORT),
                "address": _address(pod_ip, tls_port),
                "listener_filters": [_listener_filter(f) for f in settings.listener_filters.get(TLS_PORT, ())],
                "listener_filters_timeout": _duration(listener_filters_timeout_s),
                "traffic_direction": "OUTBOUND",
                "filter_chains": [_tls_chain(names, tls_cert, settings) for names in _tls_server_names(settings)],
            }
        )
    route = settings.tcp_routes.get(TCP_PORT)
    if tcp_port is not None and route is not None and settings.has_listener(TCP_PORT):
        # A Gateway server with protocol TCP: istiod's filter chain is a tcp_proxy to the route's
        # destination, behind the same listener filters (the topology's PROXY filter) as the others.
        cluster = outbound_cluster(route.host, route.port)
        listeners.append(
            {
                "@type": LISTENER_TYPE,
                "name": listener_name(TCP_PORT),
                "address": _address(pod_ip, tcp_port),
                "listener_filters": [_listener_filter(f) for f in settings.listener_filters.get(TCP_PORT, ())],
                "listener_filters_timeout": _duration(listener_filters_timeout_s),
                "traffic_direction": "OUTBOUND",
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                    "@type": TCP_PROXY_TYPE, "stat_prefix": cluster, "cluster": cluster}}]}],
            }
        )
    return {"version_info": version, "type_url": LISTENER_TYPE, "resources": listeners}


def _redirects(settings: GatewaySettings, port: int) -> bool:
    """istiod sets ``require_tls: ALL`` on the virtual host of a plaintext server with ``tls.httpsRedirect``."""
    return any(s.https_redirect for s in (settings.servers or {}).get(port, ()))


def _tls_server_names(settings: GatewaySettings) -> list[tuple[str, ...]]:
    """One filter chain per terminating TLS server, matching its hosts as SNI like istiod (``*``: any SNI, or none).

    Servers with the same hosts share a chain (istiod merges them); without Gateways the lab's built-in
    ``*.lab.example`` server.
    """
    if settings.servers is None:
        return [TLS_SERVER_NAMES]
    chains: list[tuple[str, ...]] = []
    for server in settings.servers.get(TLS_PORT, ()):
        if server.sni_names not in chains:
            chains.append(server.sni_names)
    return chains


def _tls_chain(names: tuple[str, ...], tls_cert: tuple[Path, Path], settings: GatewaySettings) -> dict[str, Any]:
    cert_chain, private_key = tls_cert
    chain: dict[str, Any] = {}
    if names:
        chain["filter_chain_match"] = {"server_names": list(names)}
    chain.update({
        "transport_socket": {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": DOWNSTREAM_TLS_TYPE,
                "common_tls_context": {
                    "alpn_protocols": ["h2", "http/1.1"],
                    "tls_certificates": [
                        {
                            "certificate_chain": {"filename": str(cert_chain)},
                            "private_key": {"filename": str(private_key)},
                        }
                    ],
                },
            },
        },
        "filters": [_hcm(TLS_PORT, "https.443.https.gw.istio-system", settings)],
    })
    return chain


def _status_listener(settings: GatewaySettings, pod_ip: str, status_port: int) -> dict[str, Any]:
    """Istio's bootstrap status listener: ``/healthz/ready`` answered by the proxy itself.

    In a real pod the route goes to pilot-agent, which answers 200 once Envoy is ready;
    the lab has no agent, so the listener answers directly (Envoy only serves it once it
    has initialised, which keeps the meaning).
    """
    listener_filters = [_listener_filter(f) for f in settings.status_listener_filters]
    return {
        "name": f"0.0.0.0_{STATUS_PORT}",
        "address": _address(pod_ip, status_port),
        "listener_filters": listener_filters,
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": HCM_TYPE,
                            "stat_prefix": "agent",
                            "codec_type": "AUTO",
                            "route_config": {
                                "name": "status",
                                "virtual_hosts": [
                                    {
                                        "name": "status",
                                        "domains": ["*"],
                                        "routes": [
                                            {
                                                "match": {"prefix": "/healthz/ready"},
                                                "direct_response": {"status": 200},
                                            },
                                            {
                                                "match": {"prefix": "/"},
                                                "direct_response": {"status": 404},
                                            },
                                        ],
                                    }
                                ],
                            },
                            "http_filters": [
                                {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}
                            ],
                        },
                    }
                ]
            }
        ],
    }


def render_bootstrap(
    settings: GatewaySettings,
    *,
    pod_ip: str,
    status_port: int,
    admin_port: int,
    echo_upstream: tuple[str, int],
    lds_path: Path,
    tcp_upstreams: dict[str, tuple[str, int]] | None = None,
    node_id: str = "router~127.1.2.10~istio-ingressgateway-lab.istio-system~istio-system.svc.cluster.local",
) -> dict[str, Any]:
    """Envoy bootstrap: admin, static status listener, echo cluster, file-based LDS.

    The traffic listeners are not in here: they live in the LDS file that
    :func:`render_listeners` + :func:`write_lds` produce.
    """
    echo_ip, echo_port = echo_upstream
    # Other outbound clusters (cluster name → endpoint), e.g. the server-first greeter behind the TCP route.
    extra_clusters = [
        {"name": name, "type": "STATIC", "connect_timeout": "1s",
         "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(ip, port)}}]}]}}
        for name, (ip, port) in sorted((tcp_upstreams or {}).items())
    ]
    return {
        "node": {"id": node_id, "cluster": "istio-ingressgateway.istio-system"},
        "admin": {"address": _address(pod_ip, admin_port)},
        "static_resources": {
            "listeners": [_status_listener(settings, pod_ip, status_port)],
            "clusters": [
                {
                    "name": ECHO_CLUSTER,
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": ECHO_CLUSTER,
                        "endpoints": [
                            {"lb_endpoints": [{"endpoint": {"address": _address(echo_ip, echo_port)}}]}
                        ],
                    },
                },
                *extra_clusters,
            ],
        },
        "dynamic_resources": {
            "lds_config": {
                "resource_api_version": "V3",
                "path_config_source": {
                    "path": str(lds_path),
                    "watched_directory": {"path": str(Path(lds_path).parent)},
                },
            }
        },
        # Istio's bootstrap sets this monitor too; without it Envoy warns at every start.
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": DOWNSTREAM_CONNECTIONS_MONITOR_TYPE,
                        "max_active_downstream_connections": 2147483647,
                    },
                }
            ]
        },
    }


def write_lds(path: Path, listeners: dict[str, Any]) -> None:
    """Replace the LDS file atomically (temp file + rename in the same directory).

    Envoy watches the directory for moves; a rename is one event with a complete file,
    where an in-place write could be read half-written.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".lds-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(listeners, fh, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_tls_cert(state_dir: Path, *, names: tuple[str, ...] = TLS_SERVER_NAMES) -> tuple[Path, Path]:
    """A self-signed certificate for the TLS listener, created once per state directory."""
    state_dir = Path(state_dir)
    cert_path = state_dir / "gateway-cert.pem"
    key_path = state_dir / "gateway-key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0].replace("*", "gateway"))])
    now = datetime.datetime.now(datetime.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in GATEWAY_POD_IPS]  # whichever pod serves
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    state_dir.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path
