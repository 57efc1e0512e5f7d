"""Discovery: from a kube context and AWS credentials to every ingress-gateway path behind an AWS NLB.

Kubernetes first (who are the gateways, which Services front them, which hostname their load
balancer has), then AWS (which load balancer has that DNS name, which listener serves each
Service port, which target group it forwards to, and does that target group belong to this
Service), then back to Kubernetes (which pods are the registered targets, which Deployment
owns them). Blocking API calls: run it in a thread (``run_blocking``) from async code.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterable

from .. import drain
from ..config import TargetConfig
from ..errors import AwsError, KubeError
from ..probes.context import ProbeContext
from .hostname import parse_lb_hostname, same_dns_name
from .model import (
    GATEWAY_API_GROUP,
    GATEWAY_API_VERSION,
    GATEWAY_NAME_LABEL,
    HELM_GATEWAY_SELECTORS,
    IN_TREE_SERVICE_TAG,
    ISTIO_GATEWAY_CLASS,
    LBC_RESOURCE_TAG,
    LBC_STACK_TAG,
    Discovery,
    GatewayRef,
    PathCandidate,
    Problem,
)

# DescribeTags takes at most 20 resource ARNs per call (ELBv2 API Reference, DescribeTags).
DESCRIBE_TAGS_MAX = 20


def _ns_name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


class _Discoverer:
    def __init__(self, config: TargetConfig) -> None:
        self.config = config
        self.kube_ctx = ProbeContext(config)
        self._aws_ctx: dict[str, ProbeContext] = {}
        self._lbs: dict[str, list[dict[str, Any]]] = {}
        self.result = Discovery()

    def close(self) -> None:
        self.kube_ctx.close()
        for ctx in self._aws_ctx.values():
            ctx.close()

    # --- Kubernetes --------------------------------------------------------------------

    def _kube_json(self, value: Any) -> Any:
        return self.kube_ctx.kube().sanitize_for_serialization(value)

    def _list_services(self) -> list[dict[str, Any]]:
        try:
            res = self.kube_ctx.kube_call("CoreV1Api", "list_service_for_all_namespaces", "list", "services")
        except KubeError as exc:
            if getattr(exc, "status", None) != 403:
                raise
            ns = self.config.kubernetes.namespace
            self.result.notes.append(
                f"RBAC forbids listing Services in all namespaces; looked only in namespace {ns} "
                f"(kubernetes.namespace). Grant cluster-wide 'list services' (`ppdoctor permissions --kube`) "
                f"to find gateways elsewhere")
            res = self.kube_ctx.kube_call("CoreV1Api", "list_namespaced_service", "list", "services", ns, namespace=ns)
        return self._kube_json(res).get("items", [])

    def _list_gateways(self) -> dict[str, dict[str, Any]]:
        """Gateway API Gateways by NS/NAME ({} when the CRD is not installed)."""
        kwargs = dict(group=GATEWAY_API_GROUP, version=GATEWAY_API_VERSION, plural="gateways")
        try:
            res = self.kube_ctx.kube_call("CustomObjectsApi", "list_cluster_custom_object", "list",
                                          f"gateways.{GATEWAY_API_GROUP}", **kwargs)
        except KubeError as exc:
            if getattr(exc, "status", None) == 404:
                return {}  # Gateway API CRDs not installed
            if getattr(exc, "status", None) != 403:
                raise
            ns = self.config.kubernetes.namespace
            self.result.notes.append(f"RBAC forbids listing Gateway API Gateways cluster-wide; looked in {ns} only")
            try:
                res = self.kube_ctx.kube_call("CustomObjectsApi", "list_namespaced_custom_object", "list",
                                              f"gateways.{GATEWAY_API_GROUP}", ns, namespace=ns, **kwargs)
            except KubeError:
                return {}
        return {_ns_name(g): g for g in (res or {}).get("items", [])}

    def _pods(self, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        res = self.kube_ctx.kube_call("CoreV1Api", "list_namespaced_pod", "list", "pods", namespace,
                                      namespace=namespace, label_selector=text)
        return self._kube_json(res).get("items", [])

    # --- AWS ---------------------------------------------------------------------------

    def _aws(self, region: str) -> ProbeContext:
        if region not in self._aws_ctx:
            cfg = self.config
            if region and region != cfg.aws.region:
                cfg = replace(cfg, aws=replace(cfg.aws, region=region))
            self._aws_ctx[region] = ProbeContext(cfg)
        return self._aws_ctx[region]

    def _paged(self, ctx: ProbeContext, operation: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        marker: str | None = None
        while True:
            page = ctx.aws_call("elbv2", operation, **kwargs, **({"Marker": marker} if marker else {}))
            out.extend(page.get(key, []))
            marker = page.get("NextMarker")
            if not marker:
                return out

    def _load_balancers(self, region: str) -> list[dict[str, Any]]:
        if region not in self._lbs:
            self._lbs[region] = self._paged(self._aws(region), "describe_load_balancers", "LoadBalancers")
        return self._lbs[region]

    def _tags(self, ctx: ProbeContext, arns: Iterable[str]) -> dict[str, dict[str, str]]:
        arns = list(arns)
        out: dict[str, dict[str, str]] = {}
        for i in range(0, len(arns), DESCRIBE_TAGS_MAX):
            res = ctx.aws_call("elbv2", "describe_tags", ResourceArns=arns[i:i + DESCRIBE_TAGS_MAX])
            for desc in res.get("TagDescriptions", []):
                out[desc["ResourceArn"]] = {t["Key"]: t["Value"] for t in desc.get("Tags", [])}
        return out

    # --- the walk ----------------------------------------------------------------------

    def run(self) -> Discovery:
        services = self._list_services()
        gateways = self._list_gateways()
        gateway_services: list[tuple[dict[str, Any], GatewayRef, str]] = []
        not_lb: list[str] = []
        for svc in services:
            shape = self._gateway_of(svc, gateways)
            if shape is None:
                continue
            if (svc.get("spec") or {}).get("type") != "LoadBalancer":
                not_lb.append(f"{_ns_name(svc)} (type {(svc.get('spec') or {}).get('type', 'ClusterIP')})")
                continue
            gateway_services.append((svc, *shape))
        for key, gw in gateways.items():
            if (gw.get("spec") or {}).get("gatewayClassName") != ISTIO_GATEWAY_CLASS:
                continue
            if not any(ref.kind == "Gateway" and ref.ref() == key for _, ref, _ in gateway_services):
                self.result.problems.append(Problem(
                    f"Gateway {key}", "this Istio Gateway has no LoadBalancer Service (istiod generates "
                    f"'{gw['metadata']['name']}-istio' when it deploys it)",
                    "check `kubectl get gateway -n NS NAME -o yaml` status conditions (Programmed) and istiod's logs"))
        if not gateway_services:
            where = "all namespaces" if not any("RBAC" in n for n in self.result.notes) else \
                f"namespace {self.config.kubernetes.namespace}"
            extra = f"; gateway Services that are not LoadBalancers: {', '.join(not_lb)}" if not_lb else ""
            self.result.problems.append(Problem(
                "cluster", f"no LoadBalancer Service selects Istio ingress gateway pods in {where}{extra}",
                "an NLB in front of the gateway needs `type: LoadBalancer` on its Service (Helm: "
                "service.type; Gateway API: a Gateway with gatewayClassName istio); or write the target in a "
                "config file (`ppdoctor discover --write FILE` once it exists)"))
        for svc, ref, how in gateway_services:
            try:
                self._service_paths(svc, ref, how)
            except AwsError as exc:
                self.result.problems.append(Problem(f"Service {_ns_name(svc)}", str(exc), exc.hint or ""))
        return self.result

    def _gateway_of(self, svc: dict[str, Any], gateways: dict[str, dict[str, Any]]) -> tuple[GatewayRef, str] | None:
        meta = svc.get("metadata") or {}
        selector = (svc.get("spec") or {}).get("selector") or {}
        ns = meta.get("namespace", "")
        gw_name = selector.get(GATEWAY_NAME_LABEL) or (meta.get("labels") or {}).get(GATEWAY_NAME_LABEL)
        if gw_name:
            gw = gateways.get(f"{ns}/{gw_name}")
            if gw is not None and (gw.get("spec") or {}).get("gatewayClassName") != ISTIO_GATEWAY_CLASS:
                return None  # another implementation's Gateway
            how = (f"Service selector {GATEWAY_NAME_LABEL}={gw_name}; Gateway {ns}/{gw_name} gatewayClassName "
                   f"{ISTIO_GATEWAY_CLASS}" if gw is not None else
                   f"Service selector {GATEWAY_NAME_LABEL}={gw_name} (Gateway resources not readable)")
            return GatewayRef("Gateway", ns, gw_name), how
        for key, value in HELM_GATEWAY_SELECTORS:
            if selector.get(key) == value:
                return GatewayRef("Deployment", ns, meta.get("name", "")), f"Service selector {key}={value} (Helm chart)"
        return None

    def _service_paths(self, svc: dict[str, Any], ref: GatewayRef, gw_how: str) -> None:
        where = f"Service {_ns_name(svc)}"
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        hostnames = [i["hostname"] for i in ingress if i.get("hostname")]
        if not hostnames:
            ips = [i["ip"] for i in ingress if i.get("ip")]
            if ips:
                self.result.problems.append(Problem(where, f"the load balancer has an IP ({', '.join(ips)}), not an "
                                                    "AWS hostname: not an AWS load balancer",
                                                    "ppdoctor follows AWS NLBs; write the target in a config file"))
            else:
                self.result.problems.append(Problem(
                    where, "the load balancer is still pending: status.loadBalancer.ingress has no hostname yet",
                    f"wait for provisioning, then `kubectl describe svc -n {svc['metadata']['namespace']} "
                    f"{svc['metadata']['name']}` (events) and the AWS Load Balancer Controller's logs"))
            return
        host = parse_lb_hostname(hostnames[0])
        if host.kind == "unknown":
            self.result.problems.append(Problem(where, f"{host.hostname} is not an Elastic Load Balancing DNS name",
                                                "ppdoctor follows AWS load balancers; write the target in a config file"))
            return
        region = host.region or self.config.aws.region
        how_region = f"from the hostname {host.hostname}"
        lbs = self._load_balancers(region)
        lb = next((b for b in lbs if same_dns_name(b.get("DNSName", ""), host.hostname)), None)
        if lb is None:
            if host.kind == "alb-or-classic":
                self.result.problems.append(Problem(
                    where, f"{host.hostname} is a Classic Load Balancer (its DNS name has the Classic/ALB shape and "
                    "ELBv2 does not know it): Classic ELBs do not send PROXY protocol v2",
                    "use an NLB: annotate the Service service.beta.kubernetes.io/aws-load-balancer-type: external "
                    "(AWS Load Balancer Controller) or nlb (in-tree)"))
            else:
                self.result.problems.append(Problem(
                    where, f"no load balancer in region {region} of this AWS account has the DNS name {host.hostname}",
                    f"the NLB lives in another account or region: use credentials for the account that owns it "
                    f"(AWS_PROFILE=…) and region {region}"))
            return
        if lb.get("Type") != "network":
            self.result.problems.append(Problem(
                where, f"{host.hostname} is an {lb.get('Type', '?')} load balancer ({lb['LoadBalancerName']}), not an NLB",
                "ppdoctor follows NLB → gateway paths; an ALB terminates HTTP and sets X-Forwarded-For itself"))
            return
        ctx = self._aws(region)
        listeners = self._paged(ctx, "describe_listeners", "Listeners", LoadBalancerArn=lb["LoadBalancerArn"])
        tgs = self._paged(ctx, "describe_target_groups", "TargetGroups", LoadBalancerArn=lb["LoadBalancerArn"])
        tags = self._tags(ctx, [t["TargetGroupArn"] for t in tgs]) if tgs else {}
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        selector = (svc.get("spec") or {}).get("selector") or {}
        pods: list[dict[str, Any]] | None = None
        found = 0
        missing: list[str] = []
        for port in (svc.get("spec") or {}).get("ports") or []:
            number = int(port.get("port", 0))
            listener = next((lst for lst in listeners if int(lst.get("Port", 0)) == number), None)
            tg, how_tg = self._target_group_for(tgs, tags, listener, ns, name, number)
            if tg is None:
                missing.append(f"{number} ({port.get('name', '')})" if port.get("name") else str(number))
                continue
            if pods is None:
                pods = self._pods(ns, selector) if selector else []
            target_ids, pod_names, deployment = self._targets(ctx, tg, pods)
            found += 1
            self.result.paths.append(PathCandidate(
                gateway=ref, service=f"{ns}/{name}", port=number, target_port=port.get("targetPort", number),
                nlb={"name": lb["LoadBalancerName"], "arn": lb["LoadBalancerArn"], "dns_name": lb["DNSName"],
                     "scheme": lb.get("Scheme", "")},
                listener_port=int(listener["Port"]) if listener else number,
                target_group_arn=tg["TargetGroupArn"], target_type=tg.get("TargetType", ""), region=region,
                deployment=deployment, pods=pod_names,
                listener_protocol=str(listener.get("Protocol") or "TCP") if listener else "TCP",
                how={
                    "gateway": gw_how,
                    "region": how_region,
                    "nlb": f"DescribeLoadBalancers: the LB whose DNSName is {lb['DNSName']} (status.loadBalancer."
                           f"ingress[0].hostname of {ns}/{name})",
                    "listener_port": f"DescribeListeners: listener on port {number}" if listener else "no listener",
                    "target_group_arn": how_tg,
                    "pods": (f"DescribeTargetHealth targets {', '.join(target_ids) or 'none'} matched to pods "
                             f"selected by {','.join(f'{k}={v}' for k, v in sorted(selector.items()))}"),
                    "deployment": "the pods' ReplicaSet owner minus its pod-template-hash" if deployment else
                                  "no pod registered as a target",
                },
            ))
        if not found:
            self.result.problems.append(Problem(
                where, f"the NLB {lb['LoadBalancerName']} has no target group for any port of this Service "
                f"(ports {', '.join(missing) or 'none'}; listeners "
                f"{', '.join(str(lst.get('Port')) for lst in listeners) or 'none'})",
                "the load balancer controller has not reconciled the Service (check its logs and the Service events), "
                "or the listener forwards to a target group owned by something else"))
        elif missing:
            self.result.notes.append(f"{where}: no NLB listener / target group for port(s) {', '.join(missing)}")

    def _target_group_for(self, tgs: list[dict[str, Any]], tags: dict[str, dict[str, str]], listener: Any,
                          ns: str, name: str, port: int) -> tuple[dict[str, Any] | None, str]:
        """The target group of this Service port: owned by the Service (tags), preferably the listener's."""
        stack, resource = f"{ns}/{name}", f"{ns}/{name}:{port}"

        def owned(tg: dict[str, Any]) -> str | None:
            t = tags.get(tg["TargetGroupArn"], {})
            if t.get(LBC_STACK_TAG) == stack and t.get(LBC_RESOURCE_TAG) == resource:
                return f"tags {LBC_STACK_TAG}={stack}, {LBC_RESOURCE_TAG}={resource} (AWS Load Balancer Controller)"
            if t.get(IN_TREE_SERVICE_TAG) == stack and listener is not None and tg["TargetGroupArn"] in _forwards(listener):
                return f"tag {IN_TREE_SERVICE_TAG}={stack} (in-tree cloud provider) on the listener's target group"
            return None

        if listener is not None:
            for tg in tgs:
                if tg["TargetGroupArn"] in _forwards(listener):
                    why = owned(tg)
                    if why:
                        return tg, f"listener {port} forwards to it; {why}"
        for tg in tgs:
            if (tags.get(tg["TargetGroupArn"], {}).get(LBC_RESOURCE_TAG)) == resource:
                return tg, f"tag {LBC_RESOURCE_TAG}={resource} (AWS Load Balancer Controller)"
        return None, ""

    def _targets(self, ctx: ProbeContext, tg: dict[str, Any], pods: list[dict[str, Any]]) -> tuple[list[str], list[str], str]:
        health = ctx.aws_call("elbv2", "describe_target_health", TargetGroupArn=tg["TargetGroupArn"])
        ids = [d["Target"]["Id"] for d in drain.in_service(health.get("TargetHealthDescriptions", []))]
        pods = [p for p in pods if drain.deleted_at(p) is None]  # Terminating pods of a rollout serve no longer
        if tg.get("TargetType") == "ip":
            matched = [p for p in pods if (p.get("status") or {}).get("podIP") in ids or
                       any(i.get("ip") in ids for i in (p.get("status") or {}).get("podIPs") or [])]
        else:  # instance targets: every selected pod is behind the node ports
            matched = list(pods)
        names = sorted(p["metadata"]["name"] for p in matched)
        deployment = ""
        for pod in matched:
            deployment = _deployment_of(pod)
            if deployment:
                break
        return ids, names, deployment


def _forwards(listener: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for action in listener.get("DefaultActions") or []:
        if action.get("TargetGroupArn"):
            out.add(action["TargetGroupArn"])
        for tg in ((action.get("ForwardConfig") or {}).get("TargetGroups") or []):
            out.add(tg.get("TargetGroupArn", ""))
    return out


def _deployment_of(pod: dict[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    tmpl_hash = (meta.get("labels") or {}).get("pod-template-hash", "")
    for owner in meta.get("ownerReferences") or []:
        if owner.get("kind") == "ReplicaSet" and tmpl_hash and owner.get("name", "").endswith(f"-{tmpl_hash}"):
            return f"{meta.get('namespace', '')}/{owner['name'][: -len(tmpl_hash) - 1]}"
    return ""


def discover(config: TargetConfig) -> Discovery:
    """Every candidate path from the kube context and AWS credentials of ``config`` (blocking)."""
    walker = _Discoverer(config)
    try:
        return walker.run()
    finally:
        walker.close()
