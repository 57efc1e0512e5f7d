"""KNOWLEDGE.md "Measured with real Envoy 1.40.0": every row, reproduced with raw sockets.

The gateways are configured through ppdoctor's own istiod emulation (istio.py → envoycfg.py)
and run as real Envoy processes; the client binds the lab's client address 127.0.0.5 and
the pod behind the gateway is ppdoctor's echo, which reports the headers Envoy forwarded.
"""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio

from ppdoctor import proxyproto
from ppdoctor.lab.addresses import CLIENT_IP, GATEWAY_POD_IP, TEST_NET_SOURCE
from ppdoctor.lab.istio import derive_gateway_settings

from .gwhelpers import (
    PP_ANNOTATION,
    envoy_filter,
    gateway_deployment,
    get_request,
    listener_filter_patch,
    pp_filter_value,
    raw_exchange,
)

pytestmark = [pytest.mark.interop, pytest.mark.asyncio(loop_scope="module")]

SHORT_FILTER_TIMEOUT_S = 1.0
PP_SOURCE = (TEST_NET_SOURCE, 40001)


def header_values(echo_json: dict, name: str) -> list[str]:
    return [v for k, v in echo_json["headers"] if k.lower() == name]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw_pp(gateways):
    """PP filter via the pod-template annotation; short listener_filters_timeout for the 'nothing' row."""
    settings = derive_gateway_settings(
        gateway_deployment({"proxy.istio.io/config": PP_ANNOTATION}), {}, [], [], {"istio": "ingressgateway"}
    )
    assert settings.pp_filter and not settings.allow_without_pp
    return await gateways(settings, name="gw-pp", listener_filters_timeout_s=SHORT_FILTER_TIMEOUT_S)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw_plain(gateways):
    settings = derive_gateway_settings(gateway_deployment(), {}, [], [], {"istio": "ingressgateway"})
    assert not settings.pp_filter
    return await gateways(settings, name="gw-plain")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw_optional(gateways):
    """PP filter from an EnvoyFilter with allow_requests_without_proxy_protocol (the safe roll-out mode)."""
    ef = envoy_filter(
        "proxy-protocol-optional",
        listener_filter_patch(
            "INSERT_FIRST", pp_filter_value(allow_requests_without_proxy_protocol=True), port=8080
        ),
    )
    settings = derive_gateway_settings(gateway_deployment(), {}, [ef], [], {"istio": "ingressgateway"})
    assert settings.pp_filter and settings.allow_without_pp
    return await gateways(settings, name="gw-optional")


# --- gateway listener with the PP filter ------------------------------------------------------

async def test_pp_filter_ppv2_proxy_get_is_200_with_pp_source_in_xff(gw_pp):
    header = proxyproto.proxy_v2(PP_SOURCE, (GATEWAY_POD_IP, 8080))
    result = await raw_exchange(gw_pp.ports.traffic, header + get_request())
    assert result.status == 200
    seen = result.json()
    assert header_values(seen, "x-forwarded-for") == [TEST_NET_SOURCE]
    assert header_values(seen, "x-envoy-external-address") == [TEST_NET_SOURCE]
    # the pod sees Envoy as its peer; the PROXY header never reaches it
    assert seen["peer"]["address"] != TEST_NET_SOURCE and seen["proxy_header"] is None


async def test_pp_filter_aws_vpce_tlv_is_accepted(gw_pp):
    header = proxyproto.proxy_v2(PP_SOURCE, (GATEWAY_POD_IP, 8080), vpce_id="vpce-0123456789abcdef0", crc32c=True)
    result = await raw_exchange(gw_pp.ports.traffic, header + get_request())
    assert result.status == 200
    assert header_values(result.json(), "x-forwarded-for") == [TEST_NET_SOURCE]


async def test_pp_filter_ppv2_local_get_uses_the_socket_address(gw_pp):
    result = await raw_exchange(gw_pp.ports.traffic, proxyproto.local_v2() + get_request())
    assert result.status == 200
    assert header_values(result.json(), "x-forwarded-for") == [CLIENT_IP]
    assert header_values(result.json(), "x-envoy-external-address") == [CLIENT_IP]


async def test_pp_filter_ppv1_get_is_200_with_v1_source(gw_pp):
    header = proxyproto.proxy_v1(("198.51.100.9", 5555), (GATEWAY_POD_IP, 8080))
    result = await raw_exchange(gw_pp.ports.traffic, header + get_request())
    assert result.status == 200
    assert header_values(result.json(), "x-forwarded-for") == ["198.51.100.9"]


async def test_pp_filter_plain_get_is_reset_without_a_byte(gw_pp):
    result = await raw_exchange(gw_pp.ports.traffic, get_request())
    assert result.data == b""
    assert result.ending == "reset"  # the unread request in the socket buffer turns close() into RST
    assert result.end_s < 0.5


async def test_pp_filter_short_prefix_waits_for_the_filter_timeout_then_resets(gw_pp):
    # fewer bytes than Envoy needs to rule out a PROXY header: it waits for more
    prefixes = (b"G", b"\r\n\r\n", b"PROXY ")
    results = await asyncio.gather(*(raw_exchange(gw_pp.ports.traffic, p) for p in prefixes))
    for result in results:
        assert result.data == b"" and result.ending == "reset"
        assert SHORT_FILTER_TIMEOUT_S - 0.2 < result.end_s < SHORT_FILTER_TIMEOUT_S + 1.0


async def test_pp_filter_half_close_without_data_is_an_immediate_fin(gw_pp):
    result = await raw_exchange(gw_pp.ports.traffic, b"", half_close=True)
    assert result.data == b"" and result.ending == "fin" and result.end_s < 0.5


async def test_pp_filter_nothing_sent_is_closed_after_listener_filters_timeout(gw_pp):
    result = await raw_exchange(gw_pp.ports.traffic, b"", timeout=SHORT_FILTER_TIMEOUT_S + 4)
    assert result.data == b""
    assert result.ending == "fin"
    assert SHORT_FILTER_TIMEOUT_S - 0.2 < result.end_s < SHORT_FILTER_TIMEOUT_S + 1.0


async def test_pp_filter_default_timeout_is_15_s_in_the_running_config(gw_plain):
    dump = await gw_plain.config_dump("dynamic_listeners")
    listener = next(c for c in dump["configs"] if c["name"] == "0.0.0.0_8080")["active_state"]["listener"]
    assert listener["listener_filters_timeout"] == "15s"


async def test_pp_filter_stats_count_what_was_seen(gw_pp):
    stats = await gw_pp.stats(r"proxy_proto")
    assert int(stats["proxy_proto.versions.v2.found"]) >= 2
    assert int(stats["proxy_proto.versions.v1.found"]) >= 1
    assert int(stats["proxy_proto.not_found_disallowed"]) >= 1
    assert int(stats["downstream_cx_proxy_proto_error"]) >= 1


async def test_allow_without_pp_plain_get_is_200_with_socket_peer(gw_optional):
    result = await raw_exchange(gw_optional.ports.traffic, get_request())
    assert result.status == 200
    assert header_values(result.json(), "x-forwarded-for") == [CLIENT_IP]


async def test_allow_without_pp_still_honours_a_ppv2_header(gw_optional):
    header = proxyproto.proxy_v2(PP_SOURCE, (GATEWAY_POD_IP, 8080))
    result = await raw_exchange(gw_optional.ports.traffic, header + get_request())
    assert result.status == 200
    assert header_values(result.json(), "x-forwarded-for") == [TEST_NET_SOURCE]
    stats = await gw_optional.stats(r"proxy_proto\.not_found_allowed")
    assert int(stats["proxy_proto.not_found_allowed"]) >= 1


# --- gateway listener without the PP filter ---------------------------------------------------

@pytest.mark.parametrize("kind", ["proxy", "local"])
async def test_no_pp_filter_ppv2_gets_400_then_a_delayed_close(gw_plain, kind):
    header = proxyproto.proxy_v2(PP_SOURCE, (GATEWAY_POD_IP, 8080)) if kind == "proxy" else proxyproto.local_v2()
    result = await raw_exchange(gw_plain.ports.traffic, header + get_request())
    assert result.status == 400
    assert result.body == b"Bad Request"
    assert result.headers["connection"] == "close"
    # the 400 is written at once; the FIN follows after Envoy's 1 s delayed_close_timeout
    assert result.first_byte_s is not None and result.first_byte_s < 0.5
    assert 0.8 < result.end_s < 5.0
    assert result.ending == "fin"


async def test_no_pp_filter_ppv1_gets_400_too(gw_plain):
    header = proxyproto.proxy_v1(("198.51.100.9", 5555), (GATEWAY_POD_IP, 8080))
    result = await raw_exchange(gw_plain.ports.traffic, header + get_request())
    assert result.status == 400


async def test_no_pp_filter_plain_get_is_200_with_socket_peer(gw_plain):
    result = await raw_exchange(gw_plain.ports.traffic, get_request())
    assert result.status == 200
    seen = result.json()
    assert header_values(seen, "x-forwarded-for") == [CLIENT_IP]
    assert header_values(seen, "x-envoy-external-address") == [CLIENT_IP]
    assert result.headers["server"] == "istio-envoy"


async def test_no_pp_filter_protocol_errors_are_counted(gw_plain):
    stats = await gw_plain.stats(r"outbound_0\.0\.0\.0_8080\.downstream_(cx_protocol_error|cx_delayed_close_timeout)")
    assert int(stats["http.outbound_0.0.0.0_8080.downstream_cx_protocol_error"]) >= 3
    assert int(stats["http.outbound_0.0.0.0_8080.downstream_cx_delayed_close_timeout"]) >= 1


# --- the status listener ----------------------------------------------------------------------

async def test_status_listener_never_gets_pp_from_gateway_topology(gw_pp):
    ok = await raw_exchange(gw_pp.ports.status, get_request("/healthz/ready"), until_response=True)
    assert ok.status == 200
    # what the NLB's HTTP health check sends when PP is on: a LOCAL header first → 400 (PPD005)
    nlb_style = await raw_exchange(
        gw_pp.ports.status, proxyproto.local_v2() + get_request("/healthz/ready"), until_response=True
    )
    assert nlb_style.status == 400
