"""VirtualService fault.delay: istiod's translation (fault filter + per-route config) and real Envoy holding the request."""

from __future__ import annotations

import pytest

from ppdoctor.lab import envoycfg
from ppdoctor.lab.istio import DirectResponseRoute, FaultDelay, derive_gateway_settings, parse_duration_ns
from ppdoctor.lab.manifests import BENCH_DELAY_PATH, PortMap, echo_objects
from ppdoctor.lab.scenario import load_scenario

from .gwhelpers import gateway_deployment, get_request, raw_exchange

LABELS = {"istio": "ingressgateway"}
OK = {"status": 200, "body": {"string": "ok"}}


def vs(*http) -> dict:
    return {"kind": "VirtualService", "metadata": {"name": "v", "namespace": "default"},
            "spec": {"gateways": ["gw"], "hosts": ["*"], "http": list(http)}}


def delayed(fixed="2ms", path="/slow", **delay) -> dict:
    if "percentage" not in delay and "percent" not in delay:
        delay["percentage"] = {"value": 100}
    return {"match": [{"uri": {"prefix": path}}], "fault": {"delay": {"fixedDelay": fixed, **delay}}, "directResponse": OK}


def derive(*http):
    return derive_gateway_settings(gateway_deployment(), {}, [], [vs(*http)], LABELS)


def lab_settings():
    objs = echo_objects(load_scenario("healthy"), PortMap(1, 2, 3, 4, 5))
    return derive_gateway_settings(gateway_deployment(), {}, [], [o for o in objs if o["kind"] == "VirtualService"], LABELS)


def hcm(settings, listener="0.0.0.0_8080") -> dict:
    doc = envoycfg.render_listeners(settings, pod_ip="127.1.2.10", traffic_port=1, tls_port=2, tls_cert=("/c", "/k"))
    by_name = {r["name"]: r for r in doc["resources"]}
    return by_name[listener]["filter_chains"][0]["filters"][0]["typed_config"]


# --- translation ---------------------------------------------------------------------------

@pytest.mark.parametrize("text,ns", [
    ("2ms", 2_000_000), ("0.5s", 500_000_000), ("1m30s", 90 * 10**9), ("1h", 3600 * 10**9),
    ("0.002s", 2_000_000), ("1500us", 1_500_000), ("1s500ms", 1_500_000_000),
])
def test_durations_are_read_like_go(text, ns):
    assert parse_duration_ns(text) == ns


@pytest.mark.parametrize("text", ["", "2", "ms", "2 ms", "-2ms", "2days", None, 2])
def test_not_a_duration(text):
    assert parse_duration_ns(text) is None


def test_fixed_delay_with_percentage_is_translated_like_istiod():
    s = derive(delayed("2ms"), delayed("0.5s", "/half", percentage={"value": 50}),
               delayed("1s", "/rare", percentage={"value": 0.1}))
    assert s.warnings == []
    assert [r.delay for r in s.direct_routes] == [
        FaultDelay(2_000_000, 1_000_000, "MILLION"),
        FaultDelay(500_000_000, 500_000, "MILLION"),
        FaultDelay(10**9, 1000, "MILLION"),
    ]
    assert s.direct_routes[0].delay.fixed_delay_s == 0.002
    assert s.direct_routes[1].delay.fraction == 0.5


def test_without_percentage_istiod_delays_no_request():
    # istio/istio#39969: an unset percentage is 0 %, whatever older docs said
    s = derive({"match": [{"uri": {"prefix": "/slow"}}], "fault": {"delay": {"fixedDelay": "2ms"}}, "directResponse": OK})
    assert s.direct_routes[0].delay == FaultDelay(2_000_000, 0, "HUNDRED")
    assert s.direct_routes[0].delay.fraction == 0.0
    assert any("no percentage" in w and "0 %" in w for w in s.warnings)


def test_deprecated_integer_percent():
    s = derive(delayed("3ms", percent=30))
    assert s.direct_routes[0].delay == FaultDelay(3_000_000, 30, "HUNDRED")
    assert s.warnings == []


@pytest.mark.parametrize("delay,expected", [
    ({"fixedDelay": "500us", "percentage": {"value": 100}}, "at least 1ms"),
    ({"fixedDelay": "soon", "percentage": {"value": 100}}, "at least 1ms"),
    ({"fixedDelay": "2ms", "percentage": {"value": 150}}, "0-100"),
    ({"exponentialDelay": "2ms", "percentage": {"value": 100}}, "exponentialDelay"),
])
def test_delays_istio_would_not_apply_are_dropped_with_a_warning(delay, expected):
    s = derive({"match": [{"uri": {"prefix": "/x"}}], "fault": {"delay": delay}, "directResponse": OK})
    assert s.direct_routes == [DirectResponseRoute("/x", 200, "ok")]
    assert any(expected in w for w in s.warnings), s.warnings


def test_abort_and_faults_on_destination_routes_are_not_simulated():
    s = derive(
        {"match": [{"uri": {"prefix": "/a"}}], "fault": {"abort": {"httpStatus": 503, "percentage": {"value": 100}}},
         "directResponse": OK},
        {"fault": {"delay": {"fixedDelay": "1s", "percentage": {"value": 100}}},
         "route": [{"destination": {"host": "echo"}}]},
    )
    assert s.direct_routes == [DirectResponseRoute("/a", 200, "ok")]
    assert any("fault.abort is not simulated" in w for w in s.warnings)
    assert any("fault on a route to a destination" in w for w in s.warnings)


def test_exact_uri_match_keeps_its_kind():
    s = derive({"match": [{"uri": {"exact": "/only"}}, {"uri": {"prefix": "/p"}}, {"uri": {"regex": "/r.*"}}],
                "directResponse": OK})
    assert [(r.match, r.path) for r in s.direct_routes] == [("exact", "/only"), ("prefix", "/p")]
    assert any("not simulated" in w and "regex" in w for w in s.warnings)


def test_matches_on_conditions_the_lab_does_not_evaluate_are_left_out():
    s = derive({"match": [{"headers": {"x-user": {"exact": "a"}}}, {"uri": {"prefix": "/u"}, "method": {"exact": "GET"}},
                          {}, {"name": "named", "uri": {"prefix": "/n"}}],
                "directResponse": OK})
    assert [r.path for r in s.direct_routes] == ["/", "/n"]  # {} matches everything, as in Istio
    assert any("match on headers is not simulated" in w for w in s.warnings)
    assert any("match on method is not simulated" in w for w in s.warnings)


def test_lab_virtual_service_has_the_delayed_route_before_bench():
    s = lab_settings()
    assert s.warnings == []
    first, second = s.direct_routes
    assert (first.path, first.match, first.status, first.body) == (BENCH_DELAY_PATH, "prefix", 200, "ok")
    assert first.delay == FaultDelay(2_000_000, 1_000_000, "MILLION")
    assert (second.path, second.delay) == ("/bench", None)
    # Istio's uri prefix is a string prefix: /bench would also take /bench-delay, so order matters
    assert BENCH_DELAY_PATH.startswith(second.path)


# --- rendering -----------------------------------------------------------------------------

def test_hcm_has_the_fault_filter_before_the_router_on_every_listener():
    for listener in ("0.0.0.0_8080", "0.0.0.0_8443"):
        filters = hcm(derive(), listener)["http_filters"]
        assert filters == [
            {"name": "envoy.filters.http.fault",
             "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"}},
            {"name": "envoy.filters.http.router", "typed_config": {"@type": envoycfg.ROUTER_TYPE}},
        ]


def test_delayed_route_carries_per_filter_config():
    routes = hcm(lab_settings())["route_config"]["virtual_hosts"][0]["routes"]
    assert [r["match"] for r in routes] == [{"prefix": "/bench-delay"}, {"prefix": "/bench"}, {"prefix": "/"}]
    assert routes[0]["direct_response"] == {"status": 200, "body": {"inline_string": "ok"}}
    assert routes[0]["typed_per_filter_config"] == {
        "envoy.filters.http.fault": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
            "delay": {"fixed_delay": "0.002s", "percentage": {"numerator": 1000000, "denominator": "MILLION"}},
        }
    }
    assert "typed_per_filter_config" not in routes[1] and "typed_per_filter_config" not in routes[2]


def test_rendered_durations_and_exact_paths():
    s = derive(delayed("1m30s", "/a"), delayed("1s500ms", "/b", percent=5),
               {"match": [{"uri": {"exact": "/c"}}], "directResponse": OK})
    routes = hcm(s)["route_config"]["virtual_hosts"][0]["routes"]
    delays = [r["typed_per_filter_config"]["envoy.filters.http.fault"]["delay"] for r in routes[:2]]
    assert delays[0]["fixed_delay"] == "90s"
    assert delays[1] == {"fixed_delay": "1.5s", "percentage": {"numerator": 5, "denominator": "HUNDRED"}}
    assert routes[2]["match"] == {"path": "/c"}


def test_as_dict_keeps_direct_responses_and_routes():
    import json

    data = json.loads(json.dumps(lab_settings().as_dict()))
    assert data["direct_responses"] == [["/bench-delay", 200, "ok"], ["/bench", 200, "ok"]]
    assert data["direct_routes"][0]["delay"] == {"fixed_delay_ns": 2000000, "numerator": 1000000, "denominator": "MILLION"}


# --- real Envoy ----------------------------------------------------------------------------

@pytest.mark.interop
@pytest.mark.asyncio(loop_scope="module")
async def test_envoy_holds_the_delayed_route_and_answers_the_others_at_once(gateways, echo_pod):
    gw = await gateways(lab_settings(), name="gw-fault-delay")
    assert gw.last_update.ok and not gw.last_update.rejected
    before = echo_pod.requests
    times = []
    for _ in range(5):
        r = await raw_exchange(gw.ports.traffic, get_request(BENCH_DELAY_PATH), until_response=True)
        assert (r.status, r.body) == (200, b"ok")
        times.append(r.first_byte_s)
    # lower bound only: Envoy may be late (its timers follow the kernel's coarse clock), never early here
    assert sorted(times)[2] >= 0.0019, times
    fast = await raw_exchange(gw.ports.traffic, get_request("/bench"), until_response=True)
    assert (fast.status, fast.body) == (200, b"ok")
    assert echo_pod.requests == before  # both answered by Envoy itself
    assert (await raw_exchange(gw.ports.traffic, get_request("/get"), until_response=True)).status == 200
    status, stats = await gw.admin_get("/stats?filter=fault.delays_injected")
    assert status == 200 and "http.outbound_0.0.0.0_8080.fault.delays_injected: 5" in stats


@pytest.mark.interop
@pytest.mark.asyncio(loop_scope="module")
async def test_half_of_the_requests_are_delayed_at_50_percent(gateways):
    gw = await gateways(derive(delayed("50ms", "/half", percentage={"value": 50})), name="gw-fault-half")
    times = []
    for _ in range(40):
        r = await raw_exchange(gw.ports.traffic, get_request("/half"), until_response=True)
        assert r.status == 200
        times.append(r.first_byte_s)
    slow = sum(1 for t in times if t >= 0.045)
    assert 5 <= slow <= 35, times  # binomial(40, 0.5): outside this range ~1 in 10^5
