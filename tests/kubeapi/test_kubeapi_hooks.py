"""Change hooks and the supervisor's Python-side API; the server on the test's own event loop."""

from __future__ import annotations

import asyncio
import threading

import pytest
from kubernetes import client, config

from ppdoctor.lab.kubeapi import ApiError, KubeApiServer, now_rfc3339

from .conftest import GW, NS, gateway_manifests

ANN = "proxy.istio.io/config"


def test_hooks_fire_with_old_and_new(apps, core, lab):
    seen = []
    unsubscribe = lab.store.subscribe(lambda t, obj, old: seen.append((t, obj, old)))
    apps.patch_namespaced_deployment(GW, NS, {"spec": {"template": {"metadata": {"annotations": {ANN: "{}"}}}}})
    (etype, obj, old), = seen
    assert etype == "MODIFIED" and obj["kind"] == "Deployment"
    assert ANN in obj["spec"]["template"]["metadata"]["annotations"]
    assert ANN not in old["spec"]["template"]["metadata"]["annotations"]
    assert int(obj["metadata"]["resourceVersion"]) > int(old["metadata"]["resourceVersion"])
    core.create_namespaced_config_map(NS, {"metadata": {"name": "new"}})
    core.delete_namespaced_config_map("new", NS)
    assert [(t, o["metadata"]["name"], p is None) for t, o, p in seen[1:]] == [
        ("ADDED", "new", True), ("DELETED", "new", False)]
    # a failed write fires nothing; a no-op write fires nothing
    lab.forbid("patch", "deployments")
    with pytest.raises(client.ApiException):
        apps.patch_namespaced_deployment(GW, NS, {"spec": {"replicas": 3}})
    lab.clear_faults()
    apps.patch_namespaced_deployment(GW, NS, {"spec": {"replicas": 1}})
    assert len(seen) == 3
    unsubscribe()
    apps.patch_namespaced_deployment(GW, NS, {"spec": {"replicas": 2}})
    assert len(seen) == 3


def test_hook_kind_filter_and_broken_subscriber(apps, core, lab):
    pods = []
    lab.store.subscribe(lambda t, o, old: pods.append(o["metadata"]["name"]), kinds={"Pod"})
    lab.store.subscribe(lambda *a: 1 / 0)
    apps.patch_namespaced_deployment(GW, NS, {"spec": {"replicas": 2}})  # still succeeds
    core.patch_namespaced_pod("echo-1", "echo", {"metadata": {"labels": {"x": "y"}}})
    assert pods == ["echo-1"]
    assert len(lab.store.callback_errors) == 2


def test_supervisor_api(lab, core):
    store = lab.store
    assert store.get("deployments.apps", NS, GW)["spec"]["replicas"] == 1
    assert store.get("apps/v1/Deployment", NS, "nope") is None
    assert [p["metadata"]["name"] for p in store.list("Pod", label_selector="app=echo")] == ["echo-1", "echo-2"]
    assert [p["metadata"]["name"] for p in store.list("pods", "echo", field_selector="status.phase=Pending")] == ["echo-2"]
    assert store.list(("networking.istio.io", "v1alpha3", "EnvoyFilter"), NS)[0]["metadata"]["name"] == "proxy-protocol"

    # status writes: podIP, startTime, Ready condition; generation untouched
    pod_name = f"{GW}-7d9f8b-abcde"
    before = store.get("Pod", NS, pod_name)
    started = now_rfc3339()
    after = store.update_status("Pod", NS, pod_name, {
        "startTime": started, "podIP": "127.1.2.11",
        "conditions": [{"type": "Ready", "status": "True"}]})
    assert after["status"]["phase"] == "Running"  # merged, not replaced
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert int(after["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])
    seen = core.read_namespaced_pod(pod_name, NS)
    assert seen.status.pod_ip == "127.1.2.11" and seen.status.conditions[0].type == "Ready"

    # replace the gateway pod the way a rollout does: new name, new start time
    store.delete("Pod", NS, pod_name)
    new_pod = store.put({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{GW}-5c6d7e-fghij", "namespace": NS, "labels": {"app": GW}},
        "spec": {"containers": [{"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.24.0"}]},
        "status": {"phase": "Running", "podIP": "127.1.2.10", "startTime": now_rfc3339()},
    })
    assert new_pod["status"]["podIP"] == "127.1.2.10"  # the supervisor may write status directly
    assert [p.metadata.name for p in core.list_namespaced_pod(NS, label_selector=f"app={GW}").items] == [
        f"{GW}-5c6d7e-fghij"]

    # mutate: read-modify-write under the store lock
    mutated = store.mutate("Service", NS, GW, lambda o: o["status"].update(
        {"loadBalancer": {"ingress": [{"hostname": "k8s-istiosys-gw.elb.us-east-1.amazonaws.com"}]}}))
    assert mutated["status"]["loadBalancer"]["ingress"][0]["hostname"].endswith("amazonaws.com")

    # patch from the Python side: strategic by default, merge for custom resources
    store.patch("Deployment", NS, GW, {"spec": {"template": {"metadata": {"annotations": {ANN: "{}"}}}}})
    store.patch("EnvoyFilter", NS, "proxy-protocol", {"metadata": {"annotations": {"a": "b"}}})
    assert store.get("EnvoyFilter", NS, "proxy-protocol")["metadata"]["annotations"] == {"a": "b"}

    # namespaces are created on demand for supervisor writes
    store.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "fresh"}})
    assert core.read_namespace("fresh").status.phase == "Active"
    with pytest.raises(ApiError) as ei:
        store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "fresh"}})
    assert ei.value.code == 409
    with pytest.raises(ApiError) as ei:
        store.put({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "namespace": NS}})
    assert ei.value.code == 422


async def test_server_on_the_callers_loop(tmp_path, no_leaks):
    """The supervisor's way: start() in its own loop; hooks run in that loop's thread."""
    server = KubeApiServer(gateway_manifests(), token="s3cret")
    await server.start()
    try:
        loop_thread = threading.get_ident()
        events: asyncio.Queue = asyncio.Queue()
        threads = []

        async def on_change(etype, obj, old):  # async subscribers are scheduled as tasks
            await events.put((etype, obj["metadata"]["name"]))

        def sync_hook(etype, obj, old):
            threads.append(threading.get_ident())

        server.store.subscribe(on_change, kinds={"Deployment"})
        server.store.subscribe(sync_hook)
        path = server.write_kubeconfig(str(tmp_path / "kc"))

        def client_side():
            with config.new_client_from_config(config_file=path) as api_client:
                client.AppsV1Api(api_client).patch_namespaced_deployment(
                    GW, NS, {"spec": {"template": {"metadata": {"annotations": {ANN: "{}"}}}}})

        await asyncio.to_thread(client_side)
        assert await asyncio.wait_for(events.get(), 5) == ("MODIFIED", GW)
        assert threads == [loop_thread]
    finally:
        await server.stop()


def test_supervisor_rollout_from_a_hook(apps, core, lab):
    """A hook that replaces the gateway pod when the pod template changes (nested writes):
    every subscriber still sees the events in resourceVersion order."""
    from ppdoctor.lab.kubeapi import name_suffix, pod_template_hash

    store = lab.store

    def supervisor(etype, obj, old):
        if obj["kind"] != "Deployment" or etype != "MODIFIED":
            return
        if obj["spec"]["template"] == old["spec"]["template"]:
            return
        for pod in store.list("Pod", NS, label_selector=f"app={GW}"):
            store.delete("Pod", NS, pod["metadata"]["name"])
        h = pod_template_hash(obj["spec"]["template"])
        store.put({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": f"{GW}-{h}-{name_suffix()}", "namespace": NS,
                                "labels": {**obj["spec"]["template"]["metadata"]["labels"], "pod-template-hash": h}},
                   "spec": obj["spec"]["template"]["spec"],
                   "status": {"phase": "Running", "podIP": "127.1.2.10", "startTime": now_rfc3339(),
                              "conditions": [{"type": "Ready", "status": "True"}]}})

    order = []
    store.subscribe(supervisor)
    store.subscribe(lambda t, o, old: order.append((int(o["metadata"]["resourceVersion"]), t, o["kind"])))
    apps.patch_namespaced_deployment(GW, NS, {"spec": {"template": {"metadata": {"annotations": {ANN: "{}"}}}}})
    assert [(t, k) for _rv, t, k in order] == [("MODIFIED", "Deployment"), ("DELETED", "Pod"), ("ADDED", "Pod")]
    assert [rv for rv, _t, _k in order] == sorted(rv for rv, _t, _k in order)
    pods = core.list_namespaced_pod(NS, label_selector=f"app={GW}").items
    assert len(pods) == 1 and pods[0].metadata.labels["pod-template-hash"] in pods[0].metadata.name
    assert pods[0].status.conditions[0].status == "True"
    apps.patch_namespaced_deployment(GW, NS, {"spec": {"replicas": 1}})  # no template change: no rollout
    assert core.list_namespaced_pod(NS, label_selector=f"app={GW}").items[0].metadata.name == pods[0].metadata.name
