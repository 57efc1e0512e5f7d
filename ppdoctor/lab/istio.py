"""What istiod would configure for the ingress gateway pod, derived from Kubernetes objects.

The lab does not run istiod; this module applies the parts of its behaviour that decide
whether the gateway's listeners parse PROXY protocol and how they treat X-Forwarded-For:

* ProxyConfig = mesh ``defaultConfig`` (the ``istio`` ConfigMap *as it was when the pod
  started*: pilot-agent reads it once) merged with the pod-template annotation
  ``proxy.istio.io/config``; ``gatewayTopology.proxyProtocol`` (present, even ``{}``) puts
  the PROXY-protocol listener filter first on every gateway listener, and
  ``gatewayTopology.numTrustedProxies`` becomes ``xff_num_trusted_hops``
  (istio ``pilot/pkg/networking/core/gateway.go``, ``listener.go``).
* EnvoyFilters that select the gateway patch the listeners like istiod's
  ``pilot/pkg/networking/core/envoyfilter/listener_patch.go``: ``LISTENER``/``MERGE``
  appends to ``listener_filters`` (proto merge appends repeated fields, so the filter lands
  *after* ``tls_inspector``), ``LISTENER_FILTER`` supports ADD, INSERT_FIRST, INSERT_BEFORE,
  INSERT_AFTER, REPLACE, REMOVE and MERGE (typed_config merged into filters of the same type).
* ``ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL=true`` on the gateway container adds the filter
  (with ``allow_requests_without_proxy_protocol``) to the static status listener ``:15021``.
* VirtualService ``directResponse`` routes become routes the gateway answers itself; a
  route's ``fault.delay`` (``fixedDelay``) becomes per-route config of the HTTP fault filter
  (istio ``pilot/pkg/networking/core/route/route.go`` ``TranslateFault``), which every gateway
  HTTP connection manager carries before the router.

Filters keep exactly the name and ``typed_config`` the user wrote: Envoy, not istiod,
decides whether they are acceptable (see ``docs/measured-envoy.md``).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

from ..istioversion import image_version, supports_status_port_pp
from .scenario import TCP_PORT, TLS_PORT, TRAFFIC_PORT

ROOT_NAMESPACE = "istio-system"
ISTIO_API = "networking.istio.io/"
PROXY_CONFIG_ANNOTATION = "proxy.istio.io/config"
STATUS_PP_ENV = "ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL"

PP_FILTER_NAME = "envoy.filters.listener.proxy_protocol"
PP_FILTER_DEPRECATED_NAME = "envoy.listener.proxy_protocol"
PP_TYPE = "type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol"
TLS_INSPECTOR_NAME = "envoy.filters.listener.tls_inspector"
TLS_INSPECTOR_TYPE = "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
_TYPED_STRUCT_TYPES = ("type.googleapis.com/udpa.type.v1.TypedStruct", "type.googleapis.com/xds.type.v3.TypedStruct")

# Options of envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol worth reporting.
PP_OPTION_KEYS = (
    "allow_requests_without_proxy_protocol",
    "rules",
    "pass_through_tlvs",
    "disallowed_versions",
    "stat_prefix",
)

# Listeners of the lab gateway, by container port: the Gateway has an HTTP server on 8080 and
# an HTTPS server with SNI hosts on 8443 (which is why istiod adds tls_inspector there).
GATEWAY_LISTENER_PORTS = (TRAFFIC_PORT, TLS_PORT)


def _snake(key: str) -> str:
    out = []
    for ch in key:
        if ch.isupper():
            out.append("_")
            out.append(ch.lower())
        else:
            out.append(ch)
    return "".join(out)


def _get(mapping: Any, key: str, default: Any = None) -> Any:
    """A field of a proto-JSON object, accepting both spellings (snake_case and lowerCamelCase)."""
    if not isinstance(mapping, dict):
        return default
    if key in mapping:
        return mapping[key]
    for k, v in mapping.items():
        if _snake(k) == key:
            return v
    return default


@dataclass(frozen=True)
class ListenerFilter:
    """One entry of a listener's ``listener_filters`` as istiod would send it."""

    name: str
    typed_config: dict[str, Any] | None = None
    source: str = "istiod"

    @property
    def type_url(self) -> str | None:
        if not isinstance(self.typed_config, dict):
            return None
        url = self.typed_config.get("@type")
        if url in _TYPED_STRUCT_TYPES:
            return _get(self.typed_config, "type_url")
        return url

    @property
    def is_proxy_protocol(self) -> bool:
        # With typed_config Envoy picks the extension by type URL; without it only the name is left.
        if self.typed_config is not None:
            return self.type_url == PP_TYPE
        return self.name in (PP_FILTER_NAME, PP_FILTER_DEPRECATED_NAME)

    @property
    def is_tls_inspector(self) -> bool:
        if self.typed_config is not None:
            return self.type_url == TLS_INSPECTOR_TYPE
        return self.name in (TLS_INSPECTOR_NAME, "envoy.listener.tls_inspector")

    @property
    def options(self) -> dict[str, Any]:
        """The PROXY-protocol options set in typed_config (snake_case keys)."""
        config = self.typed_config or {}
        if config.get("@type") in _TYPED_STRUCT_TYPES:
            config = _get(config, "value", {}) or {}
        return {key: _get(config, key) for key in PP_OPTION_KEYS if _get(config, key) is not None}


def istiod_pp_filter(source: str = "istiod") -> ListenerFilter:
    """The filter istiod adds for gatewayTopology.proxyProtocol (``xdsfilters.ProxyProtocol``)."""
    return ListenerFilter(PP_FILTER_NAME, {"@type": PP_TYPE}, source)


def _tls_inspector() -> ListenerFilter:
    return ListenerFilter(TLS_INSPECTOR_NAME, {"@type": TLS_INSPECTOR_TYPE})


@dataclass(frozen=True)
class FaultDelay:
    """A VirtualService ``fault.delay`` as istiod translates it (Envoy ``FaultDelay``).

    The share of delayed requests is ``numerator``/``denominator`` exactly as istiod sends it:
    ``percentage.value`` becomes value × 10000 per ``MILLION``; without ``percentage`` the
    deprecated integer ``percent`` is used per ``HUNDRED`` (unset: 0, no request delayed).
    """

    fixed_delay_ns: int
    numerator: int = 1_000_000
    denominator: str = "MILLION"  # "HUNDRED" | "TEN_THOUSAND" | "MILLION"

    @property
    def fixed_delay_s(self) -> float:
        return self.fixed_delay_ns / 1e9

    @property
    def fraction(self) -> float:
        return self.numerator / _DENOMINATORS[self.denominator]


_DENOMINATORS = {"HUNDRED": 100, "TEN_THOUSAND": 10_000, "MILLION": 1_000_000}


@dataclass(frozen=True)
class DirectResponseRoute:
    """A route the gateway answers itself (VirtualService ``directResponse``), in VirtualService order."""

    path: str
    status: int
    body: str = ""
    match: str = "prefix"  # "prefix" (uri.prefix) or "exact" (uri.exact → Envoy ``path``)
    delay: FaultDelay | None = None


@dataclass(frozen=True)
class GatewayServer:
    """One ``servers`` entry of an Istio Gateway that selects the gateway pods, on the container port it lands on."""

    source: str  # "Gateway default/httpbin-gateway"
    number: int  # spec.servers[].port.number as written
    protocol: str  # HTTP | HTTPS | TLS | TCP | HTTP2 | GRPC
    hosts: tuple[str, ...] = ("*",)
    tls_mode: str | None = None  # SIMPLE | MUTUAL | PASSTHROUGH | ISTIO_MUTUAL | AUTO_PASSTHROUGH
    https_redirect: bool = False  # tls.httpsRedirect on a plaintext server

    @property
    def sni_names(self) -> tuple[str, ...]:
        """server_names of the filter chain istiod builds for a TLS server: none (any SNI, or none) for ``*``."""
        names = tuple(h.split("/", 1)[-1] for h in self.hosts)
        return () if "*" in names else names


@dataclass(frozen=True)
class TcpRoute:
    """A VirtualService ``tcp:`` route on a Gateway server with protocol TCP: istiod's tcp_proxy to one destination."""

    source: str  # "VirtualService default/greeter"
    host: str  # destination.host as written (greeter.default.svc.cluster.local)
    port: int  # destination.port.number


@dataclass
class GatewaySettings:
    """What the gateway pod's Envoy gets: listener filters per listener and HCM options."""

    # container port (8080 traffic, 8443 TLS) → listener filters in order
    listener_filters: dict[int, list[ListenerFilter]] = field(default_factory=dict)
    # container port → the Gateway servers istiod puts on it; None: not derived from Gateways (every
    # listener the lab knows is opened, with its built-in servers)
    servers: dict[int, list[GatewayServer]] | None = None
    pp_sources: list[str] = field(default_factory=list)
    num_trusted_hops: int = 0
    status_listener_filters: list[ListenerFilter] = field(default_factory=list)
    direct_routes: list[DirectResponseRoute] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # container port (TCP_PORT) → the tcp route istiod puts there (a TCP server with a VirtualService tcp route)
    tcp_routes: dict[int, TcpRoute] = field(default_factory=dict)

    def has_listener(self, port: int) -> bool:
        """istiod opens a listener only for ports some Gateway server lands on (istio/istio #48492)."""
        return self.servers is None or bool(self.servers.get(port))

    @property
    def direct_responses(self) -> list[tuple[str, int, str]]:
        """(path, status, body) of each direct-response route, in order (match kind and delay left out)."""
        return [(r.path, r.status, r.body) for r in self.direct_routes]

    def pp_filter_on(self, port: int = TRAFFIC_PORT) -> ListenerFilter | None:
        for f in self.listener_filters.get(port, ()):
            if f.is_proxy_protocol:
                return f
        return None

    @property
    def pp_filter(self) -> bool:
        """The traffic listener (8080, where the NLB target group points) has a PP filter."""
        return self.pp_filter_on(TRAFFIC_PORT) is not None

    @property
    def pp_options(self) -> dict[str, Any]:
        f = self.pp_filter_on(TRAFFIC_PORT)
        return f.options if f else {}

    @property
    def allow_without_pp(self) -> bool:
        return bool(self.pp_options.get("allow_requests_without_proxy_protocol", False))

    @property
    def listener_filter_order(self) -> list[str]:
        """Filter names on the traffic listener 8080, in order."""
        return [f.name for f in self.listener_filters.get(TRAFFIC_PORT, ())]

    @property
    def tls_listener_filter_order(self) -> list[str]:
        """Filter names on the TLS listener 8443, in order (tls_inspector lives here)."""
        return [f.name for f in self.listener_filters.get(TLS_PORT, ())]

    @property
    def status_pp(self) -> bool:
        return any(f.is_proxy_protocol for f in self.status_listener_filters)

    @property
    def status_allow_without_pp(self) -> bool:
        return any(
            f.options.get("allow_requests_without_proxy_protocol") for f in self.status_listener_filters
        )

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["listener_filters"] = {str(k): [asdict(f) for f in v] for k, v in self.listener_filters.items()}
        if self.servers is not None:
            out["servers"] = {str(k): [asdict(x) for x in v] for k, v in self.servers.items()}
        out.update(
            direct_responses=self.direct_responses,
            pp_filter=self.pp_filter,
            pp_options=self.pp_options,
            allow_without_pp=self.allow_without_pp,
            listener_filter_order=self.listener_filter_order,
            tls_listener_filter_order=self.tls_listener_filter_order,
            status_pp=self.status_pp,
            status_allow_without_pp=self.status_allow_without_pp,
        )
        return out


# --- ProxyConfig ---------------------------------------------------------------------------

def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Proto-JSON merge as pilot-agent's ``MergeProxyConfig``: messages merge, scalars replace."""
    out = {_snake(k): v for k, v in base.items()}
    for key, value in override.items():
        key = _snake(key)
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _pod_template(deployment: dict[str, Any]) -> dict[str, Any]:
    return ((deployment or {}).get("spec") or {}).get("template") or {}


def _parse_annotation(text: str, warnings: list[str]) -> dict[str, Any] | None:
    try:
        value = yaml.safe_load(text)  # YAML is a superset of the JSON form people usually write
    except yaml.YAMLError as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        warnings.append(
            f"pod-template annotation {PROXY_CONFIG_ANNOTATION} is neither JSON nor YAML ({problem}); "
            "Istio's sidecar injector rejects such a pod, the lab ignores the annotation"
        )
        return None
    if value is None:
        return {}
    if not isinstance(value, dict):
        warnings.append(
            f"pod-template annotation {PROXY_CONFIG_ANNOTATION} must be an object, got {json.dumps(value)[:80]}; ignored"
        )
        return None
    return value


def _has_message(topology: Any, key: str) -> bool:
    # proto-JSON: an absent key or null leaves a message field unset; {} sets it.
    return isinstance(topology, dict) and _get(topology, key) is not None


# --- EnvoyFilter patches -------------------------------------------------------------------

def _selects(ef: dict[str, Any], namespace: str, pod_labels: dict[str, str]) -> bool:
    meta = ef.get("metadata") or {}
    ef_ns = meta.get("namespace") or "default"
    if ef_ns not in (ROOT_NAMESPACE, namespace):
        return False
    selector = _get(ef.get("spec") or {}, "workload_selector")
    labels = _get(selector, "labels") or {}
    return all(pod_labels.get(k) == v for k, v in labels.items())


def _filter_order_key(ef: dict[str, Any]) -> tuple[Any, ...]:
    # istiod applies root-namespace EnvoyFilters first, then by priority, age and name.
    meta = ef.get("metadata") or {}
    return (
        meta.get("namespace") != ROOT_NAMESPACE,
        int(_get(ef.get("spec") or {}, "priority", 0) or 0),
        str(meta.get("creationTimestamp") or ""),
        str(meta.get("name") or ""),
    )


def _filter_from_value(value: Any, source: str) -> ListenerFilter | None:
    if not isinstance(value, dict) or (not value.get("name") and _get(value, "typed_config") is None):
        return None
    typed = _get(value, "typed_config")
    return ListenerFilter(str(value.get("name") or ""), typed if isinstance(typed, dict) else None, source)


def _context_matches(match: dict[str, Any]) -> bool:
    return (_get(match, "context") or "ANY") in ("ANY", "GATEWAY")


def _listener_matches(match: dict[str, Any], port: int) -> bool:
    lmatch = _get(match, "listener")
    if not isinstance(lmatch, dict):
        return True
    name = lmatch.get("name")
    if name and name != f"0.0.0.0_{port}":
        return False
    wanted = _get(lmatch, "port_number")
    return not wanted or int(wanted) == port


def _apply_patch(
    filters: list[ListenerFilter], apply_to: str, match: dict[str, Any], patch: dict[str, Any], source: str,
    warnings: list[str],
) -> list[ListenerFilter]:
    operation = patch.get("operation")
    value = patch.get("value")
    if apply_to == "LISTENER":
        if operation != "MERGE":
            warnings.append(f"{source}: LISTENER {operation} is not simulated by the lab; ignored")
            return filters
        added = _get(value, "listener_filters") or []
        others = sorted(k for k in (value or {}) if _snake(k) != "listener_filters")
        if others:
            warnings.append(f"{source}: LISTENER MERGE of {', '.join(others)} is not simulated by the lab; ignored")
        new = [f for f in (_filter_from_value(v, source) for v in added) if f is not None]
        return filters + new  # proto merge appends repeated fields

    # LISTENER_FILTER
    wanted = _get(_get(match, "listener") or {}, "listener_filter")
    new_filter = _filter_from_value(value, source)
    if operation in ("ADD", "INSERT_FIRST", "INSERT_BEFORE", "INSERT_AFTER", "REPLACE", "MERGE") and new_filter is None:
        warnings.append(f"{source}: LISTENER_FILTER {operation} without a filter value; ignored")
        return filters
    if operation == "ADD":
        return filters + [new_filter]
    if operation == "INSERT_FIRST" or (operation == "INSERT_BEFORE" and not wanted):
        return [new_filter] + filters
    if operation == "INSERT_AFTER" and not wanted:
        return filters + [new_filter]
    if operation in ("INSERT_BEFORE", "INSERT_AFTER"):
        out: list[ListenerFilter] = []
        for f in filters:
            if f.name == wanted and operation == "INSERT_BEFORE":
                out.append(new_filter)
            out.append(f)
            if f.name == wanted and operation == "INSERT_AFTER":
                out.append(new_filter)
        return out
    if operation == "REPLACE":
        return [new_filter if wanted and f.name == wanted else f for f in filters] if wanted else filters
    if operation == "REMOVE":
        return [f for f in filters if f.name != wanted] if wanted else filters
    if operation == "MERGE":
        # istiod's mergeListenerFilter: the value's typed_config is merged into filters of the
        # same type (MergeAnyWithAny fails on other types and keeps them as they are).
        if not wanted or new_filter is None or new_filter.typed_config is None:
            return filters
        return [
            ListenerFilter(f.name, _deep_merge(f.typed_config, new_filter.typed_config), f.source + f" + {source}")
            if f.typed_config is not None and f.type_url == new_filter.type_url
            else f
            for f in filters
        ]
    warnings.append(f"{source}: LISTENER_FILTER operation {operation!r} is not simulated by the lab; ignored")
    return filters


# --- the derivation ------------------------------------------------------------------------

def derive_gateway_settings(
    deployment: dict[str, Any],
    mesh_at_pod_start: dict[str, Any] | None,
    envoy_filters: list[dict[str, Any]],
    virtual_services: list[dict[str, Any]],
    pod_labels: dict[str, str],
    *,
    gateways: list[dict[str, Any]] | None = None,
    service: dict[str, Any] | None = None,
) -> GatewaySettings:
    """The gateway pod's listener settings as istiod would push them.

    ``mesh_at_pod_start`` is the parsed ``mesh`` key of the ``istio`` ConfigMap as it was
    when the pod started. Only the pod template's annotations count; annotations on the
    Deployment's own metadata or on the Service never reach the proxy. With ``gateways``
    (Istio Gateway objects) and the gateway ``service``, listeners exist only on the container
    ports Gateway servers land on; without, every listener the lab knows is opened.
    """
    warnings: list[str] = []
    deployment = deployment or {}
    template = _pod_template(deployment)
    namespace = (deployment.get("metadata") or {}).get("namespace") or ROOT_NAMESPACE

    proxy = _proxy_config(deployment, mesh_at_pod_start, warnings)
    listener_filters = _istiod_listener_filters(proxy.pp_from_topology)
    sources = list(proxy.sources)
    _apply_envoy_filters(listener_filters, envoy_filters, namespace, pod_labels, sources, warnings)
    _check_filter_order(listener_filters, warnings)

    servers = None if gateways is None else gateway_servers(gateways, service, deployment, pod_labels, warnings)
    tcp_routes = _tcp_routes(virtual_services or [], servers or {}, warnings)
    if tcp_routes:
        # istiod gives every gateway listener the topology's PROXY filter, the TCP one too
        # (EnvoyFilter patches on the TCP port are not simulated).
        for port in tcp_routes:
            listener_filters.setdefault(port, [istiod_pp_filter()] if proxy.pp_from_topology else [])
    return GatewaySettings(
        tcp_routes=tcp_routes,
        listener_filters=listener_filters,
        pp_sources=sources,
        num_trusted_hops=proxy.num_trusted_hops,
        status_listener_filters=_status_listener_filters(template),
        direct_routes=_direct_routes(virtual_services or [], warnings),
        servers=servers,
        warnings=list(dict.fromkeys(warnings)),  # a patch applied to two listeners warns once
    )


# --- Gateway servers -------------------------------------------------------------------------

# The chart's container port names (istio gateway chart) → the lab's listener keys.
_CHART_PORT_NAMES = {"http2": TRAFFIC_PORT, "https": TLS_PORT, "tcp": TCP_PORT}


def _gateway_selects(gw: dict[str, Any], namespace: str, pod_labels: dict[str, str]) -> bool:
    # Istio's default PILOT_SCOPE_GATEWAY_TO_NAMESPACE=false: a Gateway in any namespace selects by labels.
    selector = (gw.get("spec") or {}).get("selector") or {}
    return bool(selector) and all(pod_labels.get(k) == v for k, v in selector.items())


def _container_port(deployment: dict[str, Any], target: Any) -> int | None:
    """The lab listener (8080/8443) behind a Service targetPort (number or name), by the container port's name."""
    for container in (_pod_template(deployment).get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if target in (port.get("containerPort"), port.get("name")):
                return _CHART_PORT_NAMES.get(str(port.get("name")))
    return target if target in GATEWAY_LISTENER_PORTS else None


def _resolve_ports(number: int, service: dict[str, Any] | None, deployment: dict[str, Any]) -> list[int | None]:
    """istiod's ``resolvePorts``: a server port that is a port of the gateway's Service lands on its
    targetPort; otherwise (legacy selector gateways) on the number itself."""
    targets = [p.get("targetPort", p.get("port")) for p in ((service or {}).get("spec") or {}).get("ports") or []
               if p.get("port") == number]
    if not targets:
        targets = [number]
    return [_container_port(deployment, t) for t in targets]


def gateway_servers(
    gateways: list[dict[str, Any]], service: dict[str, Any] | None, deployment: dict[str, Any],
    pod_labels: dict[str, str], warnings: list[str],
) -> dict[int, list[GatewayServer]]:
    """Container port → the servers of the Gateways that select the gateway pods."""
    namespace = ((deployment or {}).get("metadata") or {}).get("namespace") or ROOT_NAMESPACE
    out: dict[int, list[GatewayServer]] = {}
    for gw in gateways or []:
        if gw.get("kind") not in (None, "Gateway") or not str(gw.get("apiVersion") or ISTIO_API).startswith(ISTIO_API):
            continue  # Gateway API gateways (gateway.networking.k8s.io) are another kind of object
        if not _gateway_selects(gw, namespace, pod_labels or {}):
            continue
        meta = gw.get("metadata") or {}
        source = f"Gateway {meta.get('namespace') or 'default'}/{meta.get('name')}"
        for server in (gw.get("spec") or {}).get("servers") or []:
            port = server.get("port") or {}
            try:
                number = int(port.get("number"))
            except (TypeError, ValueError):
                warnings.append(f"{source}: a server without a port number; istiod rejects it")
                continue
            tls = server.get("tls") or {}
            spec = GatewayServer(
                source=source, number=number, protocol=str(port.get("protocol") or "HTTP").upper(),
                hosts=tuple(str(h) for h in server.get("hosts") or ["*"]),
                tls_mode=_get(tls, "mode") or (None if str(port.get("protocol")).upper() not in ("HTTPS", "TLS") else "SIMPLE"),
                https_redirect=bool(_get(tls, "https_redirect")),
            )
            landed = False
            for listener in _resolve_ports(number, service, deployment):
                if listener is None:
                    continue
                out.setdefault(listener, []).append(spec)
                landed = True
            if not landed:
                warnings.append(f"{source}: server port {number} lands on no port the gateway container exposes "
                                f"through its Service; istiod opens a listener nobody reaches")
    return out


@dataclass(frozen=True)
class _ProxyConfigOutcome:
    pp_from_topology: bool
    num_trusted_hops: int
    sources: tuple[str, ...]


def _proxy_config(
    deployment: dict[str, Any], mesh_at_pod_start: dict[str, Any] | None, warnings: list[str]
) -> _ProxyConfigOutcome:
    """ProxyConfig: mesh defaultConfig merged with the pod template's ``proxy.istio.io/config``."""
    template = _pod_template(deployment)
    default_config = _get(mesh_at_pod_start or {}, "default_config") or {}
    proxy_config = _deep_merge(default_config, {})
    template_annotations = (template.get("metadata") or {}).get("annotations") or {}
    annotation = None
    if PROXY_CONFIG_ANNOTATION in template_annotations:
        annotation = _parse_annotation(str(template_annotations[PROXY_CONFIG_ANNOTATION]), warnings)
        if annotation is not None:
            proxy_config = _deep_merge(proxy_config, annotation)
    if PROXY_CONFIG_ANNOTATION in ((deployment.get("metadata") or {}).get("annotations") or {}):
        warnings.append(
            f"{PROXY_CONFIG_ANNOTATION} on the Deployment's own metadata is ignored by Istio "
            "(only spec.template.metadata.annotations reach the proxy)"
        )

    sources: list[str] = []
    topology = _get(proxy_config, "gateway_topology") or {}
    pp_from_topology = _has_message(topology, "proxy_protocol")
    if _has_message(_get(annotation or {}, "gateway_topology"), "proxy_protocol"):
        sources.append(f"pod-template annotation {PROXY_CONFIG_ANNOTATION}")
    if _has_message(_get(default_config, "gateway_topology"), "proxy_protocol"):
        sources.append("mesh config defaultConfig.gatewayTopology")
    try:
        num_trusted_hops = int(_get(topology, "num_trusted_proxies", 0) or 0)
    except (TypeError, ValueError):
        warnings.append(f"gatewayTopology.numTrustedProxies {_get(topology, 'num_trusted_proxies')!r} is not a number; using 0")
        num_trusted_hops = 0
    return _ProxyConfigOutcome(pp_from_topology, num_trusted_hops, tuple(sources))


def _istiod_listener_filters(pp_from_topology: bool) -> dict[int, list[ListenerFilter]]:
    """Listeners as istiod builds them: PP first, then tls_inspector where SNI matching needs it."""
    listener_filters: dict[int, list[ListenerFilter]] = {}
    for port in GATEWAY_LISTENER_PORTS:
        filters: list[ListenerFilter] = []
        if pp_from_topology:
            filters.append(istiod_pp_filter())
        if port == TLS_PORT:
            filters.append(_tls_inspector())
        listener_filters[port] = filters
    return listener_filters


def _apply_envoy_filters(
    listener_filters: dict[int, list[ListenerFilter]],
    envoy_filters: list[dict[str, Any]],
    namespace: str,
    pod_labels: dict[str, str],
    sources: list[str],
    warnings: list[str],
) -> None:
    """EnvoyFilters that select the gateway, in istiod's order, patched into ``listener_filters``."""
    selected = sorted(
        (ef for ef in envoy_filters or [] if ef.get("kind") == "EnvoyFilter" and _selects(ef, namespace, pod_labels or {})),
        key=_filter_order_key,
    )
    for ef in selected:
        meta = ef.get("metadata") or {}
        source = f"EnvoyFilter {meta.get('namespace') or 'default'}/{meta.get('name')}"
        for cp in _get(ef.get("spec") or {}, "config_patches") or []:
            apply_to = _get(cp, "apply_to")
            if apply_to not in ("LISTENER", "LISTENER_FILTER"):
                continue
            match = cp.get("match") or {}
            if not _context_matches(match):
                continue
            for port in listener_filters:
                if not _listener_matches(match, port):
                    continue
                before = listener_filters[port]
                after = _apply_patch(before, apply_to, match, cp.get("patch") or {}, source, warnings)
                listener_filters[port] = after
                if any(f.is_proxy_protocol and f.source == source for f in after) and source not in sources:
                    sources.append(source)
        for port, filters in listener_filters.items():
            for f in filters:
                if f.source == source and f.typed_config is None:
                    warnings.append(_untyped_filter_warning(f, port))


def _check_filter_order(listener_filters: dict[int, list[ListenerFilter]], warnings: list[str]) -> None:
    for port, filters in listener_filters.items():
        names = [f.name for f in filters]
        pp_index = next((i for i, f in enumerate(filters) if f.is_proxy_protocol), None)
        tls_index = next((i for i, f in enumerate(filters) if f.is_tls_inspector), None)
        if pp_index is not None and tls_index is not None and tls_index < pp_index:
            warnings.append(
                f"listener 0.0.0.0_{port}: the PROXY-protocol filter comes after tls_inspector ({' → '.join(names)}); "
                "tls_inspector reads the PROXY header as the first bytes, finds no ClientHello and SNI matching fails"
            )


def _status_listener_filters(template: dict[str, Any]) -> list[ListenerFilter]:
    """The static status listener (bootstrap): a PROXY filter only with the env set at pod start,
    and only in a release that knows the env (Istio ≥ 1.27, PR #55986); older pilot-agents ignore it."""
    if not _status_pp_env(template):
        return []
    image = next((c.get("image") for c in (template.get("spec") or {}).get("containers") or []
                  if c.get("name") == "istio-proxy"), None)
    if supports_status_port_pp(image_version(image)) is False:
        return []
    return [
        ListenerFilter(
            PP_FILTER_NAME,
            {"@type": PP_TYPE, "allow_requests_without_proxy_protocol": True},
            f"env {STATUS_PP_ENV}",
        )
    ]


def _untyped_filter_warning(f: ListenerFilter, port: int) -> str:
    # Measured with Envoy 1.40 (docs/measured-envoy.md): extensions are found by typed_config's
    # type URL only; a filter given by name alone makes Envoy reject the listener.
    return (
        f"{f.source}: listener filter {f.name!r} on 0.0.0.0_{port} has no typed_config; Envoy 1.40 no longer "
        "looks extensions up by name and rejects the listener (LDS update_rejected): a running gateway keeps "
        "its previous listener, a new pod gets no listener on this port"
    )


def _status_pp_env(template: dict[str, Any]) -> bool:
    for container in (template.get("spec") or {}).get("containers") or []:
        for env in container.get("env") or []:
            if env.get("name") == STATUS_PP_ENV:
                # pilot-agent reads it with strconv.ParseBool
                return str(env.get("value", "")).strip() in ("1", "t", "T", "true", "TRUE", "True")
    return False


def _tcp_routes(virtual_services: list[dict[str, Any]], servers: dict[int, list[GatewayServer]],
                warnings: list[str]) -> dict[int, TcpRoute]:
    """Container port → the first VirtualService ``tcp:`` route bound to a TCP server that lands there
    (istiod: a TCP server's filter chain is a tcp_proxy to the route's destination; the first match wins)."""
    out: dict[int, TcpRoute] = {}
    for vs in virtual_services:
        if vs.get("kind") not in (None, "VirtualService"):
            continue
        spec = vs.get("spec") or {}
        meta = vs.get("metadata") or {}
        name = f"VirtualService {meta.get('namespace') or 'default'}/{meta.get('name')}"
        bound = {str(g).split("/")[-1] for g in spec.get("gateways") or [] if g != "mesh"}
        for tcp in spec.get("tcp") or []:
            ports = {int(m["port"]) for m in tcp.get("match") or [] if isinstance(m, dict) and m.get("port")}
            dest = ((tcp.get("route") or [{}])[0] or {}).get("destination") or {}
            try:
                route = TcpRoute(name, str(dest["host"]), int((dest.get("port") or {})["number"]))
            except (KeyError, TypeError, ValueError):
                warnings.append(f"{name}: a tcp route without destination host and port.number; istiod rejects it")
                continue
            for container_port, on_port in servers.items():
                for server in on_port:
                    if (server.protocol == "TCP" and server.source.split("/")[-1] in bound
                            and (not ports or server.number in ports)):
                        out.setdefault(container_port, route)
    return out


def _direct_routes(virtual_services: list[dict[str, Any]], warnings: list[str]) -> list[DirectResponseRoute]:
    out: list[DirectResponseRoute] = []
    for vs in virtual_services:
        if vs.get("kind") not in (None, "VirtualService"):
            continue
        spec = vs.get("spec") or {}
        gateways = spec.get("gateways") or []
        name = f"VirtualService {(vs.get('metadata') or {}).get('namespace') or 'default'}/{(vs.get('metadata') or {}).get('name')}"
        if not [g for g in gateways if g != "mesh"]:
            warnings.append(f"{name} is bound to no gateway (spec.gateways); it does not reach the ingress gateway")
            continue
        for http in spec.get("http") or []:
            direct = _get(http, "direct_response")
            if not isinstance(direct, dict):
                if _get(http, "fault") is not None:
                    warnings.append(
                        f"{name}: fault on a route to a destination is not simulated by the lab (only on "
                        "directResponse routes); ignored"
                    )
                continue
            status = int(direct.get("status") or 200)
            body_spec = direct.get("body") or {}
            body = body_spec.get("string")
            if body is None and body_spec.get("bytes") is not None:
                body = base64.b64decode(body_spec["bytes"]).decode("utf-8", "replace")
            delay = _fault_delay(_get(http, "fault"), name, warnings)
            for kind, path in _uri_matches(http, name, warnings):
                out.append(DirectResponseRoute(path, status, body or "", kind, delay))
    return out


def _uri_matches(http: dict[str, Any], name: str, warnings: list[str]) -> list[tuple[str, str]]:
    """(kind, path) per match of an HTTP route, as istiod's ``TranslateRouteMatch`` builds the path part.

    A match without ``uri`` matches every path (prefix ``/``); a route without ``match`` too. A
    match with conditions the lab does not evaluate (headers, method, …) is left out rather than
    widened to every request.
    """
    out: list[tuple[str, str]] = []
    for m in http.get("match") or []:
        if not isinstance(m, dict):
            continue
        others = sorted(k for k in m if _snake(k) not in ("uri", "name", "ignore_uri_case"))
        if others:
            warnings.append(f"{name}: match on {', '.join(others)} is not simulated by the lab; that match is ignored")
            continue
        uri = m.get("uri")
        if not isinstance(uri, dict):
            out.append(("prefix", "/"))
        elif _get(uri, "prefix") is not None:
            out.append(("prefix", str(_get(uri, "prefix"))))
        elif _get(uri, "exact") is not None:
            out.append(("exact", str(_get(uri, "exact"))))
        else:
            warnings.append(f"{name}: uri match {json.dumps(uri)[:80]} is not simulated by the lab (prefix and "
                            "exact are); that match is ignored")
    if not http.get("match"):
        out.append(("prefix", "/"))
    return out


# Go's time.ParseDuration units (what Istio accepts for Duration fields such as ``fixedDelay``).
_DURATION_UNITS_NS = {"h": 3600 * 10**9, "m": 60 * 10**9, "s": 10**9, "ms": 10**6, "us": 10**3, "µs": 10**3, "ns": 1}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|ns)")


def parse_duration_ns(text: Any) -> int | None:
    """``"2ms"``, ``"0.5s"``, ``"1m30s"`` → nanoseconds; ``None`` if it is not a duration."""
    if not isinstance(text, str) or not text.strip():
        return None
    text = text.strip()
    pos, total = 0, 0
    for part in _DURATION_PART.finditer(text):
        if part.start() != pos:
            return None
        total += round(float(part.group(1)) * _DURATION_UNITS_NS[part.group(2)])
        pos = part.end()
    return total if pos == len(text) else None


def _fault_delay(fault: Any, name: str, warnings: list[str]) -> FaultDelay | None:
    """istiod's ``TranslateFault`` for the delay part; abort is not simulated by the lab."""
    if not isinstance(fault, dict):
        return None
    if _get(fault, "abort") is not None:
        warnings.append(f"{name}: fault.abort is not simulated by the lab; ignored")
    delay = _get(fault, "delay")
    if not isinstance(delay, dict):
        return None
    fixed = _get(delay, "fixed_delay")
    if fixed is None:
        if _get(delay, "exponential_delay") is not None:
            # istiod logs "Exponential faults are not yet supported" and drops the delay
            warnings.append(f"{name}: fault.delay.exponentialDelay is not supported by istiod; no delay")
        else:
            warnings.append(f"{name}: fault.delay without fixedDelay; no delay")
        return None
    ns = parse_duration_ns(fixed)
    if ns is None or ns < 10**6:
        warnings.append(
            f"{name}: fault.delay.fixedDelay {fixed!r} is not a duration of at least 1ms (Istio rejects the "
            "VirtualService); no delay"
        )
        return None
    percentage = _get(delay, "percentage")
    if isinstance(percentage, dict):
        try:
            value = float(_get(percentage, "value", 0) or 0)
        except (TypeError, ValueError):
            value = -1.0
        if not 0.0 <= value <= 100.0:
            warnings.append(f"{name}: fault.delay.percentage.value {_get(percentage, 'value')!r} is not within "
                            "0-100 (Istio rejects the VirtualService); no delay")
            return None
        return FaultDelay(ns, int(value * 10000), "MILLION")
    try:
        percent = int(_get(delay, "percent", 0) or 0)
    except (TypeError, ValueError):
        percent = 0
    if percent == 0:
        # istio/istio#39969, istio/api#2522: an unset percentage is 0 %, not 100 %
        warnings.append(
            f"{name}: fault.delay has no percentage; istiod sends 0 % (no request is delayed) — set "
            "percentage.value: 100 to delay every request"
        )
    return FaultDelay(ns, max(0, min(percent, 100)), "HUNDRED")
