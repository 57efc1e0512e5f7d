"""The bench against local asyncio servers: rates honoured, PROXY headers delivered, failures classified.

Functional, not timing: tolerances are wide and nothing here asserts a latency.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from ppdoctor.bench import KEEPALIVE, NEW_CONNECTION, BenchSpec, Side, Target, run_bench, wire
from ppdoctor.bench.runner import auto_workers
from ppdoctor.echo.server import start_echo

from .servers import BehaviourServer, closed_port, full_backlog_listener

pytestmark = pytest.mark.timeout(60)

HOST = "127.0.0.1"


def spec_for(port: int, *, rate: float | None = 200.0, duration: float = 2.0, connections: int = 8,
             mode: str = KEEPALIVE, workers: int | None = 1, send_pp: bool = False, name: str = "off",
             response_timeout: float = 5.0, connect_timeout: float = 3.0, keep_bodies: int = 0,
             preflight: bool = False) -> BenchSpec:
    target = Target(HOST, port, send_pp=send_pp, host_header="bench.test", kind="custom")
    return BenchSpec(sides=(Side(name, target, "test"),), rates=(rate,), duration_s=duration, connections=connections,
                     mode=mode, path="/bench", workers=workers, response_timeout_s=response_timeout,
                     connect_timeout_s=connect_timeout, keep_bodies=keep_bodies, preflight=preflight)


@pytest.fixture
async def ok_server():
    server = await BehaviourServer("ok").start(HOST)
    yield server
    await server.stop()


def _span_s(arrivals: list[int]) -> float:
    return (max(arrivals) - min(arrivals)) / 1e9


@pytest.mark.parametrize("workers", [1, 2])
async def test_rate_is_honoured_at_200_rps(ok_server, workers):
    result = await run_bench(spec_for(ok_server.port, workers=workers))
    (run,) = result.runs
    assert run.workers == workers
    assert run.scheduled == 400 and run.sent == 400 and run.unsent == 0
    assert run.outcomes[wire.OK] == 400 and run.errors == 0
    assert 196 <= run.achieved_rps <= 204
    # what the server saw: 400 requests spread over the 2 s, not bunched
    arrivals = sorted(ok_server.arrivals)
    assert len(arrivals) == 400
    assert 1.9 <= _span_s(arrivals) <= 2.2
    first_half = sum(1 for t in arrivals if t < arrivals[0] + 1_000_000_000)
    assert 180 <= first_half <= 220
    assert run.latency.count == 400 and run.latency.exact
    assert run.held is not None


async def test_new_connection_mode_opens_one_connection_per_request(ok_server):
    result = await run_bench(spec_for(ok_server.port, rate=100.0, duration=1.0, mode=NEW_CONNECTION))
    (run,) = result.runs
    assert run.outcomes[wire.OK] == 100 and run.connections_opened == 100
    assert ok_server.connections == 100


async def test_in_process_mode_and_progress_callback(ok_server):
    seen = []
    result = await run_bench(spec_for(ok_server.port, rate=300.0, duration=1.5, workers=0), progress=seen.append)
    (run,) = result.runs
    assert run.outcomes[wire.OK] == 450
    assert seen and seen[-1].sent > 0 and seen[-1].side == "off" and seen[-1].run_count == 1


async def test_max_mode_is_closed_loop(ok_server):
    result = await run_bench(spec_for(ok_server.port, rate=None, duration=1.0, connections=4))
    (run,) = result.runs
    assert run.rate is None and run.held is None
    assert run.outcomes[wire.OK] > 100 and run.errors == 0
    assert run.unsent == 0 and run.late == 0


async def test_stop_returns_what_was_measured(ok_server):
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def progress(p) -> None:  # stop 1 s after the first report of requests sent: the worker process has started
        if p.sent > 0 and not getattr(progress, "armed", False):
            progress.armed = True  # type: ignore[attr-defined]
            loop.call_soon_threadsafe(loop.call_later, 1.0, stop.set)

    result = await run_bench(spec_for(ok_server.port, rate=200.0, duration=20.0), stop=stop, progress=progress)
    (run,) = result.runs
    assert result.interrupted and run.interrupted
    # stopped long before its 20 s, after it had measured for a while (a loaded machine starts the worker late)
    assert 0.2 <= run.elapsed_s < 15.0
    # what was measured is kept, and it is what the schedule asked for until the stop
    assert abs(run.outcomes[wire.OK] - 200 * run.elapsed_s) <= 40


@pytest.mark.parametrize("workers", [0, 1])
async def test_pp_headers_reach_the_echo_with_a_test_net_source(workers):
    echo = await start_echo(HOST, 0, "ppdoctor", proxy_protocol="optional")
    port = echo.port
    try:
        on = spec_for(echo.port, rate=50.0, duration=0.5, connections=2, send_pp=True, name="on",
                      workers=workers, keep_bodies=5)
        off = spec_for(echo.port, rate=50.0, duration=0.5, connections=2, send_pp=False, name="off",
                       workers=workers, keep_bodies=5)
        res_on = (await run_bench(on)).runs[0]
        res_off = (await run_bench(off)).runs[0]
    finally:
        await echo.stop()
    assert res_on.outcomes[wire.OK] == 25 and res_off.outcomes[wire.OK] == 25
    bodies_on = [json.loads(b) for _, b in res_on.bodies]
    assert len(bodies_on) == 5
    for b in bodies_on:
        assert b["proxy_header"]["src"]["address"].startswith("203.0.113.")
        assert b["proxy_header"]["command"] == "PROXY" and b["client_ip_source"] == "proxy-protocol"
        assert b["proxy_header"]["dst"] == {"address": HOST, "port": port}
        assert b["proxy_header"]["src"]["port"] == b["peer"]["port"]  # the connection's real source port
    for _, raw in res_off.bodies:
        assert json.loads(raw)["proxy_header"] is None


async def test_preflight_skips_a_side_the_listener_refuses():
    echo = await start_echo(HOST, 0, "ppdoctor", proxy_protocol="required")
    try:
        target_off = Target(HOST, echo.port, send_pp=False, kind="gateway")
        target_on = Target(HOST, echo.port, send_pp=True, kind="gateway")
        spec = BenchSpec(sides=(Side("off", target_off), Side("on", target_on)), rates=(50.0,), duration_s=0.4,
                         connections=2, workers=0)
        result = await run_bench(spec)
    finally:
        await echo.stop()
    off, on = result.runs
    assert off.skipped.startswith("skipped:") and "requires PROXY protocol" in off.skipped
    assert result.preflight["off"].outcome != wire.OK
    assert not on.skipped and on.outcomes[wire.OK] == 20


@pytest.mark.parametrize(("behaviour", "expected"), [
    ("500", wire.HTTP_5XX),
    ("404", wire.HTTP_4XX),
    ("reset", wire.RESET),
    ("close", wire.EMPTY_REPLY),
    ("hang", wire.TIMEOUT_RESPONSE),
    ("garbage", wire.PROTOCOL_ERROR),
    ("chunked", wire.OK),
])
async def test_failures_are_classified(behaviour, expected):
    server = await BehaviourServer(behaviour).start(HOST)
    try:
        spec = spec_for(server.port, rate=20.0, duration=0.5, connections=16, response_timeout=0.5, workers=0)
        (run,) = (await run_bench(spec)).runs
    finally:
        await server.stop()
    assert run.outcomes[expected] == 10, run.outcomes
    assert sum(run.outcomes.values()) == 10


async def test_refused_and_connect_timeout_are_classified():
    spec = spec_for(closed_port(HOST), rate=20.0, duration=0.5, workers=0)
    (run,) = (await run_bench(spec)).runs
    assert run.outcomes[wire.REFUSED] == 10 and sum(run.outcomes.values()) == 10
    listener, fillers = full_backlog_listener(HOST)
    try:
        spec = spec_for(listener.getsockname()[1], rate=10.0, duration=0.3, connections=8, workers=0,
                        connect_timeout=0.5, mode=NEW_CONNECTION)
        (run,) = (await run_bench(spec)).runs
    finally:
        for s in fillers:
            s.close()
        listener.close()
    assert run.outcomes[wire.TIMEOUT_CONNECT] == 3, run.outcomes


async def test_not_enough_connections_is_reported_not_hidden():
    """1 connection to a server that takes 0.5 s per answer cannot carry 20 RPS: late and unsent sends show it."""
    server = await BehaviourServer("hang").start(HOST)
    try:
        spec = spec_for(server.port, rate=20.0, duration=1.0, connections=1, response_timeout=0.3, workers=0)
        (run,) = (await run_bench(spec)).runs
    finally:
        await server.stop()
    assert run.scheduled == 20
    assert run.unsent > 0 and run.late > 0 and run.held is False
    assert run.outcomes[wire.TIMEOUT_RESPONSE] + run.unsent == 20
    assert any("could not hold" in n for n in run.notes())


def test_auto_workers():
    local = Target("127.0.0.1", 1)
    remote = Target("10.0.0.1", 1)
    assert auto_workers(200.0, KEEPALIVE, local, cpus=2) == 1
    assert auto_workers(4000.0, KEEPALIVE, remote, cpus=2) == 1
    assert auto_workers(12000.0, KEEPALIVE, remote, cpus=2) == 2
    assert auto_workers(12000.0, KEEPALIVE, local, cpus=2) == 1  # the server keeps a CPU
    assert auto_workers(12000.0, KEEPALIVE, local, cpus=4) == 2
    assert auto_workers(4000.0, NEW_CONNECTION, remote, cpus=2) == 2
    assert auto_workers(None, KEEPALIVE, local, cpus=2) == 1
    assert auto_workers(None, KEEPALIVE, remote, cpus=2) == 2


async def test_realtime_is_asked_for_and_reported(ok_server):
    spec = spec_for(ok_server.port, rate=100.0, duration=0.5)
    spec = BenchSpec(**{**spec.__dict__, "realtime": True})
    (run,) = (await run_bench(spec)).runs
    assert run.outcomes[wire.OK] == 50
    assert run.realtime == "SCHED_FIFO" or run.realtime.startswith("not granted")
