"""Fix plan builders against hand-built live state: what each plan writes, through which owner, and its undo.

No lab: a LiveState is what ``read_state`` would have read from AWS and Kubernetes. Expected
values come from the documented behaviour (the LBC annotations, Envoy's ProxyProtocol config,
Istio's ``proxy.istio.io/config``), not from running the builders.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from ppdoctor.fixes.registry import build_plan
from ppdoctor.fixes.planner import (
    LiveState, PlanError, filter_order, gw_pp_on, hc_tcp, move_annotation, pp_enable, tg_pp_on,
    tg_preserve_off, trusted_hops,
)

TG_ARN = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/k8s-istio-gw/0123456789abcdef"
LBC = "service.beta.kubernetes.io/aws-load-balancer-"
PROXY_CONFIG = "proxy.istio.io/config"
PP_NAME = "envoy.filters.listener.proxy_protocol"
PP_TYPE = "type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol"


def live(*, attributes: dict[str, str] | None = None, lbc: bool = False, service_ann: dict[str, str] | None = None,
         template_ann: dict[str, str] | None = None, deployment_ann: dict[str, str] | None = None,
         filters: list[dict[str, Any]] | None = None, mesh: str | None = None, **tg: Any) -> LiveState:
    target_group = {"TargetGroupArn": TG_ARN, "TargetType": "ip", "HealthCheckProtocol": "TCP",
                    "HealthCheckPort": "traffic-port", **tg}
    return LiveState(
        tg_arn=TG_ARN, tg=target_group, attributes=dict(attributes or {}), lbc_owned=lbc,
        service={"metadata": {"name": "istio-ingressgateway", "namespace": "istio-system",
                              "annotations": dict(service_ann or {})}},
        deployment={"metadata": {"name": "istio-ingressgateway", "namespace": "istio-system",
                                 "annotations": dict(deployment_ann or {})},
                    "spec": {"template": {"metadata": {"annotations": dict(template_ann or {})}}}},
        mesh=None if mesh is None else {"metadata": {"name": "istio", "namespace": "istio-system"},
                                        "data": {"mesh": mesh}},
        envoy_filters=list(filters or []))


def pp_filter(name: str, *, allow: bool | None, other_patches: list[dict[str, Any]] = ()) -> dict[str, Any]:
    typed: dict[str, Any] = {"@type": PP_TYPE}
    if allow is not None:
        typed["allow_requests_without_proxy_protocol"] = allow
    return {"apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter",
            "metadata": {"name": name, "namespace": "istio-system"},
            "spec": {"configPatches": [*other_patches, {
                "applyTo": "LISTENER_FILTER", "match": {"context": "GATEWAY"},
                "patch": {"operation": "INSERT_FIRST", "value": {"name": PP_NAME, "typed_config": typed}}}]}}


def body(change: Any, which: str = "payload") -> dict[str, Any]:
    return getattr(change, which)["kwargs"]["body"]


# --- the target group: directly, or through the controller that owns it --------------------------

def test_pp_on_writes_the_target_group_attribute_and_undoes_to_the_default():
    [change] = tg_pp_on(live())
    assert (change.kind, change.object, change.field) == ("aws-tg-attributes", TG_ARN, "proxy_protocol_v2.enabled")
    assert change.payload["kwargs"]["Attributes"] == [{"Key": "proxy_protocol_v2.enabled", "Value": "true"}]
    # absent means the AWS default (off): the undo writes that default, not "None"
    assert change.rollback_payload["kwargs"]["Attributes"] == [{"Key": "proxy_protocol_v2.enabled", "Value": "false"}]


def test_pp_on_goes_through_the_service_annotation_when_the_lbc_owns_the_target_group():
    [change] = tg_pp_on(live(lbc=True))
    assert change.kind == "k8s-merge-patch" and change.object == "Service istio-system/istio-ingressgateway"
    assert body(change) == {"metadata": {"annotations": {LBC + "proxy-protocol": "*"}}}
    assert body(change, "rollback_payload") == {"metadata": {"annotations": {LBC + "proxy-protocol": None}}}


@pytest.mark.parametrize("state", [
    live(attributes={"proxy_protocol_v2.enabled": "true"}),
    live(lbc=True, service_ann={LBC + "proxy-protocol": "*"}),
], ids=["attribute-on", "annotation-on"])
def test_pp_on_changes_nothing_that_is_already_on(state):
    assert tg_pp_on(state) == []


def test_preservation_off_keeps_the_other_target_group_attributes_of_the_annotation():
    state = live(lbc=True, service_ann={
        LBC + "target-group-attributes": "deregistration_delay.timeout_seconds=30, preserve_client_ip.enabled=true"})
    [change] = tg_preserve_off(state)
    written = body(change)["metadata"]["annotations"][LBC + "target-group-attributes"]
    assert sorted(written.split(",")) == ["deregistration_delay.timeout_seconds=30", "preserve_client_ip.enabled=false"]


@pytest.mark.parametrize("target_type,expected_changes", [("instance", 1), ("ip", 0)])
def test_preservation_default_depends_on_the_target_type(target_type, expected_changes):
    # AWS: client IP preservation defaults on for instance targets, off for IP targets (TCP/TLS)
    assert len(tg_preserve_off(live(TargetType=target_type))) == expected_changes


def test_health_check_moves_to_tcp_on_the_traffic_port_and_undoes_to_what_was_there():
    [change] = hc_tcp(live(HealthCheckProtocol="HTTP", HealthCheckPort="15021"))
    assert change.payload["kwargs"] == {"TargetGroupArn": TG_ARN, "HealthCheckProtocol": "TCP",
                                        "HealthCheckPort": "traffic-port"}
    assert change.rollback_payload["kwargs"] == {"TargetGroupArn": TG_ARN, "HealthCheckProtocol": "HTTP",
                                                 "HealthCheckPort": "15021"}
    assert change.verify == "hc-pass"


def test_health_check_through_the_lbc_removes_the_path_annotation():
    changes = hc_tcp(live(lbc=True, HealthCheckProtocol="HTTP", HealthCheckPort="15021",
                          service_ann={LBC + "healthcheck-path": "/healthz/ready"}))
    written = {k: v for c in changes for k, v in body(c)["metadata"]["annotations"].items()}
    assert written == {LBC + "healthcheck-protocol": "tcp", LBC + "healthcheck-port": "traffic-port",
                       LBC + "healthcheck-path": None}
    assert changes[-1].verify == "hc-pass"


# --- the gateway: proxy config merged, never replaced ------------------------------------------------

def test_gateway_pp_on_merges_into_the_existing_proxy_config():
    existing = json.dumps({"concurrency": 2, "gatewayTopology": {"numTrustedProxies": 1}})
    [change] = gw_pp_on(live(template_ann={PROXY_CONFIG: existing}))
    after = json.loads(change.after)
    assert after == {"concurrency": 2, "gatewayTopology": {"numTrustedProxies": 1, "proxyProtocol": {}}}
    assert body(change, "rollback_payload")["spec"]["template"]["metadata"]["annotations"] == {PROXY_CONFIG: existing}


def test_gateway_pp_on_accepts_yaml_and_changes_nothing_when_already_on():
    assert gw_pp_on(live(template_ann={PROXY_CONFIG: "gatewayTopology:\n  proxyProtocol: {}\n"})) == []


def test_an_unreadable_proxy_config_stops_the_plan_instead_of_overwriting_it():
    with pytest.raises(PlanError, match="cannot be parsed"):
        gw_pp_on(live(template_ann={PROXY_CONFIG: "gatewayTopology: [unclosed"}))


def test_a_misplaced_proxy_config_moves_to_the_pod_template():
    misplaced = json.dumps({"gatewayTopology": {"numTrustedProxies": 2}})
    changes = move_annotation(live(service_ann={PROXY_CONFIG: misplaced}))
    template, removal = changes
    assert json.loads(template.after) == {"gatewayTopology": {"numTrustedProxies": 2, "proxyProtocol": {}}}
    assert removal.object.startswith("Service ") and body(removal) == {"metadata": {"annotations": {PROXY_CONFIG: None}}}


def test_trusted_hops_are_removed_from_the_annotation_and_the_mesh_config():
    mesh = yaml.safe_dump({"defaultConfig": {"gatewayTopology": {"numTrustedProxies": 2}, "concurrency": 2}})
    changes = trusted_hops(live(template_ann={PROXY_CONFIG: '{"gatewayTopology": {"numTrustedProxies": 2}}'},
                                mesh=mesh))
    annotation, configmap, rollout = changes
    assert json.loads(annotation.after) == {}
    assert yaml.safe_load(body(configmap)["data"]["mesh"]) == {"defaultConfig": {"concurrency": 2, "gatewayTopology": {}}}
    assert body(configmap, "rollback_payload")["data"]["mesh"] == mesh
    # the mesh config is read at proxy start: the gateway must roll, and that rollout is what gets verified
    assert "kubectl.kubernetes.io/restartedAt" in rollout.field and rollout.verify == "no-spoof"
    assert rollout.rollback_payload is None


# --- EnvoyFilter edits: built as objects ------------------------------------------------------------

def test_pp_enable_from_nothing_goes_gateway_optional_then_target_group_then_gateway_strict():
    changes = pp_enable(live())
    create, tg, strict = changes
    assert create.kind == "k8s-create"
    created = body(create)
    assert created["kind"] == "EnvoyFilter"
    [patch] = created["spec"]["configPatches"]
    assert patch["applyTo"] == "LISTENER_FILTER" and patch["patch"]["operation"] == "INSERT_FIRST"
    assert patch["patch"]["value"]["typed_config"]["allow_requests_without_proxy_protocol"] is True
    assert create.rollback_payload["method"] == "delete_namespaced_custom_object"
    assert tg.kind == "aws-tg-attributes" and tg.verify == "client-ip"
    [strict_patch] = body(strict)["spec"]["configPatches"]
    assert strict_patch["patch"]["value"]["typed_config"]["allow_requests_without_proxy_protocol"] is False
    assert body(strict, "rollback_payload")["spec"]["configPatches"] == created["spec"]["configPatches"]
    assert [c.verify for c in changes] == ["gateway-optional", "client-ip", "gateway-required"]


def test_pp_enable_makes_an_existing_optional_filter_strict_and_leaves_its_other_patches_alone():
    other = {"applyTo": "NETWORK_FILTER", "match": {"context": "GATEWAY"},
             "patch": {"operation": "MERGE", "value": {"name": "x", "note": "allow_requests_without_proxy_protocol"}}}
    existing = pp_filter("team-pp", allow=True, other_patches=[other])
    changes = pp_enable(live(filters=[existing]))
    assert [c.kind for c in changes] == ["aws-tg-attributes", "k8s-merge-patch"]
    strict = changes[-1]
    assert strict.object == "EnvoyFilter istio-system/team-pp"
    first, second = body(strict)["spec"]["configPatches"]
    assert first == other  # a string that mentions the field is not a setting
    assert second["patch"]["value"]["typed_config"] == {"@type": PP_TYPE, "allow_requests_without_proxy_protocol": False}
    assert existing["spec"]["configPatches"][1]["patch"]["value"]["typed_config"][
        "allow_requests_without_proxy_protocol"] is True  # the live object read is not modified


def test_pp_enable_with_a_strict_filter_already_there_only_turns_the_target_group_on():
    changes = pp_enable(live(filters=[pp_filter("team-pp", allow=None)]))
    assert [c.kind for c in changes] == ["aws-tg-attributes"]


def test_pp_enable_moves_an_http_health_check_off_the_status_port_first():
    changes = pp_enable(live(HealthCheckProtocol="HTTP", HealthCheckPort="15021"))
    assert changes[0].kind == "aws-tg-healthcheck"


def test_filter_order_turns_a_listener_patch_into_a_first_listener_filter():
    listener_patch = {"applyTo": "LISTENER", "match": {"context": "GATEWAY", "listener": {"portNumber": 8443}},
                      "patch": {"operation": "MERGE", "value": {"listener_filters": [
                          {"name": "envoy.filters.listener.tls_inspector"},
                          {"name": PP_NAME, "typed_config": {"@type": PP_TYPE}}]}}}
    unrelated = {"applyTo": "NETWORK_FILTER", "patch": {"operation": "MERGE", "value": {"name": "y"}}}
    f = {"metadata": {"name": "ordered", "namespace": "istio-system"},
         "spec": {"configPatches": [listener_patch, unrelated]}}
    [change] = filter_order(live(filters=[f]))
    new_first, kept = body(change)["spec"]["configPatches"]
    assert new_first == {"applyTo": "LISTENER_FILTER", "match": {"context": "GATEWAY", "listener": {"portNumber": 8443}},
                         "patch": {"operation": "INSERT_FIRST", "value": {"name": PP_NAME,
                                                                          "typed_config": {"@type": PP_TYPE}}}}
    assert kept == unrelated
    assert body(change, "rollback_payload")["spec"]["configPatches"] == [listener_patch, unrelated]


def test_filter_order_leaves_a_listener_filter_patch_alone():
    assert filter_order(live(filters=[pp_filter("fine", allow=None)])) == []


# --- build_plan ---------------------------------------------------------------------------------------

def test_build_plan_names_the_unknown_fix_and_says_when_nothing_changes():
    with pytest.raises(PlanError, match="FIX-NOPE"):
        build_plan("FIX-NOPE", live())
    plan = build_plan("FIX-TG-PP-ON", live(attributes={"proxy_protocol_v2.enabled": "true"}))
    assert plan.changes == [] and "nothing to change" in plan.explanation
