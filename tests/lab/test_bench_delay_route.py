"""The running lab's gateway answers GET /bench-delay itself after its fixed 2 ms fault delay; /bench stays immediate."""

from __future__ import annotations

import json
import socket
import time
import urllib.request

import pytest

from ppdoctor import proxyproto
from ppdoctor.config import split_host_port
from ppdoctor.lab.addresses import TEST_NET_SOURCE
from ppdoctor.lab.manifests import BENCH_DELAY_PATH

pytestmark = pytest.mark.lab


def _get(host: str, port: int, path: str, *, preamble: bytes = b"", source: str | None = None) -> tuple[bytes, float]:
    """One GET on a fresh connection: (raw response, seconds from sending the request to its last byte)."""
    with socket.create_connection((host, port), timeout=5, source_address=(source, 0) if source else None) as sock:
        if preamble:
            sock.sendall(preamble)
        request = f"GET {path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n".encode()
        start = time.perf_counter()
        sock.sendall(request)
        data = b""
        while not (b"\r\n\r\n" in data and data.endswith(b"ok")):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data, time.perf_counter() - start


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def test_gateway_answers_bench_delay_after_the_delay(lab_pool):
    lab = lab_pool.get("healthy")  # the gateway requires PROXY protocol: every connection gets a PPv2 header
    host, port = split_host_port(lab.config.gateway.direct, what="gateway.direct")

    def pp_get(path: str) -> tuple[bytes, float]:
        header = proxyproto.proxy_v2((TEST_NET_SOURCE, 40000), (host, port))
        return _get(host, port, path, preamble=header)

    delayed, immediate = [], []
    for _ in range(5):
        data, seconds = pp_get(BENCH_DELAY_PATH)
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"\r\n\r\nok"), data[:200]
        delayed.append(seconds)
        data, seconds = pp_get("/bench")
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"\r\n\r\nok"), data[:200]
        immediate.append(seconds)
    # lower bound only: a loaded machine makes both slower, never the delayed one faster than its delay
    assert _median(delayed) >= 0.0019, delayed
    assert b"x-envoy-upstream-service-time" not in data  # Envoy answered itself, no upstream


def test_bench_delay_through_the_nlb(lab_pool):
    lab = lab_pool.get("healthy")  # the NLB adds the PROXY header (target group proxy_protocol_v2.enabled)
    host, port = split_host_port(lab.config.nlb.address, what="nlb.address")
    data, seconds = _get(host, port, BENCH_DELAY_PATH, source=lab.config.nlb.client_source or None)
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"\r\n\r\nok"), data[:200]
    assert seconds >= 0.0019


def test_live_config_has_the_fault_filter_and_the_delayed_route(lab_pool):
    lab = lab_pool.get("healthy")
    dump = json.loads(urllib.request.urlopen(f"http://{lab.endpoints['gateway_admin']}/config_dump", timeout=5).read())
    listeners = next(c for c in dump["configs"] if c["@type"].endswith("ListenersConfigDump"))
    traffic = next(d["active_state"]["listener"] for d in listeners["dynamic_listeners"] if d["name"] == "0.0.0.0_8080")
    hcm = traffic["filter_chains"][0]["filters"][0]["typed_config"]
    assert [f["name"] for f in hcm["http_filters"]] == ["envoy.filters.http.fault", "envoy.filters.http.router"]
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    assert [r["match"].get("prefix") for r in routes] == [BENCH_DELAY_PATH, "/bench", "/"]
    fault = routes[0]["typed_per_filter_config"]["envoy.filters.http.fault"]
    assert fault["delay"]["fixed_delay"] == "0.002s"
    assert fault["delay"]["percentage"] == {"numerator": 1000000, "denominator": "MILLION"}
    # and the PROXY filter is where the healthy scenario puts it
    assert [f["name"] for f in traffic["listener_filters"]] == ["envoy.filters.listener.proxy_protocol"]
