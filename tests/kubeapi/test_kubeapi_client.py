"""CRUD, selectors, patches and error shapes, all through the official kubernetes client."""

from __future__ import annotations

import json

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from .conftest import GW, NS


def status_of(exc: ApiException) -> dict:
    return json.loads(exc.body)


# --------------------------------------------------------------------------- discovery / kubeconfig


def test_discovery_and_version(api):
    assert client.CoreApi(api).get_api_versions().versions == ["v1"]
    groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}
    assert set(groups) == {"apps", "networking.istio.io", "elbv2.k8s.aws", "gateway.networking.k8s.io"}
    assert groups["networking.istio.io"].preferred_version.version == "v1"
    assert [v.version for v in groups["networking.istio.io"].versions] == ["v1", "v1beta1", "v1alpha3"]
    names = {r.name: r for r in client.AppsV1Api(api).get_api_resources().resources}
    assert names["deployments"].kind == "Deployment" and names["deployments"].namespaced
    assert "deployments/status" in names
    core = {r.name: r for r in client.CoreV1Api(api).get_api_resources().resources}
    assert core["pods/portforward"].kind == "PodPortForwardOptions"
    assert not core["namespaces"].namespaced
    istio = client.CustomObjectsApi(api).get_api_resources("networking.istio.io", "v1alpha3")
    assert {r.name for r in istio.resources} >= {"envoyfilters", "gateways", "virtualservices"}
    assert client.VersionApi(api).get_code().major == "1"


def test_load_kube_config_into_configuration(lab):
    cfg = client.Configuration()
    config.load_kube_config(config_file=lab.kubeconfig, client_configuration=cfg)
    assert cfg.host == lab.url
    with client.ApiClient(cfg) as api_client:
        ns = client.CoreV1Api(api_client).read_namespace(NS)
    assert ns.status.phase == "Active"
    _contexts, active = config.list_kube_config_contexts(config_file=lab.kubeconfig)
    assert active["name"] == "ppdoctor-lab" and active["context"]["namespace"] == "istio-system"


def test_bad_token_is_401(lab, tmp_path):
    from ppdoctor.lab.kubeapi import write_kubeconfig

    for token in ("wrong-token", None):
        path = write_kubeconfig(tmp_path / f"bad-{token}", lab.url, token)
        with config.new_client_from_config(config_file=path) as api_client, pytest.raises(ApiException) as ei:
            client.CoreV1Api(api_client).list_namespaced_pod(NS)
        assert ei.value.status == 401
        body = status_of(ei.value)
        assert body["reason"] == "Unauthorized" and body["kind"] == "Status" and body["code"] == 401
    # /version stays public like on a real cluster
    with config.new_client_from_config(config_file=path) as api_client:
        assert client.VersionApi(api_client).get_code().git_version.startswith("v1.")


# --------------------------------------------------------------------------- get / list / selectors


def test_get_and_list(core, apps, lab):
    d = apps.read_namespaced_deployment(GW, NS)
    assert d.metadata.uid and d.metadata.creation_timestamp and d.metadata.generation == 1
    assert int(d.metadata.resource_version) > 0
    assert d.spec.strategy.type == "RollingUpdate"  # defaulted like the apiserver
    pods = core.list_pod_for_all_namespaces()
    assert [p.metadata.name for p in pods.items] == ["echo-1", "echo-2", f"{GW}-7d9f8b-abcde"]
    assert int(pods.metadata.resource_version) == int(lab.store.resource_version)
    raw = core.list_namespaced_pod("echo", _preload_content=False)
    body = json.loads(raw.data)
    assert body["kind"] == "PodList" and body["apiVersion"] == "v1"
    assert "kind" not in body["items"][0]  # like the real apiserver for built-in types
    assert core.read_namespaced_config_map("istio", NS).data["mesh"].startswith("defaultConfig")


@pytest.mark.parametrize(
    "selector, expected",
    [
        ("app=echo", ["echo-1", "echo-2"]),
        ("app==echo", ["echo-1", "echo-2"]),
        ("app!=echo", [f"{GW}-7d9f8b-abcde"]),
        ("tier in (edge, backend)", ["echo-1", f"{GW}-7d9f8b-abcde"]),
        ("tier notin (edge)", ["echo-1", "echo-2"]),
        ("version", ["echo-2"]),
        ("!version", ["echo-1", f"{GW}-7d9f8b-abcde"]),
        ("app=echo,!version", ["echo-1"]),
        ("app in (echo),tier", ["echo-1"]),
    ],
)
def test_label_selectors(core, selector, expected):
    got = core.list_pod_for_all_namespaces(label_selector=selector)
    assert [p.metadata.name for p in got.items] == expected


def test_field_selectors(core):
    got = core.list_pod_for_all_namespaces(field_selector="metadata.namespace=echo,metadata.name!=echo-1")
    assert [p.metadata.name for p in got.items] == ["echo-2"]
    got = core.list_pod_for_all_namespaces(field_selector="status.phase=Running")
    assert {p.metadata.name for p in got.items} == {"echo-1", f"{GW}-7d9f8b-abcde"}
    with pytest.raises(ApiException) as ei:
        core.list_namespaced_pod("echo", field_selector="spec.bogus=1")
    assert ei.value.status == 400 and "field label not supported" in status_of(ei.value)["message"]
    with pytest.raises(ApiException) as ei:
        core.list_namespaced_pod("echo", label_selector="app in (")
    assert ei.value.status == 400 and status_of(ei.value)["reason"] == "BadRequest"


def test_pagination(core):
    first = core.list_pod_for_all_namespaces(limit=2)
    assert len(first.items) == 2 and first.metadata._continue
    assert first.metadata.remaining_item_count == 1
    rest = core.list_pod_for_all_namespaces(limit=2, _continue=first.metadata._continue)
    assert [p.metadata.name for p in rest.items] == [f"{GW}-7d9f8b-abcde"]
    assert not rest.metadata._continue


# --------------------------------------------------------------------------- patches


def test_strategic_merge_patch_of_pod_template(apps, lab):
    before = apps.read_namespaced_deployment(GW, NS)
    patched = apps.patch_namespaced_deployment(
        GW, NS,
        {"spec": {"template": {"metadata": {"annotations": {
            "proxy.istio.io/config": '{"gatewayTopology":{"proxyProtocol":{}}}'}}}}},
    )
    # a dict body goes out as strategic merge (the client rewrites its default json-patch type)
    assert lab.requests[-1].method == "PATCH"
    assert lab.requests[-1].content_type == "application/strategic-merge-patch+json"
    ann = patched.spec.template.metadata.annotations
    assert ann == {"sidecar.istio.io/inject": "false", "proxy.istio.io/config": '{"gatewayTopology":{"proxyProtocol":{}}}'}
    assert int(patched.metadata.resource_version) > int(before.metadata.resource_version)
    assert patched.metadata.generation == before.metadata.generation + 1
    # a metadata-only change bumps resourceVersion but not generation
    meta_only = apps.patch_namespaced_deployment(GW, NS, {"metadata": {"annotations": {"x": "y"}}})
    assert meta_only.metadata.generation == patched.metadata.generation
    assert int(meta_only.metadata.resource_version) > int(patched.metadata.resource_version)


def test_strategic_merge_lists_by_patch_merge_key(apps):
    patched = apps.patch_namespaced_deployment(
        GW, NS,
        {"spec": {"template": {"spec": {"containers": [{
            "name": "istio-proxy",
            "env": [{"name": "ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL", "value": "true"}],
            "ports": [{"containerPort": 15021, "name": "status"}, {"containerPort": 15090, "name": "http-envoy-prom"}],
        }]}}}},
    )
    containers = {c.name: c for c in patched.spec.template.spec.containers}
    assert set(containers) == {"istio-proxy", "helper"}  # merged by name, not replaced
    proxy = containers["istio-proxy"]
    assert [e.name for e in proxy.env] == ["ISTIO_META_ROUTER_MODE", "ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL"]
    assert [(p.container_port, p.name) for p in proxy.ports] == [
        (8080, "http2"), (8443, "https"), (15021, "status"), (15090, "http-envoy-prom")]
    # $patch: delete removes one element by its merge key
    patched = apps.patch_namespaced_deployment(
        GW, NS, {"spec": {"template": {"spec": {"containers": [{"name": "helper", "$patch": "delete"}]}}}})
    assert [c.name for c in patched.spec.template.spec.containers] == ["istio-proxy"]


def test_merge_and_json_patch_content_types(apps, lab):
    # merge patch replaces lists wholesale
    patched = apps.patch_namespaced_deployment(
        GW, NS, {"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x:1"}]}}}},
        _content_type="application/merge-patch+json",
    )
    assert lab.requests[-1].content_type == "application/merge-patch+json"
    assert [c.name for c in patched.spec.template.spec.containers] == ["only"]
    # a list body goes out as JSON patch
    patched = apps.patch_namespaced_deployment(
        GW, NS, [{"op": "replace", "path": "/spec/replicas", "value": 3},
                 {"op": "add", "path": "/metadata/labels/patched", "value": "yes"}],
    )
    assert lab.requests[-1].content_type == "application/json-patch+json"
    assert patched.spec.replicas == 3 and patched.metadata.labels["patched"] == "yes"
    with pytest.raises(ApiException) as ei:
        apps.patch_namespaced_deployment(GW, NS, [{"op": "test", "path": "/spec/replicas", "value": 9}])
    assert ei.value.status == 422


def test_select_header_content_type(api, apps, lab):
    offered = ["application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml"]
    # the generated code picks the first JSON type; rest.py then turns it into strategic
    # merge for non-list bodies
    assert api.select_header_content_type(offered) == "application/json-patch+json"
    apps.patch_namespaced_deployment(GW, NS, {"metadata": {"labels": {"a": "b"}}},
                                     _content_type="application/strategic-merge-patch+json")
    assert lab.requests[-1].content_type == "application/strategic-merge-patch+json"
    with pytest.raises(ApiException) as ei:
        apps.patch_namespaced_deployment(GW, NS, {"metadata": {"labels": {"a": "b"}}},
                                         _content_type="application/apply-patch+yaml")
    assert ei.value.status == 415 and status_of(ei.value)["reason"] == "UnsupportedMediaType"


def test_custom_objects_merge_patch_across_versions(custom, lab):
    g = "networking.istio.io"
    patched = custom.patch_namespaced_custom_object(
        g, "v1alpha3", NS, "envoyfilters", "proxy-protocol",
        {"spec": {"configPatches": [{"applyTo": "LISTENER", "patch": {"operation": "MERGE", "value": {
            "listener_filters": [{"name": "envoy.filters.listener.tls_inspector"},
                                 {"name": "envoy.filters.listener.proxy_protocol"}]}}}]}},
    )
    assert lab.requests[-1].content_type == "application/merge-patch+json"
    assert patched["apiVersion"] == "networking.istio.io/v1alpha3"
    assert patched["metadata"]["generation"] == 2
    for version in ("v1", "v1beta1", "v1alpha3"):
        obj = custom.get_namespaced_custom_object(g, version, NS, "envoyfilters", "proxy-protocol")
        assert obj["apiVersion"] == f"{g}/{version}"
        names = [f["name"] for f in obj["spec"]["configPatches"][0]["patch"]["value"]["listener_filters"]]
        assert names[0] == "envoy.filters.listener.tls_inspector"
    listed = custom.list_cluster_custom_object(g, "v1beta1", "gateways")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["public"]
    assert listed["items"][0]["kind"] == "Gateway"  # custom resources keep kind in lists
    # strategic merge is not available for custom resources (as on a real cluster)
    with pytest.raises(ApiException) as ei:
        custom.patch_namespaced_custom_object(g, "v1", NS, "envoyfilters", "proxy-protocol", {"spec": {}},
                                              _content_type="application/strategic-merge-patch+json")
    assert ei.value.status == 415
    tgb = custom.get_namespaced_custom_object("elbv2.k8s.aws", "v1beta1", NS, "targetgroupbindings",
                                              "k8s-istiosys-gw-0123456789")
    assert tgb["spec"]["targetType"] == "ip"


def test_custom_object_create_replace_delete(custom):
    g, v = "networking.istio.io", "v1"
    body = {"apiVersion": f"{g}/{v}", "kind": "VirtualService", "metadata": {"name": "echo"},
            "spec": {"hosts": ["*"], "gateways": ["public"], "http": [{"route": [{"destination": {"host": "echo"}}]}]}}
    created = custom.create_namespaced_custom_object(g, v, NS, "virtualservices", body)
    assert created["metadata"]["namespace"] == NS and created["metadata"]["generation"] == 1
    created["spec"]["hosts"] = ["echo.example"]
    replaced = custom.replace_namespaced_custom_object(g, v, NS, "virtualservices", "echo", created)
    assert replaced["spec"]["hosts"] == ["echo.example"] and replaced["metadata"]["generation"] == 2
    del replaced["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as ei:  # custom resources need a resourceVersion on PUT
        custom.replace_namespaced_custom_object(g, v, NS, "virtualservices", "echo", replaced)
    assert ei.value.status == 422
    st = custom.delete_namespaced_custom_object(g, v, NS, "virtualservices", "echo")
    assert st["status"] == "Success" and st["details"]["name"] == "echo"
    with pytest.raises(ApiException) as ei:
        custom.get_namespaced_custom_object(g, v, NS, "virtualservices", "echo")
    assert status_of(ei.value)["message"] == 'virtualservices.networking.istio.io "echo" not found'


def test_noop_patch_keeps_resource_version(apps):
    before = apps.read_namespaced_deployment(GW, NS)
    same = apps.patch_namespaced_deployment(GW, NS, {"metadata": {"labels": {"app": GW}}})
    assert same.metadata.resource_version == before.metadata.resource_version


def test_dry_run_does_not_persist(apps):
    before = apps.read_namespaced_deployment(GW, NS)
    preview = apps.patch_namespaced_deployment(GW, NS, {"spec": {"replicas": 5}}, dry_run="All")
    assert preview.spec.replicas == 5
    after = apps.read_namespaced_deployment(GW, NS)
    assert after.spec.replicas == 1 and after.metadata.resource_version == before.metadata.resource_version


# --------------------------------------------------------------------------- errors


def test_not_found_is_404_status(core, apps):
    with pytest.raises(ApiException) as ei:
        apps.read_namespaced_deployment("missing", NS)
    assert ei.value.status == 404
    body = status_of(ei.value)
    assert body == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'deployments.apps "missing" not found', "reason": "NotFound",
        "details": {"name": "missing", "group": "apps", "kind": "deployments"}, "code": 404,
    }
    with pytest.raises(ApiException) as ei:
        core.patch_namespaced_service("missing", NS, {"metadata": {"labels": {"a": "b"}}})
    assert ei.value.status == 404


def test_stale_resource_version_replace_is_409(apps):
    stale = apps.read_namespaced_deployment(GW, NS)
    apps.patch_namespaced_deployment(GW, NS, {"spec": {"replicas": 2}})
    stale.spec.replicas = 4
    with pytest.raises(ApiException) as ei:
        apps.replace_namespaced_deployment(GW, NS, stale)
    assert ei.value.status == 409
    body = status_of(ei.value)
    assert body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on deployments.apps "istio-ingressgateway": the object has been '
        "modified; please apply your changes to the latest version and try again")
    fresh = apps.read_namespaced_deployment(GW, NS)
    fresh.spec.replicas = 4
    assert apps.replace_namespaced_deployment(GW, NS, fresh).spec.replicas == 4


def test_invalid_objects(core, apps):
    with pytest.raises(ApiException) as ei:
        core.create_namespaced_config_map(NS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}, "data": {}})
    assert ei.value.status == 422
    body = status_of(ei.value)
    assert body["reason"] == "Invalid" and body["details"]["kind"] == "ConfigMap"
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    assert "name or generateName is required" in body["message"]

    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad"},
           "spec": {"selector": {"matchLabels": {"app": "a"}},
                    "template": {"metadata": {"labels": {"app": "b"}},
                                 "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}}
    with pytest.raises(ApiException) as ei:
        apps.create_namespaced_deployment(NS, dep)
    assert ei.value.status == 422
    assert "`selector` does not match template `labels`" in status_of(ei.value)["message"]

    with pytest.raises(ApiException) as ei:  # annotation values must be strings
        apps.patch_namespaced_deployment(GW, NS, {"metadata": {"annotations": {"proxy.istio.io/config": {"a": 1}}}})
    assert ei.value.status == 400

    with pytest.raises(ApiException) as ei:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "x"}})
    assert ei.value.status == 404 and status_of(ei.value)["message"] == 'namespaces "nowhere" not found'

    with pytest.raises(ApiException) as ei:
        core.create_namespaced_config_map(NS, {"metadata": {"name": "istio"}})
    assert ei.value.status == 409 and status_of(ei.value)["reason"] == "AlreadyExists"

    with pytest.raises(ApiException) as ei:
        core.create_namespaced_config_map(NS, {"metadata": {"name": "x", "namespace": "echo"}})
    assert ei.value.status == 400


# --------------------------------------------------------------------------- create / delete / status


def test_create_generate_name_and_delete(core, apps, lab):
    cm = core.create_namespaced_config_map(NS, {"metadata": {"generateName": "probe-"}, "data": {"k": "v"}})
    assert cm.metadata.name.startswith("probe-") and len(cm.metadata.name) == len("probe-") + 5
    st = core.delete_namespaced_config_map(cm.metadata.name, NS)
    assert st["status"] == "Success" and st["details"]["kind"] == "configmaps"
    pod = core.delete_namespaced_pod("echo-2", "echo")  # pods come back as the object
    assert pod.metadata.name == "echo-2"
    st = apps.delete_namespaced_deployment(GW, NS)
    assert st["status"] == "Success"
    assert lab.store.get("Deployment", NS, GW) is None
    core.delete_namespace("echo")
    assert core.list_namespaced_pod("echo").items == []


def test_status_subresource_is_separate(apps, lab):
    dep = apps.read_namespaced_deployment(GW, NS)
    dep.status = client.V1DeploymentStatus(replicas=7, ready_replicas=7)
    dep.spec.replicas = 2
    after = apps.replace_namespaced_deployment(GW, NS, dep)
    assert after.spec.replicas == 2 and (after.status.replicas or 0) == 0  # status ignored on the main resource
    st = apps.patch_namespaced_deployment_status(GW, NS, {"status": {"readyReplicas": 1, "replicas": 1},
                                                           "spec": {"replicas": 9}})
    assert st.status.ready_replicas == 1 and st.spec.replicas == 2  # spec ignored on /status
    assert st.metadata.generation == after.metadata.generation


def test_service_defaults(core):
    svc = core.read_namespaced_service(GW, NS)
    assert svc.spec.cluster_ip and svc.spec.external_traffic_policy == "Cluster"
    assert all(p.node_port and p.protocol == "TCP" for p in svc.spec.ports)
    assert svc.spec.ports[1].target_port == 15021
    local = core.patch_namespaced_service(GW, NS, {"spec": {"externalTrafficPolicy": "Local"}})
    assert local.spec.health_check_node_port and local.spec.cluster_ip == svc.spec.cluster_ip
    assert [p.node_port for p in local.spec.ports] == [p.node_port for p in svc.spec.ports]
