"""What discovery found: candidate client-IP paths (gateway → Service port → NLB listener → target group → pods).

Each field of a candidate says how it was found (``how``), so an operator can check the
reasoning against ``kubectl`` and ``aws`` output; problems carry the next step to take.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Istio Helm chart labels of ingress gateway pods (manifests/charts/gateways/istio-ingress, and the
# `gateway` chart's defaults): a Service selecting either is an ingress gateway's Service.
HELM_GATEWAY_SELECTORS = (("istio", "ingressgateway"), ("app", "istio-ingressgateway"))
# istio pilot/pkg/config/kube/gateway/deploymentcontroller.go: the generated Deployment/Service are
# named "<gateway>-<gatewayClassName>" and labelled (and selected) by this label.
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
GATEWAY_API_GROUP = "gateway.networking.k8s.io"
GATEWAY_API_VERSION = "v1"
ISTIO_GATEWAY_CLASS = "istio"
# AWS Load Balancer Controller tags ("Resource tags", LBC docs: service.k8s.aws/stack = NS/NAME,
# service.k8s.aws/resource = NS/NAME:PORT on a target group, "LoadBalancer" on the NLB) and the
# in-tree cloud provider's tag (legacy-cloud-providers/aws: kubernetes.io/service-name = NS/NAME).
LBC_STACK_TAG = "service.k8s.aws/stack"
LBC_RESOURCE_TAG = "service.k8s.aws/resource"
IN_TREE_SERVICE_TAG = "kubernetes.io/service-name"


@dataclass(frozen=True)
class GatewayRef:
    kind: str  # "Deployment" (Helm shape) or "Gateway" (Gateway API)
    namespace: str
    name: str

    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class PathCandidate:
    gateway: GatewayRef
    service: str  # NS/NAME
    port: int  # the Service port (== the NLB listener port the LB controllers create)
    target_port: int | str
    nlb: dict[str, str]  # name, arn, dns_name, scheme
    listener_port: int
    target_group_arn: str
    target_type: str
    region: str
    deployment: str = ""  # NS/NAME of the pods' Deployment
    listener_protocol: str = "TCP"  # TLS: probes through the NLB speak TLS
    pods: list[str] = field(default_factory=list)
    how: dict[str, str] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return self.service.split("/", 1)[0]

    @property
    def service_name(self) -> str:
        return self.service.split("/", 1)[1]

    def label(self) -> str:
        """gateway · port · NLB, the way the picker and exit-2 listings show it."""
        return f"{self.gateway.kind} {self.gateway.ref()} · port {self.port} · NLB {self.nlb.get('name', '?')}"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["gateway"] = asdict(self.gateway)
        return d


@dataclass(frozen=True)
class Problem:
    """Something that stopped a gateway from becoming a candidate, with the next step."""

    where: str
    message: str
    hint: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Discovery:
    paths: list[PathCandidate] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"paths": [p.as_dict() for p in self.paths], "problems": [p.as_dict() for p in self.problems],
                "notes": list(self.notes)}
