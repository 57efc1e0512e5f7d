"""The lab's gateway answers GET /bench itself (VirtualService directResponse), with and through PP."""

from __future__ import annotations

import os
import json
import urllib.request

import pytest

from ppdoctor.bench import BenchSpec, run_bench, wire
from ppdoctor.bench.targets import build_sides
from ppdoctor.config import load_config
from ppdoctor.lab.cli import start_lab, stop_lab
from ppdoctor.lab.istio import derive_gateway_settings
from ppdoctor.lab.manifests import PortMap, echo_objects
from ppdoctor.lab.scenario import load_scenario

pytestmark = [pytest.mark.timeout(90)]


def test_echo_virtual_service_has_the_bench_route_before_the_catch_all():
    objs = echo_objects(load_scenario("healthy"), PortMap(1, 2, 3, 4, 5))
    vs = next(o for o in objs if o["kind"] == "VirtualService")
    http = vs["spec"]["http"]
    # /bench-delay first: Istio's prefix match is a string prefix, so "/bench" would also take /bench-delay
    assert http[0]["match"] == [{"uri": {"prefix": "/bench-delay"}}]
    assert http[0]["fault"] == {"delay": {"fixedDelay": "2ms", "percentage": {"value": 100}}}
    assert http[1] == {"match": [{"uri": {"prefix": "/bench"}}], "directResponse": {"status": 200, "body": {"string": "ok"}}}
    assert "route" in http[-1] and "match" not in http[-1]
    settings = derive_gateway_settings({}, {}, [], [vs], {})
    assert settings.direct_responses == [("/bench-delay", 200, "ok"), ("/bench", 200, "ok")]


@pytest.mark.lab
async def test_bench_against_the_healthy_lab_gateway(tmp_path):
    proc, endpoints = start_lab("healthy", tmp_path / "lab", owner_pid=os.getpid())
    try:
        cfg = load_config(endpoints["config"], env={})
        # Envoy itself answers /bench: the route is a direct_response in the live config
        dump = json.loads(urllib.request.urlopen(f"http://{endpoints['gateway_admin']}/config_dump", timeout=5).read())
        text = json.dumps(dump)
        assert '"prefix": "/bench"' in text and '"inline_string": "ok"' in text
        spec = BenchSpec(sides=build_sides(cfg, pp="both"), rates=(200.0,), duration_s=1.0, connections=4,
                         keep_bodies=1)
        result = await run_bench(spec)
    finally:
        stop_lab(tmp_path / "lab", pid=proc.pid)
        proc.wait(timeout=20)
    off, on = result.runs
    # the healthy gateway requires PROXY protocol: plain requests are refused, the PP-on side runs
    assert off.skipped and "requires PROXY protocol" in off.skipped
    assert on.outcomes[wire.OK] == 200 and on.errors == 0
    assert on.bodies == [(200, b"ok")]
    assert result.preflight["on"].body == b"ok"
