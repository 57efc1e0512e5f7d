"""Discovery against the lab's Kubernetes API and moto (no Envoy): every bad input gives a message and a next step.

Each test puts the cluster objects it needs into the lab API, the AWS objects into moto (through
boto3, as the controllers would), and reads what discovery says. AWS faults come from the fault
proxy in front of moto (tests/probes/awsfault.py), RBAC faults from the lab API's fault injection.
"""

from __future__ import annotations

import uuid

import pytest

from ppdoctor.config import AwsTarget, KubeTarget, TargetConfig, Timeouts
from ppdoctor.discovery.engine import discover
from ppdoctor.discovery.target import ChoiceNeeded, choose, resolve_config
from ppdoctor.errors import ConfigError
from ppdoctor.lab import manifests
from ppdoctor.lab.aws import MotoServer, aws_client
from ppdoctor.lab.awsshape import make_nlb_real, owner_tags
from ppdoctor.lab.gatewayapi import Ports, gateway_resource, generated_objects
from ppdoctor.lab.kubeapi import ThreadedKubeApiServer
from ppdoctor.lab.kubeapi.faults import FaultRule
from ppdoctor.lab.scenario import GatewayApiSpec

from ..probes.awsfault import FaultProxy

REGION = "us-east-1"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    moto = MotoServer()
    moto.start()
    proxy = FaultProxy(moto.endpoint_url)
    kube = ThreadedKubeApiServer(manifests.base_objects() + [_ns("gw")], token="t0ken", host="127.0.0.1", port=0)
    kube.start()
    path = tmp_path_factory.mktemp("kube") / "kubeconfig"
    kube.write_kubeconfig(str(path))
    ec2 = aws_client("ec2", moto.endpoint_url, REGION)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24", AvailabilityZone=f"{REGION}{az}")["Subnet"]["SubnetId"]
               for i, az in ((1, "a"), (2, "b"))]
    yield {"moto": moto, "proxy": proxy, "kube": kube, "kubeconfig": path, "vpc": vpc, "subnets": subnets}
    kube.stop()
    proxy.close()
    moto.stop()


@pytest.fixture
def w(world):
    world["proxy"].reset()
    world["kube"].clear_faults()
    yield world
    world["proxy"].reset()
    world["kube"].clear_faults()
    for plural in ("services", "pods", "deployments"):
        for obj in world["kube"].call(world["kube"].store.list, plural):
            if obj["metadata"]["namespace"] in ("gw", "istio-system"):
                world["kube"].call(world["kube"].store.delete, plural, obj["metadata"]["namespace"], obj["metadata"]["name"])
    for obj in world["kube"].call(world["kube"].store.list, ("gateway.networking.k8s.io", "v1", "gateways")):
        world["kube"].call(world["kube"].store.delete, ("gateway.networking.k8s.io", "v1", "gateways"),
                           obj["metadata"]["namespace"], obj["metadata"]["name"])


def _ns(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def cfg(w, *, endpoint: str | None = None, namespace: str = "istio-system") -> TargetConfig:
    return TargetConfig(
        aws=AwsTarget(region=REGION, endpoint_url=endpoint or w["proxy"].endpoint_url, static_credentials=True),
        kubernetes=KubeTarget(kubeconfig=str(w["kubeconfig"]), context="ppdoctor-lab", namespace=namespace),
        timeouts=Timeouts(connect=1.0, response=2.0, api=3.0, total=10.0),
    )


def put(w, *objs: dict) -> None:
    for obj in objs:
        w["kube"].call(w["kube"].store.put, obj)


def helm_service(ns: str = "gw", name: str = "istio-ingressgateway", *, hostname: str | None = None,
                 type_: str = "LoadBalancer") -> dict:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": dict(manifests.GATEWAY_LABELS)},
        "spec": {"type": type_, "selector": dict(manifests.GATEWAY_LABELS),
                 "ports": [{"name": "http2", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                           {"name": "status-port", "port": 15021, "targetPort": 15021, "protocol": "TCP"}]},
        "status": {"loadBalancer": {"ingress": [{"hostname": hostname}]} if hostname else {}},
    }


def helm_pod(ns: str = "gw", ip: str = "10.9.2.10") -> list[dict]:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "istio-ingressgateway", "namespace": ns},
                  "spec": {"selector": {"matchLabels": dict(manifests.GATEWAY_LABELS)},
                           "template": {"metadata": {"labels": dict(manifests.GATEWAY_LABELS)},
                                        "spec": {"containers": [{"name": "istio-proxy", "image": "istio/proxyv2"}]}}}}
    return [deployment, manifests.pod_for(deployment, ip=ip, started_at="2026-01-01T00:00:00Z")]


def nlb(w, *, ns: str = "gw", service: str = "istio-ingressgateway", listener_port: int = 80, port: int = 80,
        tags_style: str = "lbc", target_ip: str = "10.9.2.10", lb_type: str = "network") -> dict:
    elbv2 = aws_client("elbv2", w["moto"].endpoint_url, REGION)
    name = f"t-{uuid.uuid4().hex[:10]}"
    lb = elbv2.create_load_balancer(Name=name, Subnets=w["subnets"], Type=lb_type)["LoadBalancers"][0]
    arn, dns = (make_nlb_real(lb["LoadBalancerArn"], lb["DNSName"]) if lb_type == "network"
                else (lb["LoadBalancerArn"], lb["DNSName"]))
    base = {"elbv2.k8s.aws/cluster": "lab"} if tags_style == "lbc" else {"kubernetes.io/cluster/lab": "owned"}
    tags = owner_tags(base, ns, service, port)
    tg = elbv2.create_target_group(Name=f"{name}-tg", Protocol="TCP" if lb_type == "network" else "HTTP",
                                   Port=8080, VpcId=w["vpc"], TargetType="ip",
                                   Tags=[{"Key": k, "Value": v} for k, v in tags.items()])["TargetGroups"][0]
    elbv2.create_listener(LoadBalancerArn=arn, Protocol="TCP" if lb_type == "network" else "HTTP", Port=listener_port,
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
    elbv2.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": target_ip, "Port": 8080}])
    return {"arn": arn, "dns": dns, "tg": tg["TargetGroupArn"], "name": name}


# --- what works -------------------------------------------------------------------------------

def test_helm_gateway_behind_an_lbc_nlb(w):
    lb = nlb(w)
    put(w, helm_service(hostname=lb["dns"]), *helm_pod())
    result = discover(cfg(w))
    assert [(p.service, p.port, p.target_group_arn) for p in result.paths] == [("gw/istio-ingressgateway", 80, lb["tg"])]
    path = result.paths[0]
    assert path.nlb["arn"] == lb["arn"] and ":loadbalancer/net/" in path.nlb["arn"]
    assert path.deployment == "gw/istio-ingressgateway" and len(path.pods) == 1
    assert "service.k8s.aws/resource=gw/istio-ingressgateway:80" in path.how["target_group_arn"]
    assert any("15021" in n for n in result.notes)  # the status port has no listener: said, not a problem
    assert not result.problems


def test_in_tree_tags_own_the_listener_target_group(w):
    lb = nlb(w, tags_style="in-tree")
    put(w, helm_service(hostname=lb["dns"]), *helm_pod())
    result = discover(cfg(w))
    assert [p.target_group_arn for p in result.paths] == [lb["tg"]]
    assert "kubernetes.io/service-name" in result.paths[0].how["target_group_arn"]


def test_gateway_api_gateway_and_its_generated_service(w):
    ports = Ports(traffic=8080, tls=8443, status=15021, admin=15000)
    gw = gateway_resource(GatewayApiSpec(name="edge", namespace="gw"))
    lb = nlb(w, service="edge-istio", target_ip="10.9.2.11")
    deployment, service = generated_objects(gw, ports, lb_hostname=lb["dns"])
    put(w, gw, deployment, service, manifests.pod_for(deployment, ip="10.9.2.11", started_at="2026-01-01T00:00:00Z"))
    result = discover(cfg(w))
    assert [(p.gateway.kind, p.gateway.ref(), p.service, p.port) for p in result.paths] == [
        ("Gateway", "gw/edge", "gw/edge-istio", 80)]
    assert result.paths[0].deployment == "gw/edge-istio"


def test_several_paths_need_a_choice_and_flags_make_it(w):
    a, b = nlb(w), nlb(w, service="second", target_ip="10.9.2.12")
    put(w, helm_service(hostname=a["dns"]), helm_service(name="second", hostname=b["dns"]), *helm_pod())
    result = discover(cfg(w))
    with pytest.raises(ChoiceNeeded) as err:
        choose(result)
    assert "--gateway gw/istio-ingressgateway --port 80" in str(err.value)
    assert "--gateway gw/second --port 80" in str(err.value)
    assert choose(result, gateway="gw/second").target_group_arn == b["tg"]
    with pytest.raises(ConfigError, match="no discovered path has this gateway"):
        choose(result, gateway="gw/nope")


def test_config_file_fields_override_discovered_ones(w, tmp_path):
    lb = nlb(w)
    put(w, helm_service(hostname=lb["dns"]), *helm_pod())
    file = tmp_path / "partial.toml"
    file.write_text(f'[kubernetes]\nkubeconfig = "{w["kubeconfig"]}"\ncontext = "ppdoctor-lab"\n'
                    f'[aws]\nregion = "{REGION}"\nendpoint_url = "{w["proxy"].endpoint_url}"\nstatic_credentials = true\n'
                    '[nlb]\naddress = "127.0.0.9:8080"\n[echo]\npath = "/status/200"\n', encoding="utf-8")
    resolved = resolve_config(file, env={})
    assert resolved.nlb.address == "127.0.0.9:8080"  # the file's
    assert resolved.echo.path == "/status/200"
    assert resolved.nlb.arn == lb["arn"] and resolved.aws.target_group_arns == (lb["tg"],)  # discovered
    assert (resolved.kubernetes.namespace, resolved.kubernetes.gateway_service) == ("gw", "istio-ingressgateway")


# --- bad input ----------------------------------------------------------------------------------

def test_no_load_balancer_service(w):
    put(w, helm_service(type_="ClusterIP"), *helm_pod())
    result = discover(cfg(w))
    assert not result.paths
    [problem] = result.problems
    assert "no LoadBalancer Service selects Istio ingress gateway pods" in problem.message
    assert "gw/istio-ingressgateway (type ClusterIP)" in problem.message
    assert "type: LoadBalancer" in problem.hint
    with pytest.raises(ConfigError, match="no usable path"):
        choose(result)


def test_pending_load_balancer(w):
    put(w, helm_service(hostname=None), *helm_pod())
    [problem] = discover(cfg(w)).problems
    assert "still pending" in problem.message and "kubectl describe svc -n gw istio-ingressgateway" in problem.hint


def test_application_load_balancer(w):
    lb = nlb(w, lb_type="application")
    put(w, helm_service(hostname=lb["dns"]), *helm_pod())
    [problem] = discover(cfg(w)).problems
    assert "application load balancer" in problem.message and "not an NLB" in problem.message


def test_classic_load_balancer(w):
    put(w, helm_service(hostname="a0123456789abcdef-1234567890.us-east-1.elb.amazonaws.com"), *helm_pod())
    [problem] = discover(cfg(w)).problems
    assert "Classic Load Balancer" in problem.message
    assert "aws-load-balancer-type" in problem.hint


def test_nlb_in_another_account_or_region(w):
    put(w, helm_service(hostname="other-0123456789abcdef.elb.eu-west-1.amazonaws.com"), *helm_pod())
    [problem] = discover(cfg(w)).problems
    assert "region eu-west-1" in problem.message
    assert "another account or region" in problem.hint and "AWS_PROFILE" in problem.hint


def test_no_target_group_for_the_port(w):
    lb = nlb(w, listener_port=8443, port=8443)  # listener and TG for another port
    put(w, helm_service(hostname=lb["dns"]), *helm_pod())
    result = discover(cfg(w))
    [problem] = result.problems
    assert "no target group for any port of this Service" in problem.message
    assert "listeners 8443" in problem.message


def test_access_denied_names_the_action(w):
    lb = nlb(w)
    put(w, helm_service(hostname=lb["dns"]), *helm_pod())
    w["proxy"].deny("DescribeLoadBalancers", "elasticloadbalancing:DescribeLoadBalancers")
    [problem] = discover(cfg(w)).problems
    assert "elasticloadbalancing:DescribeLoadBalancers" in problem.message
    assert "grant the IAM action elasticloadbalancing:DescribeLoadBalancers" in problem.hint
    assert "ppdoctor permissions --aws" in problem.hint


class _ClusterWideOnly(FaultRule):
    """403 for the all-namespaces request only (RBAC with a Role in one namespace, no ClusterRole)."""

    def matches(self, info):  # noqa: ANN001
        return info.namespace is None and super().matches(info)


def test_rbac_without_cluster_wide_list_falls_back_to_the_namespace(w):
    lb = nlb(w)
    put(w, helm_service(hostname=lb["dns"]), *helm_pod())
    w["kube"].faults.add(_ClusterWideOnly(verb="list", resource="services", status=403))
    result = discover(cfg(w, namespace="gw"))
    assert [p.service for p in result.paths] == ["gw/istio-ingressgateway"]
    assert any("looked only in namespace gw" in n and "ppdoctor permissions --kube" in n for n in result.notes)


def test_rbac_without_cluster_wide_list_and_nothing_in_the_namespace(w):
    lb = nlb(w)
    put(w, helm_service(hostname=lb["dns"]), *helm_pod())
    w["kube"].faults.add(_ClusterWideOnly(verb="list", resource="services", status=403))
    result = discover(cfg(w, namespace="istio-system"))
    assert not result.paths
    assert "in namespace istio-system" in result.problems[0].message
