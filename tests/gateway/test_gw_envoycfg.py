"""envoycfg: the rendered bootstrap and LDS documents have istiod's gateway shape."""

from __future__ import annotations

import json
import os

from cryptography import x509

from ppdoctor.lab import envoycfg
from ppdoctor.lab.istio import (
    PP_FILTER_NAME,
    PP_TYPE,
    TLS_INSPECTOR_NAME,
    derive_gateway_settings,
)

from .gwhelpers import PP_ANNOTATION, gateway_deployment

PP_ON = derive_gateway_settings(gateway_deployment({"proxy.istio.io/config": PP_ANNOTATION}), {}, [], [], {})
PLAIN = derive_gateway_settings(gateway_deployment(), {"defaultConfig": {"gatewayTopology": {"numTrustedProxies": 2}}}, [], [], {})

ISTIO_127 = "docker.io/istio/proxyv2:1.27.1"  # knows ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL (PR #55986)


def listeners(settings, **kw):
    args = {"pod_ip": "127.1.2.10", "traffic_port": 18080, "tls_port": 18443, "tls_cert": ("/c.pem", "/k.pem")}
    args.update(kw)
    doc = envoycfg.render_listeners(settings, **args)
    return doc, {r["name"]: r for r in doc["resources"]}


def hcm(listener) -> dict:
    return listener["filter_chains"][0]["filters"][0]["typed_config"]


def test_lds_document_is_a_discovery_response():
    doc, by_name = listeners(PP_ON, version="7")
    assert doc["version_info"] == "7"
    assert doc["type_url"] == envoycfg.LISTENER_TYPE
    assert set(by_name) == {"0.0.0.0_8080", "0.0.0.0_8443"}
    assert all(r["@type"] == envoycfg.LISTENER_TYPE for r in doc["resources"])


def test_default_listener_filters_timeout_is_envoys_15_s():
    _, by_name = listeners(PP_ON)
    assert envoycfg.DEFAULT_LISTENER_FILTERS_TIMEOUT_S == 15.0
    assert {l["listener_filters_timeout"] for l in by_name.values()} == {"15.000s"}
    _, short = listeners(PP_ON, listener_filters_timeout_s=0.5)
    assert short["0.0.0.0_8080"]["listener_filters_timeout"] == "0.500s"


def test_traffic_listener_shape():
    _, by_name = listeners(PP_ON)
    traffic = by_name["0.0.0.0_8080"]
    assert traffic["address"] == {"socket_address": {"address": "127.1.2.10", "port_value": 18080}}
    assert traffic["listener_filters"] == [
        {"name": PP_FILTER_NAME, "typed_config": {"@type": PP_TYPE}}
    ]
    config = hcm(traffic)
    assert config["stat_prefix"] == "outbound_0.0.0.0_8080"
    assert config["use_remote_address"] is True
    assert config["xff_num_trusted_hops"] == 0
    assert config["normalize_path"] is True
    assert config["route_config"]["virtual_hosts"][0]["routes"][-1]["route"]["cluster"] == envoycfg.ECHO_CLUSTER


def test_trusted_hops_reach_the_hcm():
    _, by_name = listeners(PLAIN)
    assert hcm(by_name["0.0.0.0_8080"])["xff_num_trusted_hops"] == 2
    assert by_name["0.0.0.0_8080"]["listener_filters"] == []


def test_tls_listener_matches_sni_and_terminates_tls():
    _, by_name = listeners(PP_ON)
    tls = by_name["0.0.0.0_8443"]
    assert [f["name"] for f in tls["listener_filters"]] == [PP_FILTER_NAME, TLS_INSPECTOR_NAME]
    chain = tls["filter_chains"][0]
    assert chain["filter_chain_match"] == {"server_names": ["*.lab.example"]}
    certs = chain["transport_socket"]["typed_config"]["common_tls_context"]["tls_certificates"]
    assert certs == [{"certificate_chain": {"filename": "/c.pem"}, "private_key": {"filename": "/k.pem"}}]
    assert hcm(tls)["stat_prefix"] == "outbound_0.0.0.0_8443"


def test_no_tls_listener_without_port_or_cert():
    _, by_name = listeners(PP_ON, tls_port=None)
    assert set(by_name) == {"0.0.0.0_8080"}


def test_untyped_filter_is_rendered_as_configured():
    from ppdoctor.lab.istio import GatewaySettings, ListenerFilter

    settings = GatewaySettings(listener_filters={8080: [ListenerFilter("envoy.listener.proxy_protocol")]})
    _, by_name = listeners(settings)
    assert by_name["0.0.0.0_8080"]["listener_filters"] == [{"name": "envoy.listener.proxy_protocol"}]


def test_direct_responses_come_before_the_echo_route():
    settings = derive_gateway_settings(
        gateway_deployment(), {}, [],
        [{"kind": "VirtualService", "metadata": {"name": "v"},
          "spec": {"gateways": ["gw"], "http": [{"match": [{"uri": {"prefix": "/b"}}], "directResponse": {"status": 200, "body": {"string": "x"}}}]}}],
        {},
    )
    _, by_name = listeners(settings)
    routes = hcm(by_name["0.0.0.0_8080"])["route_config"]["virtual_hosts"][0]["routes"]
    assert routes[0]["match"] == {"prefix": "/b"}
    assert routes[0]["direct_response"] == {"status": 200, "body": {"inline_string": "x"}}
    assert routes[1]["match"] == {"prefix": "/"}


def test_bootstrap_has_admin_status_listener_cluster_and_file_lds(tmp_path):
    lds = tmp_path / "lds" / "listeners.json"
    boot = envoycfg.render_bootstrap(
        PP_ON, pod_ip="127.1.2.10", status_port=15021, admin_port=15000, echo_upstream=("127.1.2.20", 8000), lds_path=lds
    )
    assert boot["admin"]["address"]["socket_address"] == {"address": "127.1.2.10", "port_value": 15000}
    status = boot["static_resources"]["listeners"][0]
    assert status["listener_filters"] == []  # gatewayTopology never reaches the static listener
    routes = status["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    assert routes[0] == {"match": {"prefix": "/healthz/ready"}, "direct_response": {"status": 200}}
    cluster = boot["static_resources"]["clusters"][0]
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert endpoint["socket_address"] == {"address": "127.1.2.20", "port_value": 8000}
    source = boot["dynamic_resources"]["lds_config"]["path_config_source"]
    assert source == {"path": str(lds), "watched_directory": {"path": str(lds.parent)}}


def test_status_listener_pp_from_env():
    settings = derive_gateway_settings(gateway_deployment(env={"ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL": "true"}, image=ISTIO_127), {}, [], [], {})
    boot = envoycfg.render_bootstrap(
        settings, pod_ip="127.1.2.10", status_port=1, admin_port=2, echo_upstream=("127.1.2.20", 3), lds_path="/x/l.json"
    )
    [pp] = boot["static_resources"]["listeners"][0]["listener_filters"]
    assert pp["typed_config"]["allow_requests_without_proxy_protocol"] is True


def test_write_lds_replaces_the_file_atomically(tmp_path):
    path = tmp_path / "listeners.json"
    envoycfg.write_lds(path, {"version_info": "1"})
    inode = os.stat(path).st_ino
    envoycfg.write_lds(path, {"version_info": "2"})
    assert json.loads(path.read_text()) == {"version_info": "2"}
    assert os.stat(path).st_ino != inode  # a rename, not an in-place write
    assert [p.name for p in tmp_path.iterdir()] == ["listeners.json"]


def test_tls_cert_is_created_once_and_covers_the_sni(tmp_path):
    cert_path, key_path = envoycfg.ensure_tls_cert(tmp_path)
    assert oct(key_path.stat().st_mode & 0o777) == "0o600"
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert names == ["*.lab.example"]
    before = cert_path.read_bytes()
    assert envoycfg.ensure_tls_cert(tmp_path) == (cert_path, key_path)
    assert cert_path.read_bytes() == before
