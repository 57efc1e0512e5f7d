"""Kubernetes objects of the lab, shaped like the Istio helm chart and the AWS LB Controller make them.

The gateway Deployment and Service live in ``istio-system`` labelled
``app: istio-ingressgateway`` / ``istio: ingressgateway``; the ``istio`` ConfigMap holds
``mesh`` as YAML text. Container ports are the lab's real host ports (the lab maps the
chart's 8080/8443/15021/15000 to free ports), so every number a probe reads from the
cluster is one it can connect to; ports keep the chart's *names* (``http2``, ``https``,
``status-port``), which is how ppdoctor recognises them.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import yaml

from ..constants import ISTIO_TERMINATION_DRAIN_DEFAULT_S, K8S_TERMINATION_GRACE_DEFAULT_S
from ..drain import FIX_MARGIN_S
from .scenario import ADMIN_PORT, DEFAULT_ISTIO_VERSION, STATUS_PORT, TCP_PORT, TLS_PORT, TRAFFIC_PORT, Scenario

GATEWAY_NS = "istio-system"
GATEWAY_NAME = "istio-ingressgateway"
GATEWAY_LABELS = {"app": "istio-ingressgateway", "istio": "ingressgateway"}
ECHO_NS = "default"
ECHO_NAME = "httpbin"
ISTIO_REVISION_LABELS = {"install.operator.istio.io/owning-resource": "unknown", "istio.io/rev": "default"}
ISTIO_VERSION = DEFAULT_ISTIO_VERSION
# The lab's second bench route: answered by the gateway itself after a fixed delay.
BENCH_DELAY_PATH = "/bench-delay"
BENCH_DELAY = "2ms"


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class PortMap:
    """Chart container port → real host port on the pod's loopback address."""

    traffic: int
    tls: int
    status: int
    admin: int
    echo: int
    tcp: int = 0  # the `tcp` port 31400 (0: the scenario has no TCP listener)

    def as_dict(self) -> dict[int, int]:
        out = {TRAFFIC_PORT: self.traffic, TLS_PORT: self.tls, STATUS_PORT: self.status, ADMIN_PORT: self.admin}
        if self.tcp:
            out[TCP_PORT] = self.tcp
        return out


def pod_template_hash(template: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    # Kubernetes renders the hash with a safe alphabet; any stable 10 chars will do.
    return "".join(c for c in digest if c in "bcdfghjklmnpqrstvwxz2456789")[:10].ljust(10, "b")


def mesh_yaml(scenario: Scenario, *, with_topology: bool = True) -> str:
    default_config: dict[str, Any] = {
        "discoveryAddress": "istiod.istio-system.svc:15012",
        "tracing": {"zipkin": {"address": "zipkin.istio-system:9411"}},
    }
    topology = scenario.kubernetes.mesh.gateway_topology
    if with_topology and topology is not None:
        default_config["gatewayTopology"] = copy.deepcopy(topology)
    mesh = {
        "accessLogFile": "/dev/stdout",
        "defaultConfig": default_config,
        "enablePrometheusMerge": True,
        "rootNamespace": "istio-system",
        "trustDomain": "cluster.local",
    }
    return yaml.safe_dump(mesh, sort_keys=True)


def mesh_configmap(scenario: Scenario, *, with_topology: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "istio",
            "namespace": GATEWAY_NS,
            "labels": {"istio.io/rev": "default", "release": "istio"},
        },
        "data": {"mesh": mesh_yaml(scenario, with_topology=with_topology), "meshNetworks": "networks: {}\n"},
    }


def _gateway_container(scenario: Scenario, ports: PortMap) -> dict[str, Any]:
    env = [
        {"name": "PROXY_CONFIG", "value": "{}"},
        {"name": "ISTIO_META_ROUTER_MODE", "value": "standard"},
        {"name": "ISTIO_META_CLUSTER_ID", "value": "Kubernetes"},
    ]
    env += [{"name": k, "value": v} for k, v in sorted(scenario.kubernetes.gateway.env.items())]
    return {
        "name": "istio-proxy",
        "image": f"docker.io/istio/proxyv2:{scenario.kubernetes.gateway.istio_version}",
        "args": ["proxy", "router", "--domain", "$(POD_NAMESPACE).svc.cluster.local"],
        "ports": [
            {"containerPort": ports.status, "name": "status-port", "protocol": "TCP"},
            {"containerPort": ports.traffic, "name": "http2", "protocol": "TCP"},
            {"containerPort": ports.tls, "name": "https", "protocol": "TCP"},
            {"containerPort": ports.admin, "name": "http-envoy-admin", "protocol": "TCP"},
            *([{"containerPort": ports.tcp, "name": "tcp", "protocol": "TCP"}] if ports.tcp else []),
        ],
        "readinessProbe": {
            "httpGet": {"path": "/healthz/ready", "port": ports.status, "scheme": "HTTP"},
            "periodSeconds": 2,
        },
        "env": env,
        **({"lifecycle": {"preStop": {"exec": {"command": ["sleep", str(scenario.kubernetes.gateway.pre_stop_sleep_s)]}}}}
           if scenario.kubernetes.gateway.pre_stop_sleep_s else {}),
    }


def _grace_period(scenario: Scenario) -> int:
    """terminationGracePeriodSeconds: the scenario's, else room for the preStop sleep and Istio's drain, else 30."""
    g = scenario.kubernetes.gateway
    if g.termination_grace_period_s is not None:
        return g.termination_grace_period_s
    if not g.pre_stop_sleep_s:
        return K8S_TERMINATION_GRACE_DEFAULT_S
    return g.pre_stop_sleep_s + ISTIO_TERMINATION_DRAIN_DEFAULT_S + FIX_MARGIN_S


def gateway_deployment(scenario: Scenario, ports: PortMap) -> dict[str, Any]:
    annotations = {
        "prometheus.io/path": "/stats/prometheus",
        "prometheus.io/port": "15020",
        "prometheus.io/scrape": "true",
        "sidecar.istio.io/inject": "false",
        "inject.istio.io/templates": "gateway",
    }
    annotations.update(scenario.kubernetes.gateway.pod_template_annotations)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": GATEWAY_NAME,
            "namespace": GATEWAY_NS,
            "labels": {**GATEWAY_LABELS, **ISTIO_REVISION_LABELS},
            "annotations": dict(scenario.kubernetes.gateway.deployment_annotations),
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(GATEWAY_LABELS)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {
                    "labels": {**GATEWAY_LABELS, "sidecar.istio.io/inject": "false", "service.istio.io/canonical-name": GATEWAY_NAME},
                    "annotations": annotations,
                },
                "spec": {
                    "serviceAccountName": "istio-ingressgateway-service-account",
                    "terminationGracePeriodSeconds": _grace_period(scenario),
                    "containers": [_gateway_container(scenario, ports)],
                },
            },
        },
    }


def gateway_service(scenario: Scenario, ports: PortMap, *, lb_hostname: str | None) -> dict[str, Any]:
    gw = scenario.kubernetes.gateway
    status: dict[str, Any] = {"loadBalancer": {}}
    if lb_hostname:
        status["loadBalancer"] = {"ingress": [{"hostname": lb_hostname}]}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": GATEWAY_NAME,
            "namespace": GATEWAY_NS,
            "labels": {**GATEWAY_LABELS, **ISTIO_REVISION_LABELS},
            "annotations": dict(gw.service_annotations),
        },
        "spec": {
            "type": "LoadBalancer",
            "selector": dict(GATEWAY_LABELS),
            "externalTrafficPolicy": gw.external_traffic_policy,
            **({"healthCheckNodePort": 32021} if gw.external_traffic_policy == "Local" else {}),
            "ports": [
                {"name": "status-port", "port": STATUS_PORT, "targetPort": ports.status, "protocol": "TCP", "nodePort": 30021},
                {"name": "http2", "port": 80, "targetPort": ports.traffic, "protocol": "TCP", "nodePort": 30080},
                {"name": "https", "port": 443, "targetPort": _https_target(scenario, ports), "protocol": "TCP",
                 "nodePort": 30443},
                *([{"name": "tcp", "port": scenario.aws.tcp_listener_port, "targetPort": ports.tcp, "protocol": "TCP",
                    "nodePort": 31400}] if ports.tcp and scenario.aws.tcp_listener_port else []),
            ],
        },
        "status": status,
    }


def _https_target(scenario: Scenario, ports: PortMap) -> int:
    """443's targetPort: the TLS port, or — TLS terminated at the NLB, plaintext to the traffic port — http2,
    as a Service behind an NLB with aws-load-balancer-ssl-ports: 443 is written."""
    aws = scenario.aws
    if aws.listener_protocol == "TLS" and aws.target_group.protocol == "TCP" and aws.target_group.port == TRAFFIC_PORT:
        return ports.traffic
    return ports.tls


def terminating(pod: dict[str, Any], grace_s: int) -> dict[str, Any]:
    """The pod as the API shows it once deleted with a grace period (``kubectl get`` says Terminating): deletion
    timestamp = now + grace, ``deletionGracePeriodSeconds`` = grace, and no longer ready (the endpoints controller
    takes it out of the Service's ready endpoints; the load balancer controller deregisters it)."""
    from datetime import timedelta

    out = copy.deepcopy(pod)
    meta = out["metadata"]
    meta["deletionTimestamp"] = (datetime.now(timezone.utc) + timedelta(seconds=grace_s)).strftime("%Y-%m-%dT%H:%M:%SZ")
    meta["deletionGracePeriodSeconds"] = grace_s
    status = out.setdefault("status", {})
    for condition in status.get("conditions") or []:
        if condition.get("type") in ("Ready", "ContainersReady"):
            condition["status"] = "False"
    for container in status.get("containerStatuses") or []:
        container["ready"] = False
    return out


def pod_for(deployment: dict[str, Any], *, ip: str, started_at: str, ready: bool = True) -> dict[str, Any]:
    """A running Pod of the Deployment's current template, as the ReplicaSet would create it."""
    template = deployment["spec"]["template"]
    tmpl_hash = pod_template_hash(template)
    suffix = hashlib.sha256(f"{tmpl_hash}{started_at}{ip}".encode()).hexdigest()[:5]
    name = f"{deployment['metadata']['name']}-{tmpl_hash}-{suffix}"
    condition = "True" if ready else "False"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": deployment["metadata"]["namespace"],
            "labels": {**template["metadata"].get("labels", {}), "pod-template-hash": tmpl_hash},
            "annotations": dict(template["metadata"].get("annotations", {})),
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": f"{deployment['metadata']['name']}-{tmpl_hash}",
                "controller": True,
                "uid": "00000000-0000-0000-0000-000000000000",
            }],
        },
        "spec": copy.deepcopy(template["spec"]) | {"nodeName": "ip-127-1-2-1.lab.internal"},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "hostIP": "127.1.2.1",
            "startTime": started_at,
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": condition},
                {"type": "ContainersReady", "status": condition},
                {"type": "PodScheduled", "status": "True"},
            ],
            "containerStatuses": [
                {"name": c["name"], "ready": ready, "restartCount": 0, "image": c["image"],
                 "state": {"running": {"startedAt": started_at}}}
                for c in template["spec"]["containers"]
            ],
        },
    }


def echo_objects(scenario: Scenario, ports: PortMap) -> list[dict[str, Any]]:
    labels = {"app": ECHO_NAME, "version": "v1"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": ECHO_NAME, "namespace": ECHO_NS, "labels": dict(labels)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels), "annotations": {}},
                "spec": {"containers": [{
                    "name": ECHO_NAME,
                    "image": scenario.kubernetes.echo.image,
                    "ports": [{"containerPort": ports.echo, "name": "http"}],
                }]},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": ECHO_NAME, "namespace": ECHO_NS, "labels": dict(labels)},
        "spec": {"type": "ClusterIP", "selector": dict(labels),
                 "ports": [{"name": "http", "port": 8000, "targetPort": ports.echo}]},
    }
    gateway = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "httpbin-gateway", "namespace": ECHO_NS},
        "spec": {"selector": {"istio": "ingressgateway"},
                 "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]},
                             # lands on 8443 through the Service's 443 → https; SNI-matched like istiod does
                             {"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": ["*.lab.example"],
                              "tls": {"mode": "SIMPLE", "credentialName": "lab-gateway-cert"}}]},
    }
    vs = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": ECHO_NAME, "namespace": ECHO_NS},
        "spec": {"hosts": ["*"], "gateways": ["httpbin-gateway"],
                 "http": [
                     # answered by the gateway's Envoy itself after a fixed 2 ms (fault delay): a
                     # target with a realistic server time, where clients' own overheads are small
                     # next to the latency they measure. Before /bench: Istio's uri prefix is a plain
                     # string prefix, so "/bench" also matches "/bench-delay" and the first match wins.
                     {"match": [{"uri": {"prefix": BENCH_DELAY_PATH}}],
                      "fault": {"delay": {"fixedDelay": BENCH_DELAY, "percentage": {"value": 100}}},
                      "directResponse": {"status": 200, "body": {"string": "ok"}}},
                     # answered by the gateway's Envoy itself: the target of `ppdoctor bench`
                     # (the echo saturates long before Envoy does)
                     {"match": [{"uri": {"prefix": "/bench"}}],
                      "directResponse": {"status": 200, "body": {"string": "ok"}}},
                     {"route": [{"destination": {"host": f"{ECHO_NAME}.{ECHO_NS}.svc.cluster.local",
                                                 "port": {"number": 8000}}}]},
                 ]},
    }
    return [deployment, service, gateway, vs]


def lbc_objects(scenario: Scenario, *, tg_arn: str | None) -> list[dict[str, Any]]:
    """The AWS Load Balancer Controller's own Deployment and, when it owns the TG, its TargetGroupBinding."""
    if not scenario.kubernetes.lbc_installed:
        return []
    objs: list[dict[str, Any]] = [{
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "aws-load-balancer-controller", "namespace": "kube-system",
                     "labels": {"app.kubernetes.io/name": "aws-load-balancer-controller"}},
        "spec": {"replicas": 1,
                 "selector": {"matchLabels": {"app.kubernetes.io/name": "aws-load-balancer-controller"}},
                 "template": {"metadata": {"labels": {"app.kubernetes.io/name": "aws-load-balancer-controller"}},
                              "spec": {"containers": [{"name": "controller",
                                                       "image": "public.ecr.aws/eks/aws-load-balancer-controller:v2.11.0"}]}}},
    }]
    if tg_arn and "elbv2.k8s.aws/cluster" in scenario.aws.target_group.tags:
        objs.append({
            "apiVersion": "elbv2.k8s.aws/v1beta1",
            "kind": "TargetGroupBinding",
            "metadata": {"name": "k8s-istiosys-istioing-5f1e2d3c4b", "namespace": GATEWAY_NS,
                         "labels": {"service.k8s.aws/stack-name": GATEWAY_NAME,
                                    "service.k8s.aws/stack-namespace": GATEWAY_NS}},
            "spec": {"targetGroupARN": tg_arn, "targetType": scenario.aws.target_group.target_type,
                     "serviceRef": {"name": GATEWAY_NAME, "port": 80},
                     "ipAddressType": "ipv4"},
        })
    return objs


def base_objects() -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": {"kubernetes.io/metadata.name": n}}}
        for n in ("default", "kube-system", GATEWAY_NS)
    ]


def extra_objects(scenario: Scenario) -> list[dict[str, Any]]:
    if not scenario.kubernetes.extra_manifests:
        return []
    return [d for d in yaml.safe_load_all(scenario.kubernetes.extra_manifests) if d]


__all__ = [
    "GATEWAY_NS", "GATEWAY_NAME", "GATEWAY_LABELS", "ECHO_NS", "ECHO_NAME", "PortMap",
    "BENCH_DELAY_PATH", "BENCH_DELAY",
    "base_objects", "echo_objects", "extra_objects", "gateway_deployment", "gateway_service",
    "lbc_objects", "mesh_configmap", "mesh_yaml", "pod_for", "pod_template_hash", "now_rfc3339",
]
