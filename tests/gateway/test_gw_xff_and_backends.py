"""X-Forwarded-For through real Envoy, and what each echo backend makes of it."""

from __future__ import annotations

import pytest
import pytest_asyncio

from ppdoctor import proxyproto
from ppdoctor.lab.addresses import (
    CLIENT_IP,
    ECHO_POD_IP,
    GATEWAY_POD_IP,
    TEST_NET_SOURCE,
)
from ppdoctor.echo.server import start_echo
from ppdoctor.lab.istio import derive_gateway_settings

from .gwhelpers import gateway_deployment, get_request, raw_exchange

pytestmark = [pytest.mark.interop, pytest.mark.asyncio(loop_scope="module")]

FORGED = "6.6.6.6"
PP_SOURCE = (TEST_NET_SOURCE, 40002)
LABELS = {"istio": "ingressgateway"}


def header_values(echo_json: dict, name: str) -> list[str]:
    return [v for k, v in echo_json["headers"] if k.lower() == name]


def forged_get(path: str = "/get") -> bytes:
    return get_request(path, extra=f"X-Forwarded-For: {FORGED}\r\n")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw_trusting_one_hop(gateways):
    mesh = {"defaultConfig": {"gatewayTopology": {"numTrustedProxies": 1}}}
    settings = derive_gateway_settings(gateway_deployment(), mesh, [], [], LABELS)
    assert settings.num_trusted_hops == 1 and not settings.pp_filter
    return await gateways(settings, name="gw-hops1")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw_pp_zero_hops(gateways):
    mesh = {"defaultConfig": {"gatewayTopology": {"proxyProtocol": {}}}}
    settings = derive_gateway_settings(gateway_deployment(), mesh, [], [], LABELS)
    return await gateways(settings, name="gw-pp-hops0")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def backends():
    servers = {v: await start_echo(ECHO_POD_IP, 0, v) for v in ("go-httpbin", "postman-httpbin")}
    yield servers
    for server in servers.values():
        await server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw_to(gateways, backends):
    """PP-enabled gateways in front of go-httpbin and postman-httpbin."""
    mesh = {"defaultConfig": {"gatewayTopology": {"proxyProtocol": {}}}}
    settings = derive_gateway_settings(gateway_deployment(), mesh, [], [], LABELS)
    return {
        name: await gateways(settings, name=f"gw-{name}", upstream=(server.host, server.port))
        for name, server in backends.items()
    }


async def test_zero_trusted_hops_appends_the_peer_and_ignores_the_forged_entry(gw_pp_zero_hops):
    header = proxyproto.proxy_v2(PP_SOURCE, (GATEWAY_POD_IP, 8080))
    seen = (await raw_exchange(gw_pp_zero_hops.ports.traffic, header + forged_get())).json()
    assert header_values(seen, "x-forwarded-for") == [f"{FORGED},{TEST_NET_SOURCE}"]
    assert header_values(seen, "x-envoy-external-address") == [TEST_NET_SOURCE]


async def test_xff_forge_finds_nothing_to_forge_with_zero_trusted_hops(gateways):
    """No trusted hop: neither forged chain wins, so no PPD010 (plain gateway, reached directly)."""
    from ppdoctor.config import NlbTarget, TargetConfig
    from ppdoctor.diagnosis.engine import diagnose
    from ppdoctor.probes import run_probe
    from ppdoctor.probes.context import ProbeContext

    settings = derive_gateway_settings(gateway_deployment(), {}, [], [], LABELS)
    assert settings.num_trusted_hops == 0
    gw = await gateways(settings, name="gw-hops0-plain")
    config = TargetConfig(nlb=NlbTarget(address=f"{GATEWAY_POD_IP}:{gw.ports.traffic}", client_source=CLIENT_IP))
    forge = await run_probe("xff-forge", ProbeContext(config))
    assert forge.facts["xff.spoofable"].value is False, forge.as_dict()
    assert [t["forged_entries"] for t in forge.evidence["forged_xff"]] == [1, 8]
    assert "PPD010" not in [f.id for f in diagnose([forge])]


async def test_num_trusted_proxies_1_lets_a_forged_xff_through(gw_trusting_one_hop):
    seen = (await raw_exchange(gw_trusting_one_hop.ports.traffic, forged_get())).json()
    assert header_values(seen, "x-forwarded-for") == [f"{FORGED},{CLIENT_IP}"]
    # Envoy now trusts the right-most entry as a proxy and takes the forged one as the client (PPD010)
    assert header_values(seen, "x-envoy-external-address") == [FORGED]


async def test_num_trusted_proxies_1_without_an_xff_falls_back_to_the_peer(gw_trusting_one_hop):
    # XFF has fewer entries than trusted hops: Envoy uses the downstream address
    seen = (await raw_exchange(gw_trusting_one_hop.ports.traffic, get_request())).json()
    assert header_values(seen, "x-forwarded-for") == [CLIENT_IP]
    assert header_values(seen, "x-envoy-external-address") == [CLIENT_IP]


async def test_go_httpbin_behind_envoy_shows_xff_and_origin(gw_to):
    header = proxyproto.proxy_v2(PP_SOURCE, (GATEWAY_POD_IP, 8080))
    result = await raw_exchange(gw_to["go-httpbin"].ports.traffic, header + get_request("/get?x=1"))
    assert result.status == 200
    body = result.json()
    assert body["origin"] == TEST_NET_SOURCE
    assert body["headers"]["X-Forwarded-For"] == [TEST_NET_SOURCE]
    assert body["headers"]["X-Envoy-External-Address"] == [TEST_NET_SOURCE]
    assert body["headers"]["Host"] == ["gateway.lab.example"]
    assert body["url"] == "http://gateway.lab.example/get?x=1"
    assert body["args"] == {"x": ["1"]}


async def test_go_httpbin_origin_takes_the_first_xff_entry_even_when_forged(gw_to):
    header = proxyproto.proxy_v2(PP_SOURCE, (GATEWAY_POD_IP, 8080))
    body = (await raw_exchange(gw_to["go-httpbin"].ports.traffic, header + forged_get("/ip"))).json()
    assert body == {"origin": FORGED}


async def test_postman_httpbin_behind_envoy_drops_xff_but_keeps_external_address(gw_to):
    header = proxyproto.proxy_v2(PP_SOURCE, (GATEWAY_POD_IP, 8080))
    body = (await raw_exchange(gw_to["postman-httpbin"].ports.traffic, header + get_request("/headers"))).json()
    names = {k.lower() for k in body["headers"]}
    assert "x-forwarded-for" not in names and "x-forwarded-proto" not in names and "x-request-id" not in names
    assert body["headers"]["X-Envoy-External-Address"] == TEST_NET_SOURCE


async def test_postman_httpbin_origin_is_the_whole_xff_value(gw_to):
    header = proxyproto.proxy_v2(PP_SOURCE, (GATEWAY_POD_IP, 8080))
    plain = (await raw_exchange(gw_to["postman-httpbin"].ports.traffic, header + get_request("/ip"))).json()
    assert plain == {"origin": TEST_NET_SOURCE}
    forged = (await raw_exchange(gw_to["postman-httpbin"].ports.traffic, header + forged_get("/ip"))).json()
    assert forged == {"origin": f"{FORGED},{TEST_NET_SOURCE}"}


@pytest.mark.parametrize("hops", [1, 2, 3])
@pytest.mark.parametrize("where", ["mesh", "pod-template"])
async def test_with_n_trusted_hops_a_client_sending_n_entries_chooses_its_address(gateways, hops, where):
    """Measured: with xff_num_trusted_hops N (from either place), the entry N from the right of what the
    client sent becomes X-Envoy-External-Address; with fewer than N entries Envoy falls back to the peer's
    own address. One forged entry (what xff-forge sent before) is therefore only caught for N = 1."""
    import json as _json

    topo = {"gatewayTopology": {"numTrustedProxies": hops}}
    if where == "mesh":
        settings = derive_gateway_settings(gateway_deployment(), {"defaultConfig": topo}, [], [], LABELS)
    else:
        settings = derive_gateway_settings(
            gateway_deployment({"proxy.istio.io/config": _json.dumps(topo)}), {}, [], [], LABELS)
    assert settings.num_trusted_hops == hops
    gw = await gateways(settings, name=f"gw-hops{hops}-{where}")
    # ppdoctor's xff-forge probe and PPD010 against the same gateway: the false "healthy" of N > 1 is gone
    from ppdoctor.config import NlbTarget, TargetConfig
    from ppdoctor.diagnosis.engine import diagnose
    from ppdoctor.probes import run_probe
    from ppdoctor.probes.context import ProbeContext

    config = TargetConfig(nlb=NlbTarget(address=f"{GATEWAY_POD_IP}:{gw.ports.traffic}", client_source=CLIENT_IP))
    forge = await run_probe("xff-forge", ProbeContext(config))
    assert forge.facts["xff.spoofable"].value is True, forge.as_dict()
    assert forge.facts["xff.trusted_hops_measured"].value == hops
    assert forge.facts["xff.forged_count_won"].value == (1 if hops == 1 else 8)
    assert [f.id for f in diagnose([forge])] == ["PPD010"]
    for count in range(1, hops + 2):
        forged = [f"198.51.100.{60 + i}" for i in range(count)]
        seen = (await raw_exchange(gw.ports.traffic, get_request(extra=f"X-Forwarded-For: {', '.join(forged)}\r\n"))).json()
        external = header_values(seen, "x-envoy-external-address")
        if count < hops:
            assert external == [CLIENT_IP], (count, external)  # too few entries: Envoy keeps the peer
        else:
            assert external == [forged[count - hops]], (count, external)
