"""The running lab: moto, the Kubernetes API, Envoy as the gateway pod, the echo pod and the NLB emulator.

One asyncio loop owns everything. Behaviour follows *state*: the scenario seeds AWS and
Kubernetes, and afterwards every change made through boto3 or the kubernetes client is
picked up the way production picks it up:
- a Deployment pod-template change replaces the gateway pod: the new pod gets a new address
  and Envoy with the mesh config of *now*; for IP targets the controller registers the new
  pod and deregisters the old, and the old pod keeps serving as long as its preStop sleep and
  Istio's drain say (ppdoctor/drain.py, scaled by the lab's time factor), then stops;
- a change to the ``istio`` ConfigMap does nothing to running pods (Istio reads ProxyConfig
  at proxy start);
- an EnvoyFilter / VirtualService change is pushed live (LDS update, no restart);
- a Service annotation change is reconciled into the target group by the lab's AWS LB
  Controller when it manages the Service;
- target-group attribute and health-check changes reach the NLB emulator by polling.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import secrets
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from .. import config as cfgmod
from ..errors import LabError
from .. import drain
from . import addresses, lbc, manifests
from .nlb_idle import LAB_IDLE_TIMEOUT_SCALE
from .scenario import Scenario

log = logging.getLogger("ppdoctor.lab")

ENDPOINTS_FILE = "lab.json"
CONFIG_FILE = "ppdoctor.toml"
KUBECONFIG_FILE = "kubeconfig"
KUBE_REQUESTS_FILE = "kube-requests.json"


@dataclass(frozen=True)
class LabEndpoints:
    scenario: str
    config: str
    nlb: str
    gateway: str
    gateway_tls: str
    gateway_status: str
    gateway_admin: str
    echo: str
    echo_path: str
    aws_endpoint_url: str
    region: str
    kubeconfig: str
    target_group_arn: str
    load_balancer_arn: str
    client_source: str
    pid: int
    # the current gateway pod's address, and every address a gateway pod may have (probes/context.py
    # moves a lab config's gateway.direct/admin host that names one of them to the current pod)
    gateway_pod_ip: str = ""
    gateway_pod_ips: tuple[str, ...] = ()

    def public(self) -> dict[str, Any]:
        """The keys `ppdoctor lab up --json` promises."""
        d = asdict(self)
        keys = ("config", "nlb", "gateway", "gateway_admin", "echo_path", "aws_endpoint_url",
                "region", "kubeconfig", "target_group_arn")
        return {k: d[k] for k in keys} | {"scenario": self.scenario}


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class LabWorld:
    def __init__(self, scenario: Scenario, state_dir: Path) -> None:
        self.scenario = scenario
        self.state_dir = Path(state_dir)
        self.moto: Any = None
        self.aws: Any = None
        self.kube: Any = None
        self.gateway: Any = None
        self.echo: Any = None
        self.nlb: Any = None
        self.nlb_tls: Any = None  # the first NLB's second listener (443 → 8443), its own emulator
        self.nlb_tcp: Any = None  # the scenario's TCP listener (aws.tcp_listener_port → 31400), its own emulator
        self.aws_tcp: Any = None
        self.greeter: Any = None  # the server-first backend behind the gateway's TCP route (lab/greeter.py)
        self.aws_tls: Any = None
        self.gwapi: Any = None  # the Gateway API gateway (gatewayapi.GatewayApiLab)
        self.ports: manifests.PortMap | None = None
        self.endpoints: LabEndpoints | None = None
        self._mesh_at_pod_start: dict[str, Any] = {}
        self.pod_ip = addresses.GATEWAY_POD_IP  # the current gateway pod's address
        self.terminating: dict[str, Any] = {}  # address → GatewayProcess of a terminating gateway pod
        self.rollouts = 0
        self._gateway_lock = asyncio.Lock()
        self._lbc_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._elbv2: Any = None
        self.events: list[dict[str, Any]] = []
        self.caller_stats: dict[str, Any] = {}  # in-cluster caller name → incluster.CallerStats

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> LabEndpoints:
        try:
            return await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> LabEndpoints:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        _check_loopback_aliases()
        from .aws import MotoServer, seed_aws
        from .gateway import free_port

        sc = self.scenario
        gw_ip = addresses.GATEWAY_POD_IP
        # Every gateway pod, wherever a rollout puts it, listens on the same container ports.
        self.ports = manifests.PortMap(
            traffic=_free_on_all(), tls=_free_on_all(), status=_free_on_all(),
            admin=_free_on_all(), echo=free_port(addresses.ECHO_POD_IP),
            tcp=_free_on_all() if sc.aws.tcp_listener_port else 0,
        )
        port_map = self.ports.as_dict()

        # AWS
        self.moto = MotoServer()
        await asyncio.to_thread(self.moto.start)
        # The NLB's TLS listener certificate (its own pair, imported into moto's ACM), made at lab start.
        from .envoycfg import ensure_tls_cert

        self.nlb_tls_cert = None
        if sc.aws.listener_protocol == "TLS":
            (self.state_dir / "nlb").mkdir(parents=True, exist_ok=True)
            self.nlb_tls_cert = ensure_tls_cert(self.state_dir / "nlb")
        self.aws = await asyncio.to_thread(
            functools.partial(seed_aws, self.moto.endpoint_url, sc.aws, target_ip=gw_ip, port_map=port_map,
                              tls_cert=self.nlb_tls_cert)
        )
        self._elbv2 = _elbv2_client(self.moto.endpoint_url, sc.aws.region)

        # Kubernetes
        from .kubeapi import KubeApiServer, write_kubeconfig

        deployment = manifests.gateway_deployment(sc, self.ports)
        started = manifests.now_rfc3339()
        mesh_at_start = manifests.mesh_configmap(sc, with_topology=not sc.kubernetes.mesh.pods_predate_change)
        objects = [
            *manifests.base_objects(),
            mesh_at_start,
            deployment,
            manifests.gateway_service(sc, self.ports, lb_hostname=self.aws.lb_dns_name),
            manifests.pod_for(deployment, ip=gw_ip, started_at=started),
            *manifests.echo_objects(sc, self.ports),
            *self._echo_pods(),
            *manifests.lbc_objects(sc, tg_arn=self.aws.tg_arn),
            *manifests.extra_objects(sc),
            *self._caller_objects(),
        ]
        token = secrets.token_urlsafe(24)
        self.kube = KubeApiServer(objects, token=token, host=addresses.CONTROL_PLANE_IP, port=0)
        self.kube.resolve_pod_port = self._resolve_pod_port
        await self.kube.start()
        kubeconfig = self.state_dir / KUBECONFIG_FILE
        write_kubeconfig(kubeconfig, self.kube.url, token)

        # Pods: echo, then the gateway (Envoy) with the mesh config it starts with.
        from ..echo.server import start_echo, variant_for_image

        self.echo = await start_echo(addresses.ECHO_POD_IP, self.ports.echo, variant_for_image(sc.kubernetes.echo.image))
        if sc.aws.tcp_listener_port:
            from .greeter import start_greeter

            self.greeter = await start_greeter(addresses.ECHO_POD_IP)
        self._mesh_at_pod_start = yaml.safe_load(mesh_at_start["data"]["mesh"]) or {}
        from .gateway import GatewayProcess

        self.gateway = GatewayProcess(self.state_dir / "gateway")
        await self.gateway.start(self._gateway_settings(), **self._gateway_kwargs())
        if sc.kubernetes.mesh.pods_predate_change:
            # The istio ConfigMap gets gatewayTopology after the pod started.
            await asyncio.sleep(1.1)  # RFC 3339 timestamps have one-second resolution
            self.kube.store.put(manifests.mesh_configmap(sc, with_topology=True))

        # NLB
        from .nlb import NlbEmulator

        self.nlb = NlbEmulator(self.moto.endpoint_url, self.aws, self.moto, vpc_cidr=addresses.VPC_CIDR,
                               vpc_endpoint_id=sc.client.vpc_endpoint_id, privatelink=sc.client.privatelink,
                               listen_host_v6=_v6_listener(sc.client.source),
                               idle_timeout_scale=LAB_IDLE_TIMEOUT_SCALE, tls_cert=self.nlb_tls_cert)
        await self.nlb.start()
        await self._start_discovery_topology()

        self.kube.store.subscribe(self._on_kube_event)
        self._start_callers()
        self.endpoints = self._write_endpoints(kubeconfig)
        return self.endpoints

    async def _start_discovery_topology(self) -> None:
        """What discovery chooses between: a 443 listener on the NLB and a Gateway API gateway with its own NLB."""
        from .awsshape import add_listener, owner_tags
        from .nlb import NlbEmulator

        sc = self.scenario
        assert self.ports is not None
        if sc.aws.tls_listener:
            tg = sc.aws.target_group
            self.aws_tls = await asyncio.to_thread(
                add_listener, self.moto.endpoint_url, self.aws, listener_port=443, target_port=self.ports.tls,
                tg_name=f"{tg.name[:26]}-tls" if tg.name else "k8s-istiosys-istioing-443",
                tags=owner_tags(tg.tags, manifests.GATEWAY_NS, manifests.GATEWAY_NAME, 443),
                attributes=tg.attributes)
            self.nlb_tls = NlbEmulator(self.moto.endpoint_url, self.aws_tls, self.moto, vpc_cidr=addresses.VPC_CIDR,
                                       vpc_endpoint_id=sc.client.vpc_endpoint_id)
            await self.nlb_tls.start()
        if sc.aws.tcp_listener_port:
            tg = sc.aws.target_group
            self.aws_tcp = await asyncio.to_thread(
                add_listener, self.moto.endpoint_url, self.aws, listener_port=sc.aws.tcp_listener_port,
                target_port=self.ports.tcp, tg_name=f"{tg.name[:26]}-tcp" if tg.name else "k8s-istiosys-istioing-tcp",
                tags=owner_tags(tg.tags, manifests.GATEWAY_NS, manifests.GATEWAY_NAME, sc.aws.tcp_listener_port),
                attributes=tg.attributes)
            self.nlb_tcp = NlbEmulator(self.moto.endpoint_url, self.aws_tcp, self.moto, vpc_cidr=addresses.VPC_CIDR,
                                       vpc_endpoint_id=sc.client.vpc_endpoint_id)
            await self.nlb_tcp.start()
        if sc.gateway_api.enabled:
            from .gatewayapi import GatewayApiLab

            self.gwapi = GatewayApiLab(sc, self.state_dir)
            await self.gwapi.start(world=self)

    # --- in-cluster callers (pods calling the gateway's ClusterIP, no PROXY header) ------------

    def _caller_objects(self) -> list[dict[str, Any]]:
        from .incluster import caller_ips, caller_objects

        callers = self.scenario.kubernetes.in_cluster_callers
        return [o for c, ip in zip(callers, caller_ips(callers)) for o in caller_objects(c, ip)]

    def _start_callers(self) -> None:
        from .incluster import CallerStats, caller_ips, run_caller

        callers = self.scenario.kubernetes.in_cluster_callers
        for caller, ip in zip(callers, caller_ips(callers)):
            stats = self.caller_stats[caller.name] = CallerStats()
            # ClusterIP → kube-proxy → an endpoint's targetPort: the gateway pod's traffic port
            self._spawn(run_caller(caller, ip, lambda: (self.pod_ip, self.ports.traffic), stats))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._dump_kube_requests()
        if self.gwapi is not None:
            try:
                await self.gwapi.stop()
            except Exception as exc:  # keep stopping the rest
                log.warning("stopping the Gateway API gateway failed: %s", exc)
            self.gwapi = None
        for ip, old in list(self.terminating.items()):
            try:
                await old.stop()
            except Exception as exc:  # keep stopping the rest
                log.warning("stopping the terminating gateway pod at %s failed: %s", ip, exc)
        self.terminating.clear()
        for name in ("nlb_tcp", "nlb_tls", "nlb", "gateway", "greeter", "echo", "kube"):
            part = getattr(self, name)
            if part is None:
                continue
            try:
                await part.stop()
            except Exception as exc:  # keep stopping the rest
                log.warning("stopping %s failed: %s", name, exc)
            setattr(self, name, None)
        if self.moto is not None:
            await asyncio.to_thread(self.moto.stop)
            self.moto = None

    def _dump_kube_requests(self) -> None:
        """The lab API's request log (verb, resource per request) for tests of the printed RBAC: kube-requests.json."""
        if self.kube is None:
            return
        try:
            records = [{"method": r.method, "path": r.path, "verb": r.verb, "resource": r.resource,
                        "namespace": r.namespace, "status": r.status} for r in list(self.kube.requests)]
            (self.state_dir / KUBE_REQUESTS_FILE).write_text(json.dumps(records), encoding="utf-8")
        except OSError as exc:
            log.warning("writing the request log failed: %s", exc)

    # --- derived state ----------------------------------------------------------------

    def _echo_pods(self) -> list[dict[str, Any]]:
        assert self.ports is not None
        echo_deployment = manifests.echo_objects(self.scenario, self.ports)[0]
        return [manifests.pod_for(echo_deployment, ip=addresses.ECHO_POD_IP, started_at=manifests.now_rfc3339())]

    def _gateway_kwargs(self) -> dict[str, Any]:
        assert self.ports is not None
        return {
            "pod_ip": self.pod_ip,
            "traffic_port": self.ports.traffic,
            "tls_port": self.ports.tls,
            "status_port": self.ports.status,
            "admin_port": self.ports.admin,
            "echo_upstream": (addresses.ECHO_POD_IP, self.ports.echo),
            **({"tcp_port": self.ports.tcp, "tcp_upstreams": self._tcp_upstreams()} if self.ports.tcp else {}),
        }

    def _tcp_upstreams(self) -> dict[str, tuple[str, int]]:
        """The outbound cluster of the greeter's Service (what a VirtualService tcp route names) → its pod."""
        from .envoycfg import outbound_cluster
        from .greeter import GREETER_NS, GREETER_SERVICE, GREETER_SERVICE_PORT

        if self.greeter is None:
            return {}
        host = f"{GREETER_SERVICE}.{GREETER_NS}.svc.cluster.local"
        return {outbound_cluster(host, GREETER_SERVICE_PORT): self.greeter.address}

    def _gateway_settings(self) -> Any:
        from .istio import derive_gateway_settings

        store = self.kube.store
        deployment = store.get("deployments", manifests.GATEWAY_NS, manifests.GATEWAY_NAME)
        filters = [o for o in store.list("envoyfilters") if o]
        services = [o for o in store.list("virtualservices") if o]
        labels = deployment["spec"]["template"]["metadata"].get("labels", {})
        # istiod opens listeners only where Gateway servers land (through the gateway Service's ports)
        gateways = [o for o in store.list("gateways.networking.istio.io") if o]
        service = store.get("services", manifests.GATEWAY_NS, manifests.GATEWAY_NAME)
        return derive_gateway_settings(deployment, self._mesh_at_pod_start, filters, services, labels,
                                       gateways=gateways, service=service)

    def _resolve_pod_port(self, namespace: str, pod_name: str, port: int) -> tuple[str, int]:
        pod = self.kube.store.get("pods", namespace, pod_name)
        if pod is None:
            raise LookupError(f'pods "{pod_name}" not found')
        ip = pod["status"]["podIP"]
        assert self.ports is not None
        # Chart container ports are accepted as well as the lab's real ones.
        real = self.ports.as_dict().get(port, port)
        return ip, real

    # --- reacting to changes ------------------------------------------------------------

    def _on_kube_event(self, event: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        kind = obj.get("kind")
        meta = obj.get("metadata", {})
        ns, name = meta.get("namespace"), meta.get("name")
        self.events.append({"event": event, "kind": kind, "namespace": ns, "name": name})
        if self.gwapi is not None:
            reaction = self.gwapi.on_event(event, obj, old)
            if reaction is not None:
                self._spawn(reaction)
        if kind == "Deployment" and (ns, name) == (manifests.GATEWAY_NS, manifests.GATEWAY_NAME):
            if old is None or old.get("spec", {}).get("template") != obj.get("spec", {}).get("template"):
                self._spawn(self._rollout_gateway())
        elif kind in ("EnvoyFilter", "VirtualService", "Gateway"):
            self._spawn(self._push_listeners())
        elif kind == "Service" and (ns, name) == (manifests.GATEWAY_NS, manifests.GATEWAY_NAME):
            if old is not None and old.get("spec", {}).get("ports") != obj.get("spec", {}).get("ports"):
                self._spawn(self._push_listeners())  # Gateway server ports resolve through the Service's ports
            if lbc.managed_by_controller(obj, controller_installed=self.scenario.kubernetes.lbc_installed):
                self._spawn(self._reconcile_lbc())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("lab reaction failed: %s", task.exception())
            self.events.append({"event": "ERROR", "message": str(task.exception())})

    async def _rollout_gateway(self) -> None:
        """The ReplicaSet replaces the gateway pod: new name, new start time, mesh config of now.

        With IP targets the new pod gets its own address (the VPC CNI's), the lab controller moves the
        targets to it, and the old pod terminates as its template says (``_terminate``). With instance
        targets the node's address stays what the NLB sees: the pod is replaced in place.
        """
        async with self._gateway_lock:
            store = self.kube.store
            ns = manifests.GATEWAY_NS
            old_ip, old_pods = self.pod_ip, []
            moves = self.aws.target_type == "ip"
            for pod in store.list("pods", ns):
                if (pod["metadata"].get("labels", {}).get("istio") == "ingressgateway"
                        and not pod["metadata"].get("deletionTimestamp")):
                    old_pods.append(pod)
                    if not moves:  # replaced in place on the node: nothing of the old pod goes on serving
                        store.delete("pods", ns, pod["metadata"]["name"])
            new_ip = await self._free_pod_ip() if moves else old_ip
            # The new pod object exists (not ready) before its Envoy serves, as with a ReplicaSet:
            # nobody can reach a new gateway that the API does not list yet.
            deployment = store.get("deployments", ns, manifests.GATEWAY_NAME)
            started_at = manifests.now_rfc3339()
            store.put(manifests.pod_for(deployment, ip=new_ip, started_at=started_at, ready=False))
            mesh_before = self._mesh_at_pod_start
            mesh_cm = store.get("configmaps", ns, "istio")
            self._mesh_at_pod_start = yaml.safe_load((mesh_cm or {}).get("data", {}).get("mesh", "")) or {}
            self.rollouts += 1
            if not moves:
                await self.gateway.restart(self._gateway_settings(), **self._gateway_kwargs())
                store.put(manifests.pod_for(deployment, ip=new_ip, started_at=started_at))
                return
            from .gateway import GatewayProcess

            old = self.gateway
            self.pod_ip = new_ip
            new = GatewayProcess(self.state_dir / ("gateway" if new_ip == addresses.GATEWAY_POD_IP else f"gateway-{new_ip}"),
                                 pod_ip=new_ip)
            await new.start(self._gateway_settings(), **self._gateway_kwargs())
            self.gateway = new
            store.put(manifests.pod_for(deployment, ip=new_ip, started_at=started_at))
            if old is not None:
                # The new pod is ready: the ReplicaSet deletes the old one, which is listed as Terminating (with its
                # grace period) and starts its preStop at once; the controller deregisters it after that, from the
                # endpoints change (kubernetes.io "Termination of Pods"; EKS Best Practices, "Load Balancing").
                template = old_pods[0] if old_pods else deployment["spec"]["template"]
                shutdown = drain.pod_shutdown(template, mesh_before)
                grace = max(1, round(shutdown.grace_s * LAB_IDLE_TIMEOUT_SCALE))  # in lab time
                for pod in old_pods:
                    store.put(manifests.terminating(pod, grace))
                self.terminating[old_ip] = old
                self._spawn(self._terminate(old_ip, old, shutdown))
            self.endpoints = self._write_endpoints(self.state_dir / KUBECONFIG_FILE)
            await self._move_targets(old_ip, new_ip)

    async def _free_pod_ip(self) -> str:
        """The next pod address no pod holds; with all taken, the oldest terminating pod is stopped first
        (the lab has four: a limit of the lab, not of Kubernetes)."""
        for ip in addresses.GATEWAY_POD_IPS:
            if ip != self.pod_ip and ip not in self.terminating:
                return ip
        ip, old = next(iter(self.terminating.items()))
        await old.stop()
        self.terminating.pop(ip, None)
        self._forget_pods(ip)
        return ip

    def _forget_pods(self, ip: str) -> None:
        """A terminated pod leaves the API (its Terminating object is removed once its containers stopped)."""
        store = self.kube.store
        for pod in store.list("pods", manifests.GATEWAY_NS):
            if pod["metadata"].get("deletionTimestamp") and (pod.get("status") or {}).get("podIP") == ip:
                store.delete("pods", manifests.GATEWAY_NS, pod["metadata"]["name"])

    async def _move_targets(self, old_ip: str, new_ip: str) -> None:
        """The controller follows the Service's endpoints: the new pod registered, the old one deregistered."""
        async with self._lbc_lock:
            for world in (self.aws, self.aws_tls, self.aws_tcp):
                if world is not None:
                    await asyncio.to_thread(lbc.move_targets, self._elbv2, world.tg_arn, old_ip, new_ip)

    async def _terminate(self, ip: str, process: Any, shutdown: Any) -> None:
        """The old pod's shutdown: preStop sleep, then pilot-agent's drain, within the grace period — in lab time.

        Envoy accepts connections until it stops (pilot-agent's drain leaves the gateway's listeners open)."""
        try:
            await asyncio.sleep(shutdown.serves_for_s * LAB_IDLE_TIMEOUT_SCALE)  # the pod's own life, not a wait for a condition
            await process.stop()
        finally:
            if self.terminating.get(ip) is process:
                del self.terminating[ip]
                self._forget_pods(ip)

    async def _push_listeners(self) -> None:
        async with self._gateway_lock:
            await self.gateway.update_listeners(self._gateway_settings())

    async def _reconcile_lbc(self) -> None:
        """Like the controller: one reconcile at a time, each from the Service as it is *now*.

        Several quick annotation patches start several reconciles; serialised and reading the
        current object, the last one leaves the target group matching the last write.
        """
        assert self.ports is not None
        async with self._lbc_lock:
            service = self.kube.store.get("services", manifests.GATEWAY_NS, manifests.GATEWAY_NAME)
            if service is None:
                return
            await asyncio.to_thread(lbc.reconcile, self._elbv2, self.aws.tg_arn, service, self.ports.as_dict())
            if self.aws_tls is not None:  # the controller reconciles every target group of the Service
                await asyncio.to_thread(lbc.reconcile, self._elbv2, self.aws_tls.tg_arn, service, self.ports.as_dict())
            if self.aws_tcp is not None:
                await asyncio.to_thread(lbc.reconcile, self._elbv2, self.aws_tcp.tg_arn, service, self.ports.as_dict())

    # --- endpoints file ---------------------------------------------------------------

    def _gwapi_target(self, cfg: Any) -> Any:
        """The lab config pointed at the Gateway API gateway's path (scenario gateway_api.target)."""
        from dataclasses import replace

        from .gatewayapi import POD_IP

        g = self.gwapi
        return replace(
            cfg,
            nlb=replace(cfg.nlb, name=g.aws.lb_name, arn=g.aws.lb_arn, address=_host_port(*g.nlb.address), listener_port=80),
            aws=replace(cfg.aws, target_group_arns=(g.aws.tg_arn,)),
            kubernetes=replace(cfg.kubernetes, namespace=g.spec.namespace, gateway_deployment=g.name, gateway_service=g.name),
            gateway=cfgmod.GatewayTarget(direct=_host_port(POD_IP, g.ports.traffic), admin=_host_port(POD_IP, g.ports.admin)),
        )

    def _write_endpoints(self, kubeconfig: Path) -> LabEndpoints:
        assert self.ports is not None
        gw = self.pod_ip
        # An IPv6 client reaches the NLB's IPv6 listener (dualstack: see lab/nlb_family.py).
        nlb_host, nlb_port = self.nlb.address_v6 or self.nlb.address
        # How each NLB DNS name and listener port reaches its emulator on loopback (lab config only:
        # on a real cluster the name resolves with DNS).
        resolve = [f"{self.aws.lb_dns_name}:{self.scenario.aws.listener_port}={_host_port(nlb_host, nlb_port)}"]
        if self.nlb_tls is not None:
            resolve.append(f"{self.aws.lb_dns_name}:443={_host_port(*self.nlb_tls.address)}")
        if self.nlb_tcp is not None:
            resolve.append(f"{self.aws.lb_dns_name}:{self.scenario.aws.tcp_listener_port}={_host_port(*self.nlb_tcp.address)}")
        if self.gwapi is not None:
            resolve.append(f"{self.gwapi.aws.lb_dns_name}:80={_host_port(*self.gwapi.nlb.address)}")
        cfg = cfgmod.TargetConfig(
            name=f"lab:{self.scenario.name}",
            lab=True,
            nlb=cfgmod.NlbTarget(
                name=self.aws.lb_name, arn=self.aws.lb_arn, address=_host_port(nlb_host, nlb_port),
                listener_port=self.scenario.aws.listener_port, client_source=self.scenario.client.source,
                tls=self.scenario.aws.listener_protocol == "TLS",
                time_scale=self.nlb.idle_timeout_scale,
                # what the scenario's client path (a CDN in front) adds to every request
                client_headers=tuple(f"{k}: {v}" for k, v in self.scenario.client.extra_headers.items()),
            ),
            aws=cfgmod.AwsTarget(
                region=self.scenario.aws.region, endpoint_url=self.moto.endpoint_url,
                target_group_arns=(self.aws.tg_arn,), static_credentials=True,
            ),
            kubernetes=cfgmod.KubeTarget(kubeconfig=str(kubeconfig), context="ppdoctor-lab"),
            gateway=cfgmod.GatewayTarget(
                direct=_host_port(gw, self.ports.traffic), admin=_host_port(gw, self.ports.admin),
                tls_direct=_host_port(gw, self.ports.tls),
            ),
            resolver=cfgmod.ResolverTarget(
                endpoints=tuple(resolve), client_source=self.scenario.client.source,
                client_headers=tuple(f"{k}: {v}" for k, v in self.scenario.client.extra_headers.items()),
                time_scale=self.nlb.idle_timeout_scale),
        )
        if self.gwapi is not None and self.scenario.gateway_api.target:
            cfg = self._gwapi_target(cfg)
        config_path = self.state_dir / CONFIG_FILE
        cfgmod.write_config(cfg, config_path)
        endpoints = LabEndpoints(
            scenario=self.scenario.name,
            config=str(config_path),
            nlb=cfg.nlb.address,
            gateway=cfg.gateway.direct,
            gateway_tls=_host_port(gw, self.ports.tls),
            gateway_status=_host_port(gw, self.ports.status),
            gateway_admin=cfg.gateway.admin,
            echo=_host_port(addresses.ECHO_POD_IP, self.ports.echo),
            echo_path=cfg.echo.path,
            aws_endpoint_url=self.moto.endpoint_url,
            region=self.scenario.aws.region,
            kubeconfig=str(kubeconfig),
            target_group_arn=cfg.aws.target_group_arns[0],
            load_balancer_arn=cfg.nlb.arn,
            client_source=self.scenario.client.source,
            pid=os.getpid(),
            gateway_pod_ip=gw,
            gateway_pod_ips=addresses.GATEWAY_POD_IPS,
        )
        tmp = self.state_dir / (ENDPOINTS_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(endpoints), indent=2), encoding="utf-8")
        tmp.replace(self.state_dir / ENDPOINTS_FILE)
        return endpoints


def _elbv2_client(endpoint_url: str, region: str) -> Any:
    import boto3

    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
    ).client("elbv2", endpoint_url=endpoint_url)


def _free_on_all() -> int:
    """A port free on every gateway pod address, so that a pod keeps its ports wherever it lands."""
    from .gateway import free_port

    for _ in range(50):
        port = free_port(addresses.GATEWAY_POD_IPS[0])
        try:
            for ip in addresses.GATEWAY_POD_IPS[1:]:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind((ip, port))
        except OSError:
            continue
        return port
    raise LabError("no port is free on every gateway pod address", hint="too many labs on this machine? stop some")


def _v6_listener(client_source: str) -> str | None:
    """The NLB's IPv6 listen address when the scenario's client is IPv6 (``::1``), else none."""
    return client_source if ":" in client_source else None


def _check_loopback_aliases() -> None:
    """The lab needs to bind 127.1.x.x: true on Linux (all of 127/8 is local), not on macOS without aliases."""
    for ip in (addresses.NLB_IP, *addresses.GATEWAY_POD_IPS, addresses.ECHO_POD_IP, addresses.CLIENT_IP,
               *addresses.IN_CLUSTER_CALLER_IPS):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((ip, 0))
        except OSError as exc:
            raise LabError(
                f"cannot bind the lab address {ip}: {exc.strerror}",
                hint=f"on macOS add loopback aliases first: sudo ifconfig lo0 alias {ip}",
            ) from exc
