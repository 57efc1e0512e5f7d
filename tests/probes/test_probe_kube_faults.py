"""The kube probe through the official client against the lab's in-process API server, with API faults.

The API server holds the lab's manifests (gateway Service/Deployment/pod, the ``istio``
ConfigMap with PROXY protocol added after the pod started, an EnvoyFilter that adds the
PROXY filter, the AWS LB Controller); faults are injected per verb and resource.
"""

from __future__ import annotations

import asyncio

import pytest

from ppdoctor.config import KubeTarget, TargetConfig, Timeouts
from ppdoctor.lab import addresses, manifests
from ppdoctor.lab.kubeapi import ThreadedKubeApiServer, write_kubeconfig
from ppdoctor.lab.scenario import load_scenario
from ppdoctor.probes import ProbeContext, run_probe
from ppdoctor.probes.model import Status

from . import peers

POD_STARTED = "2026-01-01T00:00:00Z"  # the mesh ConfigMap's last change (stamped by the API server) is later
TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/k8s-istiosys-istioing-5f1e2d3c4b/0123456789abcdef"


def lab_objects() -> list[dict]:
    sc = load_scenario("mesh-config-pods-predate")
    ports = manifests.PortMap(traffic=18080, tls=18443, status=15021, admin=15000, echo=18000)
    deployment = manifests.gateway_deployment(sc, ports)
    mesh = manifests.mesh_configmap(sc, with_topology=True)
    return [
        *manifests.base_objects(),
        mesh,
        deployment,
        manifests.gateway_service(sc, ports, lb_hostname="istio-ingress-nlb-0123.elb.us-east-1.amazonaws.com"),
        manifests.pod_for(deployment, ip=addresses.GATEWAY_POD_IP, started_at=POD_STARTED),
        *manifests.echo_objects(sc, ports),
        *manifests.lbc_objects(sc, tg_arn=TG_ARN),
        *manifests.extra_objects(load_scenario("envoyfilter-after-tls-inspector")),
    ]


@pytest.fixture(scope="module")
def kubeapi(tmp_path_factory):
    server = ThreadedKubeApiServer(lab_objects(), token="s3cret-token", host="127.0.0.1", port=0)
    server.start()
    path = tmp_path_factory.mktemp("kube") / "kubeconfig"
    server.write_kubeconfig(str(path))
    yield server, path
    server.stop()


@pytest.fixture
def api(kubeapi):
    server, path = kubeapi
    server.clear_faults()
    yield server, path
    server.clear_faults()


def config_for(kubeconfig) -> TargetConfig:
    return TargetConfig(kubernetes=KubeTarget(kubeconfig=str(kubeconfig), context="ppdoctor-lab"),
                        timeouts=Timeouts(connect=1.0, response=2.0, api=3.0, total=10.0))


def run_kube(kubeconfig):
    async def one():
        ctx = ProbeContext(config_for(kubeconfig))
        try:
            return await run_probe("kube", ctx)
        finally:
            ctx.close()

    return asyncio.run(one())


def test_baseline_facts(api):
    _, path = api
    obs = run_kube(path)
    assert obs.status == Status.OK, obs.as_dict()
    f = {k: v.value for k, v in obs.facts.items()}
    assert f["mesh.pp"] is True
    assert f["mesh.changed_at"] > "2026-01-01T00:00:00+00:00"  # the API server stamps managedFields itself
    assert f["gateway.pods_predate_mesh"] is True
    assert [p["name"] for p in f["envoyfilter.pp"]] == ["proxy-protocol"]
    assert f["gateway.pp_configured"] == ["mesh config", "EnvoyFilter istio-system/proxy-protocol"]
    assert f["lbc.installed"] is True
    assert f["lbc.tgbs"] == [TG_ARN]
    assert f["gateway.pods"][0]["ip"] == addresses.GATEWAY_POD_IP


def test_rbac_forbids_get_deployments(api):
    server, path = api
    server.forbid("get", "deployments.apps")
    obs = run_kube(path)
    assert obs.status == Status.ERROR, obs.as_dict()
    assert obs.error["kind"] == "kube"
    assert obs.summary.startswith("RBAC forbids get deployments.apps in namespace istio-system: ")
    assert 'cannot get resource "deployments" in API group "apps"' in obs.summary, "the apiserver's own words"
    assert obs.error["hint"].startswith("grant the verb 'get' on 'deployments.apps' in namespace istio-system (")
    assert obs.error["hint"].endswith("to the identity in the kubeconfig "
                                      "(`ppdoctor permissions --kube` prints the whole ClusterRole)")


def test_rbac_forbids_list_pods(api):
    server, path = api
    server.forbid("list", "pods")
    obs = run_kube(path)
    assert obs.status == Status.ERROR
    assert "RBAC forbids list pods in namespace istio-system" in obs.summary


def test_mesh_configmap_missing_leaves_mesh_facts_absent(api):
    server, path = api
    server.inject_fault("get", "configmaps", "istio", status=404)
    obs = run_kube(path)
    assert obs.status == Status.OK, obs.as_dict()
    f = {k: v.value for k, v in obs.facts.items()}
    assert f["mesh.pp"] is False
    assert f["mesh.changed_at"] is None
    assert "gateway.pods_predate_mesh" not in f, "nothing to predate"
    assert f["gateway.pp_configured"] == ["EnvoyFilter istio-system/proxy-protocol"]


def test_throttled_is_classified(api):
    server, path = api
    rule = server.throttle("get", "services", retry_after=1, times=None)
    obs = run_kube(path)
    assert obs.status == Status.ERROR, obs.as_dict()
    assert obs.summary.startswith("the Kubernetes API throttled get services: ")
    assert "retry" in obs.error["hint"]
    assert rule.hits == 4, "urllib3 honours Retry-After on 429: the request and 3 retries"


def test_throttled_once_then_served(api):
    server, path = api
    rule = server.throttle("get", "deployments.apps", retry_after=0, times=1)
    obs = run_kube(path)
    assert obs.status == Status.OK, obs.as_dict()
    assert rule.hits == 1


def test_envoyfilter_crd_missing(api):
    server, path = api
    server.inject_fault("list", "envoyfilters.networking.istio.io", status=404)
    obs = run_kube(path)
    assert obs.status == Status.OK, obs.as_dict()
    assert obs.facts["envoyfilter.pp"].value == []
    assert "envoyfilter.error" not in obs.facts
    assert obs.facts["gateway.pp_configured"].value == ["mesh config"]


def test_envoyfilters_forbidden_is_unknown_not_empty(api):
    """RBAC hides the EnvoyFilters: the probe must not claim there is none."""
    server, path = api
    server.forbid("list", "envoyfilters.networking.istio.io")
    obs = run_kube(path)
    assert obs.status == Status.OK, obs.as_dict()
    assert "RBAC forbids list envoyfilters.networking.istio.io" in obs.facts["envoyfilter.error"].value
    assert "envoyfilter.pp" not in obs.facts
    assert obs.facts["gateway.pp_configured"].value == ["mesh config"]
    assert obs.facts["gateway.pp_configured"].note.startswith("EnvoyFilters unknown: RBAC forbids")


def test_targetgroupbindings_forbidden_is_unknown_not_empty(api):
    server, path = api
    server.forbid("list", "targetgroupbindings.elbv2.k8s.aws")
    obs = run_kube(path)
    assert obs.status == Status.OK, obs.as_dict()
    fact = obs.facts["lbc.tgbs"]
    assert fact.value is None
    assert "RBAC forbids list targetgroupbindings.elbv2.k8s.aws" in fact.note


def test_lbc_lookup_forbidden_is_a_noted_unknown(api):
    server, path = api
    server.forbid("list", "deployments.apps", namespace="kube-system")
    obs = run_kube(path)
    assert obs.status == Status.OK, obs.as_dict()
    fact = obs.facts["lbc.installed"]
    assert fact.value is None
    assert "RBAC forbids list deployments.apps in namespace kube-system" in fact.note


def test_wrong_token(api, tmp_path):
    server, _ = api
    path = tmp_path / "kubeconfig"
    write_kubeconfig(path, server.url, "wrong-token")
    obs = run_kube(path)
    assert obs.status == Status.ERROR
    assert "rejected the credentials" in obs.summary
    assert "refresh the kubeconfig credentials" in obs.error["hint"]


def test_api_server_unreachable(tmp_path):
    path = tmp_path / "kubeconfig"
    write_kubeconfig(path, f"http://127.0.0.1:{peers.refused_port()}", "t")
    obs = run_kube(path)
    assert obs.status == Status.ERROR
    assert "check that the API server in the kubeconfig is reachable" in obs.summary


def test_missing_kubeconfig(tmp_path):
    obs = run_kube(tmp_path / "nope")
    assert obs.status == Status.ERROR
    assert obs.summary.startswith("cannot load the kubeconfig")
