"""The load generator of one process: an open-loop, constant-arrival-rate HTTP/1.1 client on asyncio.

Open loop. Request ``j`` of a run is *scheduled* at ``t0 + j/R`` whatever happened to the
requests before it. Its latency is measured from that scheduled instant to the last byte of
its response, so time a request spends waiting for a free connection, or because this
process fell behind, is part of its latency (no coordinated omission). With ``W`` worker
processes, worker ``k`` owns requests ``k, k+W, k+2W, …``: together they produce exactly
the single-process schedule.

Sending. A due request goes to an idle keep-alive connection; if there is none it opens a
connection (up to ``connections``) or waits in a FIFO backlog for the next connection to
free up. A send that leaves more than ``late_threshold`` (1 ms) after its scheduled time is
counted *late*; a request that waited longer than the response timeout without being sent,
or is still waiting when the run ends, is *unsent*. Both are reported, never hidden.
In ``new-connection`` mode every request gets its own TCP connection; the "send" is the
start of the connect, and the latency includes the handshake.

PROXY protocol: with ``send_pp`` each connection's first write is prefixed with a PPv2
header whose source is a TEST-NET-3 address (203.0.113.1-254, RFC 5737) and the
connection's real source port, destination the target's address, like an NLB would.

Max mode (``rate=None``): a closed loop, like wrk: every connection sends its next request
as soon as the previous one completed. Latency is then measured from the actual send.

Timing uses ``time.monotonic_ns()`` and a timerfd (:mod:`.timer`) for sub-ms wake-ups.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from ..proxyproto import proxy_v2
from . import wire
from .histogram import DEFAULT_MAX_EXACT, LatencyRecorder, percentile_sorted
from .timer import PreciseTimer

KEEPALIVE = "keepalive"
NEW_CONNECTION = "new-connection"
MODES = (KEEPALIVE, NEW_CONNECTION)

TEST_NET_PREFIX = "203.0.113."
TEST_NET_V6_PREFIX = "2001:db8::"
SWEEP_S = 0.025
PROGRESS_S = 0.5
STOP_GRACE_NS = 500_000_000

_mono = time.monotonic_ns


@dataclass(frozen=True)
class Target:
    """Where one side of a bench sends its requests."""

    host: str
    port: int
    source: str | None = None  # bind to this local address (the lab's "internet" client for the NLB)
    send_pp: bool = False
    host_header: str = ""
    label: str = ""
    kind: str = "gateway"  # gateway | nlb | custom

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class WorkerPlan:
    target: Target
    path: str = "/bench"
    rate: float | None = 100.0  # total over all workers; None = max (closed loop)
    duration_s: float = 10.0
    connections: int = 16  # this worker's
    mode: str = KEEPALIVE
    worker_index: int = 0
    worker_count: int = 1
    connect_timeout_s: float = 3.0
    response_timeout_s: float = 5.0
    late_threshold_ns: int = 1_000_000
    keep_bodies: int = 0
    max_exact: int = DEFAULT_MAX_EXACT
    precise_timer: bool = True
    warmup: bool = True  # keep-alive: open the connections before t0
    realtime: bool = False  # worker processes ask for SCHED_FIFO (opt-in, fixed-rate runs only)


@dataclass
class WorkerResult:
    worker_index: int
    latency: LatencyRecorder  # from each request's scheduled time (what the report shows)
    outcomes: dict[str, int]
    statuses: dict[int, int]
    service: LatencyRecorder | None = None  # from the moment it was actually written (diagnostics)
    scheduled: int = 0
    sent: int = 0
    late: int = 0
    lag_max_ns: int = 0
    lag_sum_ns: int = 0
    unsent: int = 0
    abandoned: int = 0
    connections_opened: int = 0
    warmup_errors: dict[str, int] = field(default_factory=dict)
    t0_ns: int = 0
    end_ns: int = 0  # when the schedule ended (or the stop came)
    done_ns: int = 0  # when the last response was in
    interrupted: bool = False
    timer_precise: bool = True
    realtime: str = ""  # "" not asked; "SCHED_FIFO" granted; else why not
    bodies: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def completed(self) -> int:
        return sum(self.outcomes.values())


@dataclass(frozen=True)
class Progress:
    """A snapshot during a run (per worker; :mod:`.runner` sums them)."""

    worker_index: int
    elapsed_s: float
    scheduled: int
    sent: int
    completed: int
    ok: int
    errors: int
    late: int
    unsent: int
    window_p50_ms: float | None
    window_p99_ms: float | None


def _pp_source(index: int, dst_host: str) -> str:
    n = index % 254 + 1
    if ":" in dst_host:
        return f"{TEST_NET_V6_PREFIX}{n:x}"
    return f"{TEST_NET_PREFIX}{n}"


class _Conn(asyncio.Protocol):
    __slots__ = ("eng", "cid", "transport", "parser", "sched", "sent_ns", "connect_ns", "connecting",
                 "fresh", "retired", "task", "failed")

    def __init__(self, eng: "Engine", cid: int) -> None:
        self.eng = eng
        self.cid = cid
        self.transport: asyncio.Transport | None = None
        self.parser = wire.ResponseParser()
        self.sched = -1  # scheduled time of the request this connection carries, -1 = none
        self.sent_ns = 0
        self.connect_ns = 0
        self.connecting = True
        self.fresh = True  # nothing written yet: the PROXY header goes first
        self.retired = False
        self.failed = False
        self.task: asyncio.Task | None = None

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.connecting = False
        self.eng._connected(self)

    def data_received(self, data: bytes) -> None:
        if self.sched < 0:  # bytes nobody asked for: not HTTP/1.1 as we speak it
            if not self.failed:
                self.failed = True
                if self.transport is not None:
                    self.transport.abort()
            return
        try:
            done = self.parser.feed(data)
        except wire.ProtocolError:
            self.eng._fail(self, wire.PROTOCOL_ERROR)
            return
        if done:
            self.eng._complete(self)

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost(None) follows

    def connection_lost(self, exc: Exception | None) -> None:
        eng = self.eng
        if self.sched >= 0 and not self.failed:
            if exc is None and self.parser.eof():
                eng._complete(self)
            else:
                eng._fail(self, wire.classify_exception(exc, connecting=False, got_bytes=self.parser.started))
        self.transport = None
        eng._closed(self)


class Engine:
    """Runs one :class:`WorkerPlan` on the current event loop."""

    def __init__(
        self,
        plan: WorkerPlan,
        *,
        should_stop: Callable[[], bool] | None = None,
        progress: Callable[[Progress], None] | None = None,
    ) -> None:
        if plan.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if plan.connections < 1:
            raise ValueError("connections must be ≥ 1")
        self.plan = plan
        self.target = plan.target
        self.should_stop = should_stop
        self.progress_cb = progress
        self.keepalive = plan.mode == KEEPALIVE
        self.max_mode = plan.rate is None
        self.request = wire.build_request(plan.path, plan.target.host_header or plan.target.host,
                                          close=not self.keepalive)
        self.result = WorkerResult(
            worker_index=plan.worker_index,
            latency=LatencyRecorder(max_exact=plan.max_exact),
            outcomes={c: 0 for c in wire.CLASSES},
            statuses={},
            service=LatencyRecorder(max_exact=plan.max_exact),
        )
        self.idle: deque[_Conn] = deque()
        self.backlog: deque[int] = deque()
        self.inflight: set[_Conn] = set()
        self.conns: set[_Conn] = set()
        self.open = 0
        self._cid = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.timer: PreciseTimer | None = None
        self.sched_done = False
        self.stopping = False
        self._stop_ns = 0
        self._done: asyncio.Future[None] | None = None
        self._finishing = False
        self._sweeper: asyncio.TimerHandle | None = None
        self._next_progress = 0
        self._progress_mark = 0
        # schedule
        self.t0 = 0
        self.end_ns = 0
        self.j = plan.worker_index
        self.next_sched = 0
        if plan.rate is not None:
            if plan.rate <= 0:
                raise ValueError("rate must be > 0")
            self.period = 1e9 / plan.rate
            self.n_total = int(round(plan.rate * plan.duration_s))
        else:
            self.period = 0.0
            self.n_total = 0

    # --- lifecycle ---------------------------------------------------------------------------
    async def prepare(self) -> None:
        """Open the keep-alive connections before the clock starts (like wrk)."""
        self.loop = asyncio.get_running_loop()
        if not (self.keepalive and self.plan.warmup):
            return
        for _ in range(self.plan.connections):
            self._open_conn(-1)
        deadline = _mono() + int(self.plan.connect_timeout_s * 1e9)
        while any(c.connecting for c in self.conns) and _mono() < deadline:
            await asyncio.sleep(0.005)
        for c in list(self.conns):
            if c.connecting and c.task is not None:
                c.task.cancel()
        await asyncio.sleep(0)

    async def run(self, t0_ns: int) -> WorkerResult:
        loop = self.loop = self.loop or asyncio.get_running_loop()
        plan = self.plan
        res = self.result
        self.t0 = res.t0_ns = t0_ns
        self.end_ns = t0_ns + int(plan.duration_s * 1e9)
        self._done = loop.create_future()
        self.timer = PreciseTimer(loop, self._tick, precise=plan.precise_timer)
        res.timer_precise = self.timer.precise
        self._next_progress = t0_ns + int(PROGRESS_S * 1e9)
        gc.collect()
        gc.freeze()  # what exists now is never scanned again: collections stay short
        try:
            if self.max_mode:
                self.timer.arm_at(t0_ns)  # start all connections at t0
                loop.call_at(self.end_ns / 1e9, self._end_schedule)
            elif self.n_total <= self.j:
                self._end_schedule()
            else:
                self.next_sched = t0_ns + int(self.j * self.period)
                self.timer.arm_at(self.next_sched)
            self._sweeper = loop.call_later(SWEEP_S, self._sweep)
            await self._done
        finally:
            self.timer.close()
            if self._sweeper is not None:
                self._sweeper.cancel()
            for c in list(self.conns):
                if c.transport is not None:
                    c.transport.abort()
            await asyncio.sleep(0)
            gc.unfreeze()
        return res

    # --- the schedule ------------------------------------------------------------------------
    def _tick(self) -> None:
        if self.max_mode:
            if not self.sched_done:
                now = _mono()
                for _ in range(self.plan.connections):
                    self.result.scheduled += 1
                    self._dispatch(now)
            return
        now = _mono()
        while not self.sched_done:
            s = self.next_sched
            if s > now:
                self.timer.arm_at(s)  # type: ignore[union-attr]
                return
            self.result.scheduled += 1
            self._dispatch(s)
            self.j += self.plan.worker_count
            if self.j >= self.n_total:
                self._end_schedule()
                return
            self.next_sched = self.t0 + int(self.j * self.period)
            now = _mono()

    def _end_schedule(self) -> None:
        if self.sched_done:
            return
        self.sched_done = True
        self.result.end_ns = _mono()
        if self.timer is not None:
            self.timer.disarm()
        self._maybe_done()

    def _dispatch(self, sched: int) -> None:
        if self.keepalive and self.idle:
            self._send(self.idle.popleft(), sched)
        elif self.open < self.plan.connections:
            self._open_conn(sched)
        else:
            self.backlog.append(sched)

    # --- connections -------------------------------------------------------------------------
    def _open_conn(self, sched: int) -> None:
        conn = _Conn(self, self._cid)
        self._cid += 1
        self.open += 1
        self.conns.add(conn)
        self.result.connections_opened += 1
        conn.connect_ns = _mono()
        if sched >= 0:
            conn.sched = sched
            self.inflight.add(conn)
            if not self.keepalive:
                self._count_send(sched, conn.connect_ns)
        conn.task = self.loop.create_task(self._connect(conn))  # type: ignore[union-attr]

    async def _connect(self, conn: _Conn) -> None:
        t = self.target
        try:
            await self.loop.create_connection(  # type: ignore[union-attr]
                lambda: conn, t.host, t.port, local_addr=(t.source, 0) if t.source else None
            )
        except asyncio.CancelledError:
            self._connect_failed(conn, wire.TIMEOUT_CONNECT)
        except OSError as exc:
            self._connect_failed(conn, wire.classify_exception(exc, connecting=True, got_bytes=False))
        finally:
            conn.task = None

    def _connect_failed(self, conn: _Conn, cls: str) -> None:
        if conn.sched >= 0:
            self._fail(conn, cls)
        else:
            w = self.result.warmup_errors
            w[cls] = w.get(cls, 0) + 1
        self._closed(conn)

    def _connected(self, conn: _Conn) -> None:
        if self.stopping and conn.sched < 0:
            conn.transport.abort()  # type: ignore[union-attr]
            return
        if conn.sched >= 0:
            if self.keepalive:
                self._send(conn, conn.sched)
            else:
                self._write(conn)
        else:
            self._idle(conn)

    def _count_send(self, sched: int, now: int) -> None:
        res = self.result
        res.sent += 1
        if not self.max_mode:
            lag = now - sched
            if lag > 0:
                res.lag_sum_ns += lag
                if lag > res.lag_max_ns:
                    res.lag_max_ns = lag
                if lag > self.plan.late_threshold_ns:
                    res.late += 1

    def _send(self, conn: _Conn, sched: int) -> None:
        now = _mono()
        conn.sched = sched
        self.inflight.add(conn)
        self._count_send(sched, now)
        self._write(conn, now)

    def _write(self, conn: _Conn, now: int = 0) -> None:
        conn.sent_ns = now or _mono()
        if len(self.result.bodies) < self.plan.keep_bodies:
            conn.parser.keep_body = True
        if conn.fresh:
            conn.fresh = False
            if self.target.send_pp:
                conn.transport.write(self._pp_header(conn) + self.request)  # type: ignore[union-attr]
                return
        conn.transport.write(self.request)  # type: ignore[union-attr]

    def _pp_header(self, conn: _Conn) -> bytes:
        tr = conn.transport
        local = tr.get_extra_info("sockname")  # type: ignore[union-attr]
        peer = tr.get_extra_info("peername")  # type: ignore[union-attr]
        dst_host = peer[0] if peer else self.target.host
        sport = local[1] if local else 0
        src = _pp_source(conn.cid * self.plan.worker_count + self.plan.worker_index, dst_host)
        return proxy_v2((src, sport), (dst_host, peer[1] if peer else self.target.port))

    def _idle(self, conn: _Conn) -> None:
        if self.backlog and not self.stopping:
            self._send(conn, self.backlog.popleft())
        else:
            self.idle.append(conn)
            self._maybe_done()

    # --- outcomes ----------------------------------------------------------------------------
    def _complete(self, conn: _Conn) -> None:
        now = _mono()
        res = self.result
        parser = conn.parser
        status = parser.status
        res.latency.record(now - (conn.sent_ns if self.max_mode else conn.sched))
        res.service.record(now - conn.sent_ns)  # type: ignore[union-attr]
        cls = wire.status_class(status)
        res.outcomes[cls] += 1
        res.statuses[status] = res.statuses.get(status, 0) + 1
        res.done_ns = now
        if parser.keep_body:
            if len(res.bodies) < self.plan.keep_bodies:
                res.bodies.append((status, bytes(parser.body[:4096])))
            parser.keep_body = False
        conn.sched = -1
        self.inflight.discard(conn)
        reuse = self.keepalive and parser.keep_alive and not parser.buf and conn.transport is not None
        parser.reset()
        if self.max_mode and not self.sched_done:
            res.scheduled += 1
            self._dispatch(_mono())
        if reuse and not self.stopping:
            self._idle(conn)
        else:
            self._retire(conn)
            if conn.transport is not None:
                conn.transport.close()
            self._after_free()

    def _fail(self, conn: _Conn, cls: str) -> None:
        if conn.failed or conn.sched < 0:
            return
        conn.failed = True
        res = self.result
        res.outcomes[cls] += 1
        res.done_ns = _mono()
        conn.sched = -1
        self.inflight.discard(conn)
        if conn.transport is not None:
            conn.transport.abort()
        self._retire(conn)
        if self.max_mode and not self.sched_done:
            res.scheduled += 1
            self._dispatch(_mono())
        self._after_free()

    def _retire(self, conn: _Conn) -> None:
        if not conn.retired:
            conn.retired = True
            self.open -= 1

    def _closed(self, conn: _Conn) -> None:
        self.conns.discard(conn)
        if conn.sched >= 0:  # closed while carrying a request that was not classified yet
            self._fail(conn, wire.EMPTY_REPLY)
        if not conn.retired:
            self._retire(conn)
            try:
                self.idle.remove(conn)  # the server closed an idle keep-alive connection
            except ValueError:
                pass
            self._after_free()
        self._maybe_done()

    def _after_free(self) -> None:
        """A connection slot is free: serve the backlog with a new connection if there is one waiting."""
        while self.backlog and not self.stopping and self.open < self.plan.connections:
            if self.keepalive and self.idle:
                self._send(self.idle.popleft(), self.backlog.popleft())
            else:
                self._open_conn(self.backlog.popleft())
        self._maybe_done()

    # --- housekeeping ------------------------------------------------------------------------
    def _sweep(self) -> None:
        loop = self.loop
        now = _mono()
        plan = self.plan
        if not self.stopping and self.should_stop is not None and self.should_stop():
            self.stop()
        connect_to = int(plan.connect_timeout_s * 1e9)
        response_to = int(plan.response_timeout_s * 1e9)
        for conn in list(self.inflight):
            if conn.connecting:
                if now - conn.connect_ns > connect_to and conn.task is not None:
                    conn.task.cancel()
            elif now - conn.sent_ns > response_to:
                self._fail(conn, wire.TIMEOUT_RESPONSE)
        # Requests that waited longer than a response timeout to be sent are dropped: counted unsent.
        backlog = self.backlog
        while backlog and now - backlog[0] > response_to:
            backlog.popleft()
            self.result.unsent += 1
        if self.stopping and now - self._stop_ns > STOP_GRACE_NS:
            self._finish()
            return
        if self.sched_done and not self.stopping:
            if now - self.result.end_ns > connect_to + response_to + 100_000_000:
                self._finish()
                return
        if self.progress_cb is not None and now >= self._next_progress:
            self._next_progress = now + int(PROGRESS_S * 1e9)
            self.progress_cb(self.snapshot(now))
        self._maybe_done()
        if self._done is not None and not self._done.done():
            self._sweeper = loop.call_later(SWEEP_S, self._sweep)  # type: ignore[union-attr]

    def snapshot(self, now: int | None = None) -> Progress:
        now = now or _mono()
        res = self.result
        p50 = p99 = None
        lat = res.latency
        if lat.samples is not None and len(lat.samples) > self._progress_mark:
            window = sorted(lat.samples[self._progress_mark:])
            self._progress_mark = len(lat.samples)
            p50 = percentile_sorted(window, 50) / 1e6
            p99 = percentile_sorted(window, 99) / 1e6
        completed = res.completed
        return Progress(
            worker_index=res.worker_index, elapsed_s=max(0, now - self.t0) / 1e9, scheduled=res.scheduled,
            sent=res.sent, completed=completed, ok=res.outcomes[wire.OK], errors=completed - res.outcomes[wire.OK],
            late=res.late, unsent=res.unsent + len(self.backlog), window_p50_ms=p50, window_p99_ms=p99,
        )

    def stop(self) -> None:
        """Interrupted: stop scheduling now, give in-flight requests a short grace, then finish."""
        if self.stopping:
            return
        self.stopping = True
        self._stop_ns = _mono()
        self.result.interrupted = True
        self.result.abandoned += len(self.backlog)
        self.backlog.clear()
        self._end_schedule()

    def _maybe_done(self) -> None:
        if self.sched_done and not self.inflight and (not self.backlog or self.stopping):
            self._finish()

    def _finish(self) -> None:
        if self._done is None or self._done.done() or self._finishing:
            return
        self._finishing = True
        res = self.result
        res.unsent += len(self.backlog)
        self.backlog.clear()
        for conn in list(self.inflight):
            if self.stopping:
                res.abandoned += 1
                conn.failed = True
                conn.sched = -1
            else:
                self._fail(conn, wire.TIMEOUT_CONNECT if conn.connecting else wire.TIMEOUT_RESPONSE)
        self.inflight.clear()
        if not res.end_ns:
            res.end_ns = _mono()
        for conn in list(self.conns):
            if conn.task is not None:
                conn.task.cancel()
        if self.progress_cb is not None:
            # the numbers as the run ended: a run shorter than the report interval (or a starved loop) still
            # reports once, and the last line shown is the final one
            self.progress_cb(self.snapshot(res.end_ns))
        self._done.set_result(None)


def summarize_lag(result: WorkerResult) -> dict[str, Any]:
    return {
        "late": result.late,
        "lag_max_ms": result.lag_max_ns / 1e6,
        "lag_mean_ms": (result.lag_sum_ns / result.sent / 1e6) if result.sent else 0.0,
    }
