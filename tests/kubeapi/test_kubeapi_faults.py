"""Fault injection: RBAC denials, throttling, server errors — as the official client sees them."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes.client.rest import ApiException

from .conftest import GW, NS

RBAC_PATCH = (
    'deployments.apps "istio-ingressgateway" is forbidden: User "system:serviceaccount:default:ppdoctor" '
    'cannot patch resource "deployments" in API group "apps" in the namespace "istio-system"'
)


def test_forbidden_patch_has_rbac_message(apps, lab):
    rule = lab.forbid("patch", "deployments", GW, namespace=NS)
    with pytest.raises(ApiException) as ei:
        apps.patch_namespaced_deployment(GW, NS, {"spec": {"replicas": 2}})
    assert ei.value.status == 403
    body = json.loads(ei.value.body)
    assert body["message"] == RBAC_PATCH
    assert body["reason"] == "Forbidden" and body["code"] == 403
    assert body["details"] == {"name": GW, "group": "apps", "kind": "deployments"}
    # reads are still allowed and nothing was written
    assert apps.read_namespaced_deployment(GW, NS).spec.replicas == 1
    lab.faults.remove(rule)
    assert apps.patch_namespaced_deployment(GW, NS, {"spec": {"replicas": 2}}).spec.replicas == 2
    assert rule.hits == 1


def test_forbidden_list_at_cluster_scope_and_core_group(core, lab):
    lab.forbid("list", "pods")
    with pytest.raises(ApiException) as ei:
        core.list_pod_for_all_namespaces()
    assert json.loads(ei.value.body)["message"] == (
        'pods is forbidden: User "system:serviceaccount:default:ppdoctor" cannot list resource "pods" '
        'in API group "" at the cluster scope')
    with pytest.raises(ApiException) as ei:
        core.list_namespaced_pod(NS)
    assert 'in the namespace "istio-system"' in json.loads(ei.value.body)["message"]


def test_fault_times_then_recovers(core, lab):
    lab.inject_fault("get", "services.", GW, status=500, times=2)  # "services." = core group
    for _ in range(2):
        with pytest.raises(ApiException) as ei:
            core.read_namespaced_service(GW, NS)
        assert ei.value.status == 500
        assert json.loads(ei.value.body)["reason"] == "InternalError"
    assert core.read_namespaced_service(GW, NS).metadata.name == GW
    assert lab.faults.rules == []


def test_throttle_429_with_retry_after(core, lab):
    # PATCH is not idempotent, so urllib3 does not retry it: the client sees the 429
    lab.throttle("patch", "configmaps", retry_after=3, times=1)
    with pytest.raises(ApiException) as ei:
        core.patch_namespaced_config_map("istio", NS, {"data": {"k": "v"}})
    assert ei.value.status == 429
    assert ei.value.headers["Retry-After"] == "3"
    body = json.loads(ei.value.body)
    assert body["reason"] == "TooManyRequests" and body["details"]["retryAfterSeconds"] == 3
    assert core.patch_namespaced_config_map("istio", NS, {"data": {"k": "v"}}).data["k"] == "v"


def test_throttled_get_is_retried_by_urllib3(core, lab):
    # GET is idempotent: urllib3 (under the official client) honours Retry-After on 429 and retries
    rule = lab.throttle("get", "configmaps", retry_after=0, times=1)
    assert core.read_namespaced_config_map("istio", NS).metadata.name == "istio"
    assert rule.hits == 1
    assert [r.status for r in list(lab.requests)[-2:]] == [429, 200]


@pytest.mark.parametrize("status, reason", [(404, "NotFound"), (409, "Conflict"), (503, "ServiceUnavailable")])
def test_other_injected_statuses(apps, lab, status, reason):
    lab.inject_fault("patch", "deployments.apps", "*", status=status, times=1)
    with pytest.raises(ApiException) as ei:
        apps.patch_namespaced_deployment(GW, NS, {"spec": {"replicas": 2}})
    assert ei.value.status == status
    assert json.loads(ei.value.body)["reason"] == reason
    assert apps.read_namespaced_deployment(GW, NS).spec.replicas == 1


def test_fault_scoping_and_delay(custom, core, lab):
    lab.forbid("patch", "envoyfilters.networking.istio.io", namespace="other-ns")
    custom.patch_namespaced_custom_object("networking.istio.io", "v1", NS, "envoyfilters", "proxy-protocol",
                                          {"metadata": {"labels": {"a": "b"}}})
    lab.clear_faults()
    lab.inject_fault("list", "namespaces", status=0, delay=0.3, times=1)
    t0 = time.monotonic()
    core.list_namespace()
    assert time.monotonic() - t0 >= 0.3


def test_forbidden_port_forward_subresource(core, lab):
    from kubernetes.stream import portforward

    lab.forbid("get,create", "pods/portforward")
    with pytest.raises(ApiException) as ei:
        portforward(core.connect_get_namespaced_pod_portforward, f"{GW}-7d9f8b-abcde", NS, ports="8080")
    assert "403" in str(ei.value)
    rec = lab.requests[-1]
    # the WebSocket upgrade is a GET, which RBAC sees as "get" on pods/portforward
    assert rec.status == 403 and rec.resource == "pods/portforward" and rec.verb == "get"
