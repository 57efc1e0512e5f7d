"""The gateway's TCP route (Gateway server protocol TCP + VirtualService tcp route) to a server-first backend.

Derivation as istiod does it (which Gateway/VirtualService pairs open the tcp_proxy listener), and the
real Envoy behind it: with the PROXY filter a silent client never gets the greeting (the filter waits
for the header until listener_filters_timeout, then closes), with the header it does (PPD018).
"""

from __future__ import annotations

import time

import pytest
import pytest_asyncio

from ppdoctor import proxyproto
from ppdoctor.lab import manifests
from ppdoctor.lab.addresses import ECHO_POD_IP, GATEWAY_POD_IP, TEST_NET_SOURCE
from ppdoctor.lab.envoycfg import outbound_cluster
from ppdoctor.lab.gateway import free_port
from ppdoctor.lab.greeter import GREETING, start_greeter
from ppdoctor.lab.istio import PP_FILTER_NAME, derive_gateway_settings
from ppdoctor.lab.scenario import TCP_PORT, load_scenario

from .gwhelpers import raw_exchange

pytestmark = [pytest.mark.interop]
ASYNC = pytest.mark.asyncio(loop_scope="module")

SCENARIO = load_scenario("server-first-header-placement")
PORTS = manifests.PortMap(traffic=18080, tls=18443, status=15021, admin=15000, echo=18000, tcp=31400)
LABELS = {"istio": "ingressgateway"}
GREETER_HOST = "greeter.default.svc.cluster.local"


def _gateway(number=25, protocol="TCP", name="smtp-gateway"):
    return {"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": LABELS, "servers": [{"port": {"number": number, "name": "tcp", "protocol": protocol},
                                                       "hosts": ["*"]}]}}


def _vs(gateways=("smtp-gateway",), match_port=25, host=GREETER_HOST):
    tcp = {"route": [{"destination": {"host": host, "port": {"number": 25}}}]}
    if match_port is not None:
        tcp["match"] = [{"port": match_port}]
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "greeter", "namespace": "default"},
            "spec": {"hosts": ["*"], "gateways": list(gateways), "tcp": [tcp]}}


def settings(gateways, services, *, pp=True):
    scenario = SCENARIO
    deployment = manifests.gateway_deployment(scenario, PORTS)
    if not pp:
        deployment["spec"]["template"]["metadata"]["annotations"].pop("proxy.istio.io/config")
    service = manifests.gateway_service(scenario, PORTS, lb_hostname=None)
    return derive_gateway_settings(deployment, {}, [], services, LABELS, gateways=gateways, service=service)


@pytest.mark.parametrize(("gateways", "services", "routed"), [
    ([_gateway()], [_vs()], True),
    ([_gateway()], [_vs(match_port=None)], True),  # a tcp route without a port match takes every TCP server
    ([_gateway()], [_vs(gateways=("other-gateway",))], False),  # bound to another Gateway
    ([_gateway()], [_vs(match_port=3306)], False),  # matches another port
    ([_gateway(protocol="HTTP")], [_vs()], False),  # an HTTP server: HCM, not tcp_proxy
    ([_gateway(number=26)], [_vs(match_port=26)], False),  # 26 is no port of the gateway Service: lands nowhere
    ([], [_vs()], False),
])
def test_tcp_route_needs_a_tcp_server_landing_on_the_tcp_port_and_a_bound_route(gateways, services, routed):
    got = settings(gateways, services)
    if routed:
        route = got.tcp_routes[TCP_PORT]
        assert (route.host, route.port) == (GREETER_HOST, 25)
        assert [f.name for f in got.listener_filters[TCP_PORT]] == [PP_FILTER_NAME]
    else:
        assert TCP_PORT not in got.tcp_routes


def test_tcp_listener_gets_the_pp_filter_only_with_the_topology():
    assert settings([_gateway()], [_vs()], pp=False).listener_filters[TCP_PORT] == []


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def greeter():
    server = await start_greeter(ECHO_POD_IP)
    yield server
    await server.stop()


async def _tcp_gateway(gateways, greeter, s, name):
    gw = await gateways(s, name=name, listener_filters_timeout_s=1.0)
    await gw.restart(s, tcp_port=free_port(GATEWAY_POD_IP),
                     tcp_upstreams={outbound_cluster(GREETER_HOST, 25): greeter.address})
    return gw


@ASYNC
async def test_real_envoy_holds_the_greeting_until_the_proxy_header(gateways, greeter):
    gw = await _tcp_gateway(gateways, greeter, settings([_gateway()], [_vs()]), "gw-tcp-pp")
    assert "0.0.0.0_31400" in gw.last_update.applied
    silent = await raw_exchange(gw.ports.tcp, b"", timeout=5.0)
    # the PROXY filter waits for the header; at listener_filters_timeout (1 s here) Envoy closes
    assert silent.data == b"" and silent.ending in ("fin", "reset")
    header = proxyproto.proxy_v2((TEST_NET_SOURCE, 40000), (GATEWAY_POD_IP, gw.ports.tcp))
    started = time.monotonic()
    spoken = await raw_exchange(gw.ports.tcp, header + b"QUIT\r\n", timeout=5.0)
    assert spoken.data.startswith(GREETING) and b"221 bye" in spoken.data, (spoken, time.monotonic() - started)


@ASYNC
async def test_real_envoy_without_the_pp_filter_lets_the_greeting_through(gateways, greeter):
    gw = await _tcp_gateway(gateways, greeter, settings([_gateway()], [_vs()], pp=False), "gw-tcp-plain")
    silent = await raw_exchange(gw.ports.tcp, b"", timeout=0.8)
    assert silent.data == GREETING
