"""Which container ports the Istio Gateways' servers open on the gateway pods, for the kube probe.

istiod builds a gateway listener only for a Gateway server that selects the pods; the server's
port number lands on the targetPort of the gateway Service port with that number, or on the
number itself (``resolvePorts`` in istiod's gateway merging). A target port no server lands on
has no listener: connections are refused (istio/istio #48492).
"""

from __future__ import annotations

from typing import Any

from .model import Observation


def selects(gateway: dict[str, Any], pod_labels: dict[str, str]) -> bool:
    selector = (gateway.get("spec") or {}).get("selector") or {}
    return bool(selector) and all(pod_labels.get(k) == v for k, v in selector.items())


def _container_port(deployment: dict[str, Any], target: Any) -> Any:
    """A named targetPort → the container port number (what the NLB's IP targets use)."""
    if isinstance(target, int):
        return target
    for container in (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target:
                return port.get("containerPort")
    return target


def landing_ports(number: int, service: dict[str, Any], deployment: dict[str, Any]) -> list[Any]:
    targets = [p.get("targetPort", p.get("port")) for p in (service.get("spec") or {}).get("ports") or []
               if p.get("port") == number]
    return [_container_port(deployment, t) for t in targets] or [number]


def server_ports(gateways: list[dict[str, Any]], service: dict[str, Any], deployment: dict[str, Any]) -> list[dict[str, Any]]:
    labels = (((deployment.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
    out = []
    for gw in gateways:
        if not selects(gw, labels):
            continue
        meta = gw.get("metadata") or {}
        for server in (gw.get("spec") or {}).get("servers") or []:
            port = server.get("port") or {}
            number = port.get("number")
            if not isinstance(number, int):
                continue
            out.append({"gateway": f"{meta.get('namespace')}/{meta.get('name')}", "number": number,
                        "protocol": port.get("protocol"), "hosts": server.get("hosts") or [],
                        "https_redirect": bool((server.get("tls") or {}).get("httpsRedirect")),
                        "tls_mode": (server.get("tls") or {}).get("mode"),
                        "container_ports": landing_ports(number, service, deployment)})
    return out


def add_server_facts(obs: Observation, gateways: Any, service: dict[str, Any], deployment: dict[str, Any]) -> None:
    if isinstance(gateways, str):
        obs.fact("gateway.servers", None, f"Gateways unknown: {gateways}")
        return
    servers = server_ports(gateways, service, deployment)
    obs.fact("gateway.servers", servers)
    obs.fact("gateway.server_container_ports", sorted({p for s in servers for p in s["container_ports"] if isinstance(p, int)}))
    # The Service ports (number → container port): what a new server would have to use to land on a port.
    obs.fact("svc.port_map", [{"port": p.get("port"), "name": p.get("name"),
                               "container_port": _container_port(deployment, p.get("targetPort", p.get("port")))}
                              for p in (service.get("spec") or {}).get("ports") or []])
