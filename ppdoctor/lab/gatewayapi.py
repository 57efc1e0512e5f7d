"""The lab's second ingress gateway, made the Gateway API way: istiod's deployment controller in miniature.

A ``gateway.networking.k8s.io/v1`` Gateway with ``gatewayClassName: istio`` makes istiod generate a
Deployment and a Service named ``<gateway>-istio`` (istio ``pilot/pkg/config/kube/gateway/
deploymentcontroller.go`` and the ``kube-gateway`` injection template), labelled and selected by
``gateway.networking.k8s.io/gateway-name``. Their labels and annotations (Service, Deployment and
pod template alike) come from ``extractInfrastructureMetadata``: when ``spec.infrastructure.
annotations`` is set, those *replace* the Gateway's own ``metadata.annotations`` (which are then
ignored, ``proxy.istio.io/config`` included); unset, the Gateway's annotations are copied. Keys with
the ``gateway.networking.k8s.io/`` prefix are never copied.

The generated Service gets its own NLB and target group through the lab's AWS LB Controller
(``lbc.reconcile`` applies the Service's annotations to the target group), its pod a real Envoy
whose listeners derive from the generated pod template (``istio.derive_gateway_settings``), and
an NLB emulator forwards to it. A change to the Gateway regenerates the objects; a changed pod
template rolls the pod (Envoy restarts), a changed Service is reconciled into the target group.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..drain import safe_pre_stop
from . import addresses, lbc, manifests
from .scenario import ADMIN_PORT, STATUS_PORT, TLS_PORT, TRAFFIC_PORT, GatewayApiSpec, Scenario

GATEWAY_CLASS = "istio"
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
RESERVED_PREFIX = "gateway.networking.k8s.io/"
# Loopback addresses of the second gateway's pod and of its NLB's ENI (see addresses.py's plan).
POD_IP = "127.1.2.11"
NLB_IP = "127.1.1.11"
# kube-gateway template: these annotations are not copied onto the pod template.
_POD_OMIT = ("kubectl.kubernetes.io/last-applied-configuration", "gateway.istio.io/name-override",
             "gateway.istio.io/service-account", "gateway.istio.io/controller-version")


def generated_name(gateway_name: str) -> str:
    """``<gateway>-<gatewayClassName>`` (deploymentcontroller.go, no name-override annotation)."""
    return f"{gateway_name}-{GATEWAY_CLASS}"


def gateway_resource(spec: GatewayApiSpec) -> dict[str, Any]:
    gw: dict[str, Any] = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "annotations": dict(spec.annotations),
                     "labels": dict(spec.labels)},
        "spec": {"gatewayClassName": GATEWAY_CLASS,
                 "listeners": [{"name": "http", "port": 80, "protocol": "HTTP",
                                "allowedRoutes": {"namespaces": {"from": "All"}}}]},
    }
    infra: dict[str, Any] = {}
    if spec.infrastructure_annotations is not None:
        infra["annotations"] = dict(spec.infrastructure_annotations)
    if spec.infrastructure_labels is not None:
        infra["labels"] = dict(spec.infrastructure_labels)
    if infra:
        gw["spec"]["infrastructure"] = infra
    return gw


def infrastructure_metadata(gateway: dict[str, Any], *, labels: bool) -> dict[str, str]:
    """extractInfrastructureMetadata: spec.infrastructure's map when set, else the Gateway's own metadata."""
    infra = (gateway.get("spec") or {}).get("infrastructure") or {}
    key = "labels" if labels else "annotations"
    if infra.get(key) is not None:
        return {k: str(v) for k, v in infra[key].items() if not k.startswith(RESERVED_PREFIX)}
    return dict((gateway.get("metadata") or {}).get(key) or {})


@dataclass(frozen=True)
class Ports:
    traffic: int
    tls: int
    status: int
    admin: int

    def as_dict(self) -> dict[int, int]:
        return {TRAFFIC_PORT: self.traffic, TLS_PORT: self.tls, STATUS_PORT: self.status, ADMIN_PORT: self.admin}


def generated_objects(gateway: dict[str, Any], ports: Ports, *, lb_hostname: str | None) -> list[dict[str, Any]]:
    """The Deployment and Service istiod generates for ``gateway`` (lab ports: real host ports)."""
    meta = gateway["metadata"]
    ns, gw_name = meta["namespace"], meta["name"]
    name = generated_name(gw_name)
    labels = infrastructure_metadata(gateway, labels=True)
    annotations = infrastructure_metadata(gateway, labels=False)
    selector = {GATEWAY_NAME_LABEL: gw_name}
    common_labels = {**labels, **selector, "gateway.istio.io/managed": "istio.io-gateway-controller"}
    owner = [{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "name": gw_name,
              "uid": meta.get("uid", "00000000-0000-0000-0000-000000000001")}]
    pod_annotations = {k: v for k, v in annotations.items() if k not in _POD_OMIT}
    pod_annotations.update({"istio.io/rev": "default", "prometheus.io/path": "/stats/prometheus",
                            "prometheus.io/port": "15020", "prometheus.io/scrape": "true",
                            "inject.istio.io/templates": "gateway"})
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": dict(common_labels), "annotations": dict(annotations),
                     "ownerReferences": copy.deepcopy(owner)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(selector)},
            "template": {
                "metadata": {"labels": {**common_labels, "sidecar.istio.io/inject": "false",
                                        "service.istio.io/canonical-name": name, "istio.io/gateway-name": gw_name},
                             "annotations": pod_annotations},
                # A well-run cluster's customization of the generated Deployment (istiod's gateway deployment
                # template / the Gateway's parametersRef): a preStop sleep past the NLB's deregistration, as the
                # lab's main gateway has (drain.py, docs/scenarios.md) — so PPD021 stays out of these scenarios.
                "spec": {"serviceAccountName": name, "terminationGracePeriodSeconds": safe_pre_stop(None)[1], "containers": [{
                    "name": "istio-proxy",
                    "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(safe_pre_stop(None)[0])]}}},
                    "image": f"docker.io/istio/proxyv2:{manifests.ISTIO_VERSION}",
                    "args": ["proxy", "router", "--domain", "$(POD_NAMESPACE).svc.cluster.local"],
                    "ports": [
                        {"containerPort": ports.status, "name": "status-port", "protocol": "TCP"},
                        {"containerPort": ports.traffic, "name": "http", "protocol": "TCP"},
                        {"containerPort": ports.admin, "name": "http-envoy-admin", "protocol": "TCP"},
                    ],
                    "env": [{"name": "ISTIO_META_ROUTER_MODE", "value": "sni-dnat"}],
                }]},
            },
        },
    }
    status: dict[str, Any] = {"loadBalancer": {"ingress": [{"hostname": lb_hostname}]} if lb_hostname else {}}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": dict(common_labels), "annotations": dict(annotations),
                     "ownerReferences": copy.deepcopy(owner)},
        "spec": {
            "type": "LoadBalancer",
            "selector": dict(selector),
            "ports": [
                {"name": "status-port", "port": STATUS_PORT, "targetPort": ports.status, "protocol": "TCP",
                 "appProtocol": "tcp"},
                {"name": "http", "port": 80, "targetPort": ports.traffic, "protocol": "TCP", "appProtocol": "http"},
            ],
        },
        "status": status,
    }
    return [deployment, service]


class GatewayApiLab:
    """The second gateway's objects, AWS resources, Envoy and NLB emulator, owned by the lab world."""

    def __init__(self, scenario: Scenario, state_dir: Path) -> None:
        self.spec = scenario.gateway_api
        self.scenario = scenario
        self.state_dir = Path(state_dir)
        self.name = generated_name(self.spec.name)
        self.ports: Ports | None = None
        self.aws: Any = None  # AwsWorld of its NLB
        self.gateway: Any = None  # GatewayProcess
        self.nlb: Any = None  # NlbEmulator
        self._store: Any = None
        self._elbv2: Any = None
        self._mesh: dict[str, Any] = {}
        self._lock = asyncio.Lock()
        self._lbc_lock = asyncio.Lock()

    async def start(self, *, world: Any) -> None:
        """Seed the Gateway and its generated objects, its NLB, start Envoy and the emulator."""
        from .awsshape import add_network_load_balancer, owner_tags
        from .gateway import GatewayProcess, free_port
        from .nlb import NlbEmulator

        self.ports = Ports(traffic=free_port(POD_IP), tls=free_port(POD_IP), status=free_port(POD_IP),
                           admin=free_port(POD_IP))
        self._store = world.kube.store
        self._elbv2 = world._elbv2
        tags = owner_tags({"elbv2.k8s.aws/cluster": "lab"}, self.spec.namespace, self.name, 80)
        lb_tags = {"elbv2.k8s.aws/cluster": "lab", "service.k8s.aws/stack": f"{self.spec.namespace}/{self.name}",
                   "service.k8s.aws/resource": "LoadBalancer"}
        self.aws = await asyncio.to_thread(
            add_network_load_balancer, world.moto.endpoint_url, world.aws, name=self.spec.load_balancer_name,
            nlb_ip=NLB_IP, target_ip=POD_IP, target_port=self.ports.traffic, listener_port=80,
            tg_name="k8s-gwapi-publicgw-80", lb_tags=lb_tags, tg_tags=tags)
        gateway = gateway_resource(self.spec)
        self._store.put(gateway)
        deployment, service = generated_objects(gateway, self.ports, lb_hostname=self.aws.lb_dns_name)
        self._store.put(deployment)
        self._store.put(service)
        self._store.put(self._pod(deployment, ready=True))
        await self._reconcile_lbc()
        mesh_cm = self._store.get("configmaps", manifests.GATEWAY_NS, "istio")
        self._mesh = yaml.safe_load((mesh_cm or {}).get("data", {}).get("mesh", "")) or {}
        self.gateway = GatewayProcess(self.state_dir / "gateway-api", pod_ip=POD_IP)
        await self.gateway.start(self._settings(), **self._gateway_kwargs(world))
        self.nlb = NlbEmulator(world.moto.endpoint_url, self.aws, world.moto, listen_host=NLB_IP,
                               vpc_cidr=addresses.VPC_CIDR)
        await self.nlb.start()
        self._world = world

    async def stop(self) -> None:
        for part in (self.nlb, self.gateway):
            if part is not None:
                try:
                    await part.stop()
                except Exception:  # keep stopping the rest
                    pass
        self.nlb = self.gateway = None

    # --- derived ---------------------------------------------------------------------------

    def _pod(self, deployment: dict[str, Any], *, ready: bool, started_at: str | None = None) -> dict[str, Any]:
        return manifests.pod_for(deployment, ip=POD_IP, started_at=started_at or manifests.now_rfc3339(), ready=ready)

    def _gateway_kwargs(self, world: Any) -> dict[str, Any]:
        assert self.ports is not None
        return {"pod_ip": POD_IP, "traffic_port": self.ports.traffic, "tls_port": self.ports.tls,
                "status_port": self.ports.status, "admin_port": self.ports.admin,
                "echo_upstream": (addresses.ECHO_POD_IP, world.ports.echo)}

    def _settings(self) -> Any:
        from .istio import derive_gateway_settings

        deployment = self._store.get("deployments", self.spec.namespace, self.name)
        labels = deployment["spec"]["template"]["metadata"].get("labels", {})
        filters = [o for o in self._store.list("envoyfilters") if o]
        services = [o for o in self._store.list("virtualservices") if o]
        return derive_gateway_settings(deployment, self._mesh, filters, services, labels)

    # --- reacting ---------------------------------------------------------------------------

    def on_event(self, event: str, obj: dict[str, Any], old: dict[str, Any] | None) -> Any:
        """A coroutine to run for this change, or None."""
        kind = obj.get("kind")
        meta = obj.get("metadata") or {}
        where = (meta.get("namespace"), meta.get("name"))
        if (kind == "Gateway" and obj.get("apiVersion", "").startswith("gateway.networking.k8s.io/")
                and where == (self.spec.namespace, self.spec.name) and event != "DELETED"):
            return self._regenerate()
        if kind == "Deployment" and where == (self.spec.namespace, self.name):
            if old is None or (old.get("spec") or {}).get("template") != (obj.get("spec") or {}).get("template"):
                return self._rollout()
        if kind == "Service" and where == (self.spec.namespace, self.name):
            if lbc.managed_by_controller(obj, controller_installed=self.scenario.kubernetes.lbc_installed):
                return self._reconcile_lbc()
        if kind in ("EnvoyFilter", "VirtualService"):
            return self._push()
        return None

    async def _regenerate(self) -> None:
        """istiod's deployment controller: apply the generated objects of the Gateway as it is now."""
        assert self.ports is not None and self.aws is not None
        gateway = self._store.get(("gateway.networking.k8s.io", "v1", "gateways"), self.spec.namespace, self.spec.name)
        if gateway is None:
            return
        for desired in generated_objects(gateway, self.ports, lb_hostname=self.aws.lb_dns_name):
            plural = "deployments" if desired["kind"] == "Deployment" else "services"
            current = self._store.get(plural, self.spec.namespace, self.name)
            if current is None or any(current.get(k) != desired.get(k) for k in ("spec",)) or \
                    current["metadata"].get("annotations") != desired["metadata"]["annotations"] or \
                    current["metadata"].get("labels") != desired["metadata"]["labels"]:
                merged = copy.deepcopy(current) if current else desired
                merged["metadata"]["annotations"] = desired["metadata"]["annotations"]
                merged["metadata"]["labels"] = desired["metadata"]["labels"]
                merged["spec"] = desired["spec"]
                self._store.put(merged)

    async def _rollout(self) -> None:
        async with self._lock:
            for pod in self._store.list("pods", self.spec.namespace):
                if (pod["metadata"].get("labels") or {}).get(GATEWAY_NAME_LABEL) == self.spec.name:
                    self._store.delete("pods", self.spec.namespace, pod["metadata"]["name"])
            deployment = self._store.get("deployments", self.spec.namespace, self.name)
            started_at = manifests.now_rfc3339()
            self._store.put(self._pod(deployment, ready=False, started_at=started_at))
            mesh_cm = self._store.get("configmaps", manifests.GATEWAY_NS, "istio")
            self._mesh = yaml.safe_load((mesh_cm or {}).get("data", {}).get("mesh", "")) or {}
            await self.gateway.restart(self._settings(), **self._gateway_kwargs(self._world))
            self._store.put(self._pod(deployment, ready=True, started_at=started_at))

    async def _push(self) -> None:
        async with self._lock:
            if self.gateway is not None:
                await self.gateway.update_listeners(self._settings())

    async def _reconcile_lbc(self) -> None:
        assert self.ports is not None
        async with self._lbc_lock:
            service = self._store.get("services", self.spec.namespace, self.name)
            if service is None or not lbc.managed_by_controller(
                    service, controller_installed=self.scenario.kubernetes.lbc_installed):
                return
            await asyncio.to_thread(lbc.reconcile, self._elbv2, self.aws.tg_arn, service, self.ports.as_dict())
