"""Fixtures: a lab API server on a dynamic loopback port, reached through the official client."""

from __future__ import annotations

import copy
import socket
import threading
import time

import pytest
from kubernetes import client, config

from ppdoctor.lab.kubeapi import ThreadedKubeApiServer

NS = "istio-system"
GW = "istio-ingressgateway"


def gateway_manifests() -> list[dict]:
    return copy.deepcopy(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "echo"}},
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "istio", "namespace": NS},
                "data": {"mesh": "defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n"},
            },
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": GW, "namespace": NS, "labels": {"app": GW, "istio": "ingressgateway"}},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": GW, "istio": "ingressgateway"}},
                    "template": {
                        "metadata": {
                            "labels": {"app": GW, "istio": "ingressgateway"},
                            "annotations": {"sidecar.istio.io/inject": "false"},
                        },
                        "spec": {
                            "containers": [
                                {
                                    "name": "istio-proxy",
                                    "image": "docker.io/istio/proxyv2:1.24.0",
                                    "ports": [
                                        {"containerPort": 8080, "name": "http2"},
                                        {"containerPort": 8443, "name": "https"},
                                        {"containerPort": 15021, "name": "status-port"},
                                    ],
                                    "env": [{"name": "ISTIO_META_ROUTER_MODE", "value": "standard"}],
                                },
                                {"name": "helper", "image": "busybox:1.36"},
                            ]
                        },
                    },
                },
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": GW,
                    "namespace": NS,
                    "labels": {"app": GW},
                    "annotations": {
                        "service.beta.kubernetes.io/aws-load-balancer-type": "external",
                        "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
                    },
                },
                "spec": {
                    "type": "LoadBalancer",
                    "selector": {"app": GW},
                    "ports": [
                        {"name": "http2", "port": 80, "targetPort": 8080},
                        {"name": "status-port", "port": 15021},
                    ],
                },
            },
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{GW}-7d9f8b-abcde",
                    "namespace": NS,
                    "labels": {"app": GW, "istio": "ingressgateway", "tier": "edge"},
                },
                "spec": {"containers": [{"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.24.0"}]},
                "status": {"phase": "Running", "podIP": "127.1.2.10"},
            },
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "echo-1", "namespace": "echo", "labels": {"app": "echo", "tier": "backend"}},
                "spec": {"containers": [{"name": "echo", "image": "mccutchen/go-httpbin:v2.15.0"}]},
                "status": {"phase": "Running", "podIP": "127.1.2.20"},
            },
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "echo-2", "namespace": "echo", "labels": {"app": "echo", "version": "v2"}},
                "spec": {"containers": [{"name": "echo", "image": "mccutchen/go-httpbin:v2.15.0"}]},
                "status": {"phase": "Pending"},
            },
            {
                "apiVersion": "networking.istio.io/v1alpha3",
                "kind": "EnvoyFilter",
                "metadata": {"name": "proxy-protocol", "namespace": NS},
                "spec": {
                    "workloadSelector": {"labels": {"istio": "ingressgateway"}},
                    "configPatches": [
                        {
                            "applyTo": "LISTENER",
                            "patch": {
                                "operation": "MERGE",
                                "value": {
                                    "listener_filters": [
                                        {"name": "envoy.filters.listener.proxy_protocol"},
                                        {"name": "envoy.filters.listener.tls_inspector"},
                                    ]
                                },
                            },
                        }
                    ],
                },
            },
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "Gateway",
                "metadata": {"name": "public", "namespace": NS},
                "spec": {"selector": {"istio": "ingressgateway"}, "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]},
            },
            {
                "apiVersion": "elbv2.k8s.aws/v1beta1",
                "kind": "TargetGroupBinding",
                "metadata": {"name": "k8s-istiosys-gw-0123456789", "namespace": NS},
                "spec": {
                    "serviceRef": {"name": GW, "port": 80},
                    "targetGroupARN": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/k8s-istiosys/0123456789abcdef",
                    "targetType": "ip",
                },
            },
        ]
    )


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@pytest.fixture
def no_leaks():
    """Fails the test if it leaves a non-daemon or lab thread running."""
    before = set(threading.enumerate())
    yield
    deadline = time.time() + 3
    while True:
        extra = [
            t for t in threading.enumerate()
            if t not in before and t.is_alive()
            and (not t.daemon or t.name.startswith("ppdoctor-lab") or "port forward" in t.name)
        ]
        if not extra or time.time() > deadline:
            break
        time.sleep(0.05)
    assert not extra, f"threads left behind: {extra}"


@pytest.fixture
def lab(no_leaks, tmp_path):
    srv = ThreadedKubeApiServer(gateway_manifests())
    srv.start()
    srv.kubeconfig = srv.write_kubeconfig(str(tmp_path / "kubeconfig"))
    host, port = srv.server.host, srv.server.port
    try:
        yield srv
    finally:
        srv.stop()
        assert not _port_open(host, port), "the API server port is still open after stop()"


@pytest.fixture
def api(lab):
    api_client = config.new_client_from_config(config_file=lab.kubeconfig)
    try:
        yield api_client
    finally:
        api_client.close()


@pytest.fixture
def core(api):
    return client.CoreV1Api(api)


@pytest.fixture
def apps(api):
    return client.AppsV1Api(api)


@pytest.fixture
def custom(api):
    return client.CustomObjectsApi(api)
