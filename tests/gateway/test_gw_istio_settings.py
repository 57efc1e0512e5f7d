"""derive_gateway_settings: what istiod would give the gateway pod, from Kubernetes objects."""

from __future__ import annotations

import pytest

from ppdoctor.lab.istio import (
    PP_FILTER_DEPRECATED_NAME,
    PP_FILTER_NAME,
    TLS_INSPECTOR_NAME,
    derive_gateway_settings,
)

from .gwhelpers import (
    GATEWAY_LABELS,
    PP_ANNOTATION,
    PP_TYPE_URL,
    envoy_filter,
    gateway_deployment,
    listener_filter_patch,
    merge_listener_filters,
    pp_filter_value,
)

ANNOTATION_SOURCE = "pod-template annotation proxy.istio.io/config"
MESH_SOURCE = "mesh config defaultConfig.gatewayTopology"

ISTIO_127 = "docker.io/istio/proxyv2:1.27.1"  # knows ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL (PR #55986)


def derive(deployment=None, mesh=None, filters=(), services=(), labels=GATEWAY_LABELS):
    return derive_gateway_settings(deployment or gateway_deployment(), mesh or {}, list(filters), list(services), labels)


def mesh_topology(**topology) -> dict:
    return {"defaultConfig": {"gatewayTopology": topology}}


# --- ProxyConfig: annotation and mesh config --------------------------------------------------

def test_nothing_configured_means_no_pp_anywhere():
    s = derive()
    assert not s.pp_filter and s.pp_sources == [] and s.num_trusted_hops == 0
    assert s.listener_filter_order == []
    assert s.tls_listener_filter_order == [TLS_INSPECTOR_NAME]
    assert not s.status_pp and s.warnings == []


def test_pod_template_annotation_json_puts_pp_first_on_every_listener():
    s = derive(gateway_deployment({"proxy.istio.io/config": PP_ANNOTATION}))
    assert s.pp_filter and not s.allow_without_pp and s.pp_options == {}
    assert s.pp_sources == [ANNOTATION_SOURCE]
    assert s.listener_filter_order == [PP_FILTER_NAME]
    assert s.tls_listener_filter_order == [PP_FILTER_NAME, TLS_INSPECTOR_NAME]
    assert s.pp_filter_on(8080).typed_config == {"@type": PP_TYPE_URL}
    assert not s.status_pp  # the static status listener never gets it


def test_pod_template_annotation_yaml_works_too():
    yaml_text = "gatewayTopology:\n  proxyProtocol: {}\n  numTrustedProxies: 2\n"
    s = derive(gateway_deployment({"proxy.istio.io/config": yaml_text}))
    assert s.pp_filter and s.num_trusted_hops == 2


def test_mesh_default_config_at_pod_start_enables_pp():
    s = derive(mesh=mesh_topology(proxyProtocol={}, numTrustedProxies=1))
    assert s.pp_filter and s.pp_sources == [MESH_SOURCE] and s.num_trusted_hops == 1


def test_mesh_snake_case_keys_are_accepted():
    s = derive(mesh={"default_config": {"gateway_topology": {"proxy_protocol": {}, "num_trusted_proxies": 3}}})
    assert s.pp_filter and s.num_trusted_hops == 3


def test_proxy_protocol_null_leaves_the_filter_off():
    assert not derive(mesh=mesh_topology(proxyProtocol=None)).pp_filter


def test_annotation_merges_over_mesh_defaults():
    annotation = '{"gatewayTopology":{"numTrustedProxies":0}}'
    s = derive(gateway_deployment({"proxy.istio.io/config": annotation}), mesh_topology(proxyProtocol={}, numTrustedProxies=2))
    assert s.pp_filter and s.num_trusted_hops == 0
    assert s.pp_sources == [MESH_SOURCE]


def test_both_sources_are_listed():
    s = derive(gateway_deployment({"proxy.istio.io/config": PP_ANNOTATION}), mesh_topology(proxyProtocol={}))
    assert s.pp_sources == [ANNOTATION_SOURCE, MESH_SOURCE]
    assert s.listener_filter_order == [PP_FILTER_NAME]  # added once


def test_annotation_on_deployment_metadata_is_ignored_with_a_warning():
    s = derive(gateway_deployment(metadata_annotations={"proxy.istio.io/config": PP_ANNOTATION}))
    assert not s.pp_filter
    assert any("Deployment's own metadata is ignored" in w for w in s.warnings)


@pytest.mark.parametrize("text", ['{"gatewayTopology": {', "gatewayTopology: [unclosed"])
def test_invalid_annotation_is_ignored_with_a_warning(text):
    s = derive(gateway_deployment({"proxy.istio.io/config": text}), mesh_topology(numTrustedProxies=1))
    assert not s.pp_filter and s.num_trusted_hops == 1
    assert len(s.warnings) == 1 and "neither JSON nor YAML" in s.warnings[0]


def test_annotation_that_is_not_an_object_is_ignored():
    s = derive(gateway_deployment({"proxy.istio.io/config": "[1, 2]"}))
    assert not s.pp_filter and "must be an object" in s.warnings[0]


# --- EnvoyFilters ------------------------------------------------------------------------------

def test_listener_merge_appends_after_tls_inspector():
    s = derive(filters=[envoy_filter("proxy-protocol", merge_listener_filters(pp_filter_value()))])
    assert s.pp_filter and s.pp_sources == ["EnvoyFilter istio-system/proxy-protocol"]
    assert s.listener_filter_order == [PP_FILTER_NAME]
    assert s.tls_listener_filter_order == [TLS_INSPECTOR_NAME, PP_FILTER_NAME]
    assert any("comes after tls_inspector" in w and "0.0.0.0_8443" in w for w in s.warnings)


def test_merge_restricted_to_a_port_touches_only_that_listener():
    s = derive(filters=[envoy_filter("pp", merge_listener_filters(pp_filter_value(), port=8080))])
    assert s.listener_filter_order == [PP_FILTER_NAME]
    assert s.tls_listener_filter_order == [TLS_INSPECTOR_NAME]
    s = derive(filters=[envoy_filter("pp", merge_listener_filters(pp_filter_value(), port=8443))])
    assert not s.pp_filter and s.pp_filter_on(8443) is not None


def test_listener_name_match_is_honoured():
    patch = merge_listener_filters(pp_filter_value())
    patch["match"]["listener"] = {"name": "0.0.0.0_8443"}
    s = derive(filters=[envoy_filter("pp", patch)])
    assert not s.pp_filter and s.pp_filter_on(8443) is not None


def test_insert_first_puts_pp_before_tls_inspector():
    s = derive(filters=[envoy_filter("pp", listener_filter_patch("INSERT_FIRST", pp_filter_value()))])
    assert s.tls_listener_filter_order == [PP_FILTER_NAME, TLS_INSPECTOR_NAME]
    assert not any("after tls_inspector" in w for w in s.warnings)


def test_insert_before_and_after_a_named_filter():
    before = derive(filters=[envoy_filter("pp", listener_filter_patch("INSERT_BEFORE", pp_filter_value(), after=TLS_INSPECTOR_NAME))])
    assert before.tls_listener_filter_order == [PP_FILTER_NAME, TLS_INSPECTOR_NAME]
    # on 8080 there is no tls_inspector to insert before: nothing happens there
    assert before.listener_filter_order == []
    after = derive(filters=[envoy_filter("pp", listener_filter_patch("INSERT_AFTER", pp_filter_value(), after=TLS_INSPECTOR_NAME))])
    assert after.tls_listener_filter_order == [TLS_INSPECTOR_NAME, PP_FILTER_NAME]


def test_insert_before_without_a_filter_match_is_insert_first_and_add_appends():
    first = derive(filters=[envoy_filter("pp", listener_filter_patch("INSERT_BEFORE", pp_filter_value()))])
    assert first.tls_listener_filter_order == [PP_FILTER_NAME, TLS_INSPECTOR_NAME]
    added = derive(filters=[envoy_filter("pp", listener_filter_patch("ADD", pp_filter_value()))])
    assert added.tls_listener_filter_order == [TLS_INSPECTOR_NAME, PP_FILTER_NAME]
    assert added.listener_filter_order == [PP_FILTER_NAME]


def test_replace_and_remove_by_name():
    mesh = mesh_topology(proxyProtocol={})
    replaced = derive(
        mesh=mesh,
        filters=[envoy_filter("pp", listener_filter_patch("REPLACE", pp_filter_value(allow_requests_without_proxy_protocol=True), after=PP_FILTER_NAME))],
    )
    assert replaced.allow_without_pp
    removed = derive(mesh=mesh, filters=[envoy_filter("pp", listener_filter_patch("REMOVE", after=PP_FILTER_NAME))])
    assert not removed.pp_filter
    assert removed.tls_listener_filter_order == [TLS_INSPECTOR_NAME]


def test_listener_filter_merge_changes_options_of_the_same_filter_type():
    patch = listener_filter_patch("MERGE", pp_filter_value(allowRequestsWithoutProxyProtocol=True), after=PP_FILTER_NAME)
    s = derive(mesh=mesh_topology(proxyProtocol={}), filters=[envoy_filter("optional", patch)])
    assert s.allow_without_pp
    assert s.tls_listener_filter_order == [PP_FILTER_NAME, TLS_INSPECTOR_NAME]
    tls_inspector = s.listener_filters[8443][1]
    assert tls_inspector.typed_config == {"@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}
    # without a PP filter to merge into, MERGE adds nothing
    assert not derive(filters=[envoy_filter("optional", patch)]).pp_filter


def test_pp_options_are_read_from_typed_config_in_either_spelling():
    value = {
        "name": PP_FILTER_NAME,
        "typedConfig": {
            "@type": PP_TYPE_URL,
            "allowRequestsWithoutProxyProtocol": True,
            "rules": [{"tlv_type": 0xEA, "on_tlv_present": {"key": "vpce"}}],
            "pass_through_tlvs": {"match_type": "INCLUDE_ALL"},
            "disallowedVersions": ["V1"],
            "stat_prefix": "nlb",
        },
    }
    s = derive(filters=[envoy_filter("pp", listener_filter_patch("INSERT_FIRST", value))])
    assert s.allow_without_pp
    assert s.pp_options == {
        "allow_requests_without_proxy_protocol": True,
        "rules": [{"tlv_type": 0xEA, "on_tlv_present": {"key": "vpce"}}],
        "pass_through_tlvs": {"match_type": "INCLUDE_ALL"},
        "disallowed_versions": ["V1"],
        "stat_prefix": "nlb",
    }


@pytest.mark.parametrize(
    "ef",
    [
        envoy_filter("other-workload", merge_listener_filters(pp_filter_value()), selector={"app": "reviews"}),
        envoy_filter("other-namespace", merge_listener_filters(pp_filter_value()), namespace="default"),
        envoy_filter("sidecar-only", merge_listener_filters(pp_filter_value(), context="SIDECAR_INBOUND")),
    ],
    ids=lambda ef: ef["metadata"]["name"],
)
def test_envoy_filters_that_do_not_select_the_gateway_do_nothing(ef):
    assert not derive(filters=[ef]).pp_filter


def test_envoy_filter_without_selector_in_root_namespace_applies_and_any_context_counts():
    s = derive(filters=[envoy_filter("everyone", merge_listener_filters(pp_filter_value(), context="ANY"), selector=False)])
    assert s.pp_filter


def test_deprecated_name_with_typed_config_counts_as_pp():
    s = derive(filters=[envoy_filter("old", merge_listener_filters(pp_filter_value(PP_FILTER_DEPRECATED_NAME)))])
    assert s.pp_filter and s.listener_filter_order == [PP_FILTER_DEPRECATED_NAME]
    assert not any("typed_config" in w for w in s.warnings)


@pytest.mark.parametrize("name", [PP_FILTER_DEPRECATED_NAME, PP_FILTER_NAME])
def test_filter_without_typed_config_is_kept_and_warned_about(name):
    s = derive(filters=[envoy_filter("old", merge_listener_filters(pp_filter_value(name, typed=False)))])
    assert s.listener_filter_order == [name]
    assert s.pp_filter_on(8080).typed_config is None
    warnings = [w for w in s.warnings if "no typed_config" in w]
    assert len(warnings) == 2 and all("rejects the listener" in w for w in warnings)


def test_envoy_filters_apply_in_istiod_order():
    later = envoy_filter("b-late", listener_filter_patch("INSERT_FIRST", pp_filter_value(stat_prefix="second")))
    later["spec"]["priority"] = 10
    earlier = envoy_filter("a-early", listener_filter_patch("INSERT_FIRST", pp_filter_value(stat_prefix="first")))
    s = derive(filters=[later, earlier])
    # a-early is applied first, b-late is inserted in front of it
    assert [f.options.get("stat_prefix") for f in s.listener_filters[8080]] == ["second", "first"]


def test_unsupported_operations_are_reported():
    patch = {"applyTo": "LISTENER", "match": {"context": "GATEWAY"}, "patch": {"operation": "REMOVE"}}
    s = derive(filters=[envoy_filter("drop", patch)])
    assert any("LISTENER REMOVE is not simulated" in w for w in s.warnings)


# --- status listener, direct responses ------------------------------------------------------

@pytest.mark.parametrize("value,expected", [("true", True), ("1", True), ("false", False), ("yes", False)])
def test_status_port_env(value, expected):
    s = derive(gateway_deployment(env={"ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL": value}, image=ISTIO_127))
    assert s.status_pp is expected
    assert s.status_allow_without_pp is expected


@pytest.mark.parametrize("image,expected", [
    ("docker.io/istio/proxyv2:1.26.3", False),  # before istio/istio PR #55986: pilot-agent ignores the env
    ("docker.io/istio/proxyv2:1.27.0", True),
    ("gcr.io/istio-release/proxyv2:1.28.1-distroless", True),
    ("registry.example/proxyv2@sha256:" + "0" * 64, True),  # release unknown: the env is taken as set
])
def test_status_port_env_needs_istio_127(image, expected):
    s = derive(gateway_deployment(env={"ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL": "true"}, image=image))
    assert s.status_pp is expected


def test_virtual_service_direct_responses():
    vs = {
        "kind": "VirtualService",
        "metadata": {"name": "bench", "namespace": "istio-system"},
        "spec": {
            "gateways": ["lab-gateway"],
            "http": [
                {"match": [{"uri": {"prefix": "/fast"}}, {"uri": {"prefix": "/quick"}}],
                 "directResponse": {"status": 200, "body": {"string": "ok"}}},
                {"directResponse": {"status": 204}},
                {"route": [{"destination": {"host": "echo"}}]},
            ],
        },
    }
    mesh_only = {"kind": "VirtualService", "metadata": {"name": "m"}, "spec": {"http": [{"directResponse": {"status": 500}}]}}
    s = derive(services=[vs, mesh_only])
    assert s.direct_responses == [("/fast", 200, "ok"), ("/quick", 200, "ok"), ("/", 204, "")]
    assert any("VirtualService default/m is bound to no gateway" in w for w in s.warnings)


def test_as_dict_is_json_ready():
    import json

    s = derive(gateway_deployment({"proxy.istio.io/config": PP_ANNOTATION}))
    data = json.loads(json.dumps(s.as_dict()))
    assert data["pp_filter"] is True and data["listener_filter_order"] == [PP_FILTER_NAME]
