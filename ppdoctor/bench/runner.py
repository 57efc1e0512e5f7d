"""Runs a bench: sides × rates, each run split over worker processes, results merged.

``run_bench`` is the API the CLI and the TUI call. Each (rate, side) run starts ``W``
worker processes (``spawn``: nothing of the caller's threads or event loop is inherited),
each opens its share of the connections, reports ready, and all start on one shared
``t0`` on ``CLOCK_MONOTONIC`` (the same clock in every process on Linux). Worker ``k``
sends requests ``k, k+W, …`` of the schedule, so the merged stream is the exact
single-process schedule at the full rate. Workers stream progress snapshots every 0.5 s
and send their latency samples at the end; merging concatenates the exact samples (or
adds histogram buckets past the memory bound).

The caller's process only waits on pipes while a run is going, so its own event loop (a
TUI's, say) neither slows the load nor is slowed by it. ``stop`` (an ``asyncio.Event``;
the CLI sets it on Ctrl-C) ends the current run early: workers stop scheduling, give
in-flight requests 0.5 s, and return what they measured; later runs are skipped.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

from ..errors import PPDoctorError
from . import wire
from .engine import KEEPALIVE, MODES, NEW_CONNECTION, Engine, Progress, Target, WorkerPlan, WorkerResult
from .histogram import CURVE_PERCENTILES, LatencyRecorder, LatencySummary

# What one worker process holds comfortably (measured on the 2-vCPU lab machine, docs/bench.md):
# keep-alive ~30 % of a core at 4000 RPS; new-connection pays a handshake per request.
PER_WORKER_RPS = {KEEPALIVE: 8000.0, NEW_CONNECTION: 2500.0}
READY_TIMEOUT_S = 30.0
JOIN_TIMEOUT_S = 10.0
START_DELAY_NS = 100_000_000  # t0 = "go" + 100 ms, so every worker is waiting when it comes
PAUSE_BETWEEN_RUNS_S = 0.5


class BenchError(PPDoctorError):
    kind = "bench"


@dataclass(frozen=True)
class Side:
    """One column of the report: "off" (no PROXY header) or "on" (PPv2 per connection), or a label."""

    name: str
    target: Target
    source: str = ""  # where the target came from (config path)


@dataclass(frozen=True)
class BenchSpec:
    sides: tuple[Side, ...]
    rates: tuple[float | None, ...]  # None = max throughput (closed loop)
    duration_s: float = 10.0
    connections: int = 32
    mode: str = KEEPALIVE
    path: str = "/bench"
    workers: int | None = None  # None = auto; 0 = in this process (tests, debugging)
    connect_timeout_s: float = 3.0
    response_timeout_s: float = 5.0
    late_threshold_ms: float = 1.0
    preflight: bool = True
    keep_bodies: int = 0
    realtime: bool = False  # SCHED_FIFO workers for fixed-rate runs (docs/bench.md, "Late sends")

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise BenchError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.duration_s <= 0:
            raise BenchError("duration must be > 0 seconds")
        if self.connections < 1:
            raise BenchError("connections must be ≥ 1")
        for r in self.rates:
            if r is not None and r <= 0:
                raise BenchError(f"rate {r} must be > 0")


@dataclass
class RunResult:
    side: str
    target: Target
    rate: float | None
    mode: str
    connections: int
    workers: int
    duration_s: float
    elapsed_s: float
    latency: LatencySummary  # from each request's scheduled send time
    outcomes: dict[str, int]
    statuses: dict[int, int]
    scheduled: int
    sent: int
    late: int
    lag_max_ms: float
    lag_mean_ms: float
    unsent: int
    abandoned: int
    connections_opened: int
    interrupted: bool
    timer_precise: bool
    warmup_errors: dict[str, int] = field(default_factory=dict)
    bodies: list[tuple[int, bytes]] = field(default_factory=list)
    skipped: str = ""  # why the run did not happen (preflight failed)
    service: LatencySummary | None = None  # from the actual write: latency minus the client's own send lag
    realtime: str = ""

    @property
    def responses(self) -> int:
        return self.outcomes.get(wire.OK, 0) + self.outcomes.get(wire.HTTP_4XX, 0) + self.outcomes.get(wire.HTTP_5XX, 0)

    @property
    def errors(self) -> int:
        return sum(v for k, v in self.outcomes.items() if k != wire.OK)

    @property
    def achieved_rps(self) -> float:
        """Complete HTTP responses (any status) per second of the run window, as wrk counts them."""
        return self.responses / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def late_pct(self) -> float:
        return 100.0 * self.late / self.sent if self.sent else 0.0

    @property
    def held(self) -> bool | None:
        """The schedule was kept: < 1 % sends late, none unsent (None for max-throughput runs)."""
        if self.rate is None or self.skipped:
            return None
        return self.late_pct < 1.0 and self.unsent == 0

    def notes(self) -> list[str]:
        out: list[str] = []
        if self.skipped:
            return [self.skipped]
        if self.rate is not None:
            if self.unsent:
                out.append(f"could not hold {self.rate:g} RPS: {self.unsent} requests never sent "
                           f"({100 * self.unsent / max(self.scheduled, 1):.1f} % of the schedule)")
            if self.late_pct >= 1.0:
                out.append(f"could not hold {self.rate:g} RPS on time: {self.late} sends ({self.late_pct:.1f} %) "
                           f"left > 1 ms after their schedule (worst {self.lag_max_ms:.1f} ms)")
        if self.warmup_errors:
            out.append("warm-up connections failed: " + ", ".join(f"{k} {v}" for k, v in self.warmup_errors.items()))
        if self.interrupted:
            out.append(f"interrupted after {self.elapsed_s:.1f} s; {self.abandoned} requests abandoned in flight or queued")
        if self.realtime and self.realtime != "SCHED_FIFO":
            out.append(f"--realtime: {self.realtime}")
        if not self.timer_precise:
            out.append("no timerfd: wake-ups have ~1 ms granularity, late-send counts are pessimistic")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "target": self.target.address,
            "send_pp": self.target.send_pp,
            "rate": self.rate,
            "mode": self.mode,
            "connections": self.connections,
            "workers": self.workers,
            "duration_s": self.duration_s,
            "elapsed_s": round(self.elapsed_s, 4),
            "achieved_rps": round(self.achieved_rps, 1),
            "latency": self.latency.as_dict(),
            "service_latency": self.service.as_dict() if self.service is not None else None,
            "outcomes": dict(self.outcomes),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "scheduled": self.scheduled,
            "sent": self.sent,
            "late": self.late,
            "late_pct": round(self.late_pct, 3),
            "lag_max_ms": round(self.lag_max_ms, 3),
            "lag_mean_ms": round(self.lag_mean_ms, 4),
            "unsent": self.unsent,
            "abandoned": self.abandoned,
            "connections_opened": self.connections_opened,
            "held": self.held,
            "interrupted": self.interrupted,
            "timer_precise": self.timer_precise,
            "realtime": self.realtime or None,
            "warmup_errors": dict(self.warmup_errors),
            "skipped": self.skipped or None,
            "notes": self.notes(),
        }


@dataclass
class Preflight:
    side: str
    outcome: str
    status: int
    body: bytes

    @property
    def ok(self) -> bool:
        return self.outcome == wire.OK


@dataclass
class BenchResult:
    spec: BenchSpec
    runs: list[RunResult]
    preflight: dict[str, Preflight]
    interrupted: bool = False

    def run_for(self, rate: float | None, side: str) -> RunResult | None:
        for r in self.runs:
            if r.rate == rate and r.side == side:
                return r
        return None

    def as_dict(self) -> dict[str, Any]:
        s = self.spec
        return {
            "path": s.path,
            "mode": s.mode,
            "duration_s": s.duration_s,
            "connections": s.connections,
            "rates": [r for r in s.rates],
            "sides": [{"name": x.name, "target": x.target.address, "send_pp": x.target.send_pp,
                       "kind": x.target.kind, "source": x.source} for x in s.sides],
            "preflight": {k: {"outcome": v.outcome, "status": v.status, "body": v.body[:200].decode("utf-8", "replace")}
                          for k, v in self.preflight.items()},
            "interrupted": self.interrupted,
            "runs": [r.as_dict() for r in self.runs],
        }


@dataclass(frozen=True)
class BenchProgress:
    """What a progress callback gets, about twice a second during a run."""

    side: str
    rate: float | None
    run_index: int  # 0-based
    run_count: int
    duration_s: float
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


# --- planning --------------------------------------------------------------------------------

def auto_workers(rate: float | None, mode: str, target: Target, cpus: int | None = None) -> int:
    """Worker processes for a run: as many as the rate needs, at most one per CPU.

    A loopback target shares this machine's CPUs with the client, so one CPU is left to it:
    on the 2-CPU lab machine a second client process took the gateway's core and lowered
    max throughput from ~64k to ~43k RPS (docs/bench.md). ``--workers`` overrides.
    """
    cpus = cpus or os.cpu_count() or 1
    local = target.host.startswith("127.") or target.host in ("::1", "localhost")
    cap = max(1, cpus - 1) if local else cpus
    if rate is None:
        return cap
    return max(1, min(cap, math.ceil(rate / PER_WORKER_RPS[mode])))


def split_plans(spec: BenchSpec, side: Side, rate: float | None, workers: int) -> list[WorkerPlan]:
    workers = max(1, min(workers, spec.connections))
    base, extra = divmod(spec.connections, workers)
    return [
        WorkerPlan(
            target=side.target, path=spec.path, rate=rate, duration_s=spec.duration_s,
            connections=base + (1 if k < extra else 0), mode=spec.mode, worker_index=k, worker_count=workers,
            connect_timeout_s=spec.connect_timeout_s, response_timeout_s=spec.response_timeout_s,
            late_threshold_ns=int(spec.late_threshold_ms * 1e6), keep_bodies=spec.keep_bodies,
            realtime=spec.realtime and rate is not None,
        )
        for k in range(workers)
    ]


def merge_results(parts: Sequence[WorkerResult]) -> WorkerResult:
    if not parts:
        raise BenchError("no worker returned a result")
    first = parts[0]
    out = WorkerResult(worker_index=-1, latency=LatencyRecorder(max_exact=first.latency.max_exact),
                       outcomes={c: 0 for c in wire.CLASSES}, statuses={}, t0_ns=first.t0_ns,
                       timer_precise=all(p.timer_precise for p in parts),
                       service=LatencyRecorder(max_exact=first.latency.max_exact))
    for p in parts:
        out.latency.merge(p.latency)
        if p.service is not None:
            out.service.merge(p.service)  # type: ignore[union-attr]
        for k, v in p.outcomes.items():
            out.outcomes[k] = out.outcomes.get(k, 0) + v
        for k, v in p.statuses.items():
            out.statuses[k] = out.statuses.get(k, 0) + v
        for k, v in p.warmup_errors.items():
            out.warmup_errors[k] = out.warmup_errors.get(k, 0) + v
        out.scheduled += p.scheduled
        out.sent += p.sent
        out.late += p.late
        out.lag_sum_ns += p.lag_sum_ns
        out.lag_max_ns = max(out.lag_max_ns, p.lag_max_ns)
        out.unsent += p.unsent
        out.abandoned += p.abandoned
        out.connections_opened += p.connections_opened
        out.end_ns = max(out.end_ns, p.end_ns)
        out.done_ns = max(out.done_ns, p.done_ns)
        out.interrupted = out.interrupted or p.interrupted
        out.realtime = out.realtime or p.realtime
        out.bodies.extend(p.bodies)
    return out


def _run_result(spec: BenchSpec, side: Side, rate: float | None, workers: int, merged: WorkerResult) -> RunResult:
    elapsed = max(0, merged.end_ns - merged.t0_ns) / 1e9 if merged.end_ns else 0.0
    if not merged.interrupted:
        elapsed = spec.duration_s if rate is not None else max(elapsed, 1e-9)
    return RunResult(
        side=side.name, target=side.target, rate=rate, mode=spec.mode, connections=spec.connections,
        workers=workers, duration_s=spec.duration_s, elapsed_s=elapsed, latency=merged.latency.summary(CURVE_PERCENTILES),
        outcomes=dict(merged.outcomes), statuses=dict(merged.statuses), scheduled=merged.scheduled,
        sent=merged.sent, late=merged.late, lag_max_ms=merged.lag_max_ns / 1e6,
        lag_mean_ms=(merged.lag_sum_ns / merged.sent / 1e6) if merged.sent else 0.0, unsent=merged.unsent,
        abandoned=merged.abandoned, connections_opened=merged.connections_opened, interrupted=merged.interrupted,
        timer_precise=merged.timer_precise, warmup_errors=dict(merged.warmup_errors),
        bodies=list(merged.bodies[: spec.keep_bodies]),
        service=merged.service.summary() if merged.service is not None else None,
        realtime=merged.realtime,
    )


def _skipped(spec: BenchSpec, side: Side, rate: float | None, why: str) -> RunResult:
    empty = LatencyRecorder().summary()
    return RunResult(side=side.name, target=side.target, rate=rate, mode=spec.mode, connections=spec.connections,
                     workers=0, duration_s=spec.duration_s, elapsed_s=0.0, latency=empty,
                     outcomes={c: 0 for c in wire.CLASSES}, statuses={}, scheduled=0, sent=0, late=0,
                     lag_max_ms=0.0, lag_mean_ms=0.0, unsent=0, abandoned=0, connections_opened=0,
                     interrupted=False, timer_precise=True, skipped=why)


# --- preflight -------------------------------------------------------------------------------

async def preflight(side: Side, spec: BenchSpec) -> Preflight:
    """One request over the side's path (header or not), classified like the bench classifies."""
    plan = WorkerPlan(target=side.target, path=spec.path, rate=1000.0, duration_s=0.001, connections=1,
                      mode=NEW_CONNECTION, connect_timeout_s=spec.connect_timeout_s,
                      response_timeout_s=spec.response_timeout_s, keep_bodies=1, warmup=False)
    engine = Engine(plan)
    await engine.prepare()
    res = await engine.run(time.monotonic_ns())
    outcome = next((k for k, v in res.outcomes.items() if v), wire.OTHER)
    status, body = res.bodies[0] if res.bodies else (0, b"")
    return Preflight(side=side.name, outcome=outcome, status=status, body=body)


def preflight_problem(side: Side, pf: Preflight) -> str:
    got = f"{pf.outcome}" + (f" (HTTP {pf.status})" if pf.status else "")
    if pf.ok:
        return ""
    if side.target.kind == "gateway" and not side.target.send_pp and pf.outcome in (
            wire.EMPTY_REPLY, wire.RESET, wire.TIMEOUT_RESPONSE):
        return (f"skipped: a request without a PROXY header got {got} — this gateway listener requires PROXY "
                "protocol; give the PP-off side its own gateway (--off-config) or use a listener with "
                "allow_requests_without_proxy_protocol")
    if side.target.send_pp and pf.outcome in (wire.HTTP_4XX, wire.PROTOCOL_ERROR, wire.EMPTY_REPLY, wire.RESET):
        return (f"skipped: a request with a PPv2 header got {got} — this listener does not parse PROXY "
                "protocol (the header reached the HTTP parser)")
    return f"skipped: the preflight request to {side.target.address} got {got}"


# --- processes -------------------------------------------------------------------------------

def _die_with_parent(parent_pid: int) -> None:
    """Linux: SIGTERM this worker when the process that started it dies (killed bench, crashed TUI)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:
        os._exit(1)


def _worker_main(pipe: Any, plan: WorkerPlan, stop_event: Any, parent_pid: int = 0) -> None:
    """Entry point of a worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if parent_pid:
        _die_with_parent(parent_pid)
    try:
        asyncio.run(_worker_async(pipe, plan, stop_event))
    except BaseException as exc:  # report, never hang the parent
        try:
            pipe.send(("error", plan.worker_index, "".join(traceback.format_exception(exc))))
        except Exception:
            pass
    finally:
        pipe.close()


async def _recv(pipe: Any) -> Any:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()
    fd = pipe.fileno()

    def readable() -> None:
        loop.remove_reader(fd)
        try:
            fut.set_result(pipe.recv())
        except BaseException as exc:
            fut.set_exception(exc)

    loop.add_reader(fd, readable)
    try:
        return await fut
    finally:
        loop.remove_reader(fd)


REALTIME_PRIORITY = 10


def _go_realtime() -> str:
    """SCHED_FIFO for this worker: a waking worker then preempts ordinary tasks at once.

    Safe for fixed-rate runs: the worker sleeps in epoll between sends (≈30 % of a core at
    4000 RPS); the kernel's RT throttling keeps 5 % of every CPU for others regardless.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
        return "SCHED_FIFO"
    except (AttributeError, OSError) as exc:
        return f"not granted ({exc.__class__.__name__}: {exc})"


async def _worker_async(pipe: Any, plan: WorkerPlan, stop_event: Any) -> None:
    def progress(p: Progress) -> None:
        pipe.send(("progress", plan.worker_index, p))

    engine = Engine(plan, should_stop=stop_event.is_set, progress=progress)
    if plan.realtime:
        engine.result.realtime = _go_realtime()
    await engine.prepare()
    pipe.send(("ready", plan.worker_index, None))
    msg = await _recv(pipe)
    if msg[0] != "go":
        return
    result = await engine.run(msg[1])
    pipe.send(("result", plan.worker_index, result))


def _ensure_resource_tracker() -> None:
    """Start multiprocessing's resource tracker even when sys.stderr has no real file descriptor.

    The tracker process is started with ``sys.stderr.fileno()`` among the descriptors it keeps.
    Under the TUI, Textual has replaced sys.stderr with a capture whose ``fileno()`` is -1, and
    the first worker start then fails with "bad value(s) in fds_to_keep". Started here first
    (its stderr pointed at /dev/null, so a late warning cannot draw over the TUI), later
    starts find it running and do not look at sys.stderr again.
    """
    from multiprocessing import resource_tracker

    try:
        usable = sys.stderr is None or sys.stderr.fileno() >= 0
    except (AttributeError, OSError, ValueError):
        usable = True  # no fileno(): the tracker leaves stderr out by itself
    if usable:
        return
    saved = sys.stderr
    with open(os.devnull, "w") as devnull:
        sys.stderr = devnull
        try:
            resource_tracker.ensure_running()
        finally:
            sys.stderr = saved


class _Workers:
    """The worker processes of one run and their messages, read without blocking the caller's loop."""

    def __init__(self, plans: list[WorkerPlan]) -> None:
        _ensure_resource_tracker()
        ctx = multiprocessing.get_context("spawn")
        self.stop_event = ctx.Event()
        self.queue: asyncio.Queue[tuple[str, int, Any]] = asyncio.Queue()
        self.loop = asyncio.get_running_loop()
        self.pipes: list[Any] = []
        self.procs: list[Any] = []
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # children start with SIGINT blocked
        try:
            for plan in plans:
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_worker_main, args=(child, plan, self.stop_event, os.getpid()), daemon=True,
                                   name=f"ppdoctor-bench-{plan.worker_index}")
                proc.start()
                child.close()
                self.pipes.append(parent)
                self.procs.append(proc)
                self.loop.add_reader(parent.fileno(), self._readable, plan.worker_index, parent)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def _readable(self, index: int, pipe: Any) -> None:
        try:
            while pipe.poll():
                msg = pipe.recv()
                self.queue.put_nowait(msg)
        except (EOFError, OSError):
            self.loop.remove_reader(pipe.fileno())
            self.queue.put_nowait(("exit", index, None))

    def send_all(self, msg: tuple) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(msg)
            except (BrokenPipeError, OSError):
                pass

    async def close(self) -> None:
        for pipe in self.pipes:
            try:
                self.loop.remove_reader(pipe.fileno())
            except (ValueError, OSError):
                pass
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        for proc in self.procs:
            while proc.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if proc.is_alive():
                proc.terminate()
                proc.join(1.0)
            if proc.is_alive():
                proc.kill()
                proc.join(1.0)
        for pipe in self.pipes:
            pipe.close()


async def _run_in_process(plan: WorkerPlan, stop: asyncio.Event | None,
                          on_progress: Callable[[Progress], None]) -> WorkerResult:
    engine = Engine(plan, should_stop=(stop.is_set if stop is not None else None), progress=on_progress)
    await engine.prepare()
    return await engine.run(time.monotonic_ns() + START_DELAY_NS // 10)


async def run_once(spec: BenchSpec, side: Side, rate: float | None, *, stop: asyncio.Event | None = None,
                   progress: Callable[[BenchProgress], None] | None = None, run_index: int = 0,
                   run_count: int = 1) -> RunResult:
    """One run: one side at one rate, for spec.duration_s."""
    workers = spec.workers if spec.workers is not None else auto_workers(rate, spec.mode, side.target)
    plans = split_plans(spec, side, rate, workers or 1)
    latest: dict[int, Progress] = {}

    def on_progress(p: Progress) -> None:
        latest[p.worker_index] = p
        if progress is None:
            return
        snaps = list(latest.values())
        p50s = [s.window_p50_ms for s in snaps if s.window_p50_ms is not None]
        p99s = [s.window_p99_ms for s in snaps if s.window_p99_ms is not None]
        progress(BenchProgress(
            side=side.name, rate=rate, run_index=run_index, run_count=run_count, duration_s=spec.duration_s,
            elapsed_s=max(s.elapsed_s for s in snaps), scheduled=sum(s.scheduled for s in snaps),
            sent=sum(s.sent for s in snaps), completed=sum(s.completed for s in snaps),
            ok=sum(s.ok for s in snaps), errors=sum(s.errors for s in snaps), late=sum(s.late for s in snaps),
            unsent=sum(s.unsent for s in snaps), window_p50_ms=(sorted(p50s)[len(p50s) // 2] if p50s else None),
            window_p99_ms=(max(p99s) if p99s else None),
        ))

    if workers == 0:
        merged = await _run_in_process(replace(plans[0], worker_count=1), stop, on_progress)
        return _run_result(spec, side, rate, 0, merge_results([merged]))

    pool = _Workers(plans)
    results: dict[int, WorkerResult] = {}
    stop_task: asyncio.Task | None = None
    try:
        if stop is not None:
            async def watch() -> None:
                await stop.wait()
                pool.queue.put_nowait(("stop", -1, None))
            stop_task = asyncio.create_task(watch())
        ready: set[int] = set()
        deadline = time.monotonic() + READY_TIMEOUT_S + spec.connect_timeout_s
        while len(ready) < len(plans):
            try:
                kind, index, payload = await asyncio.wait_for(pool.queue.get(), max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                raise BenchError(f"worker processes were not ready after {READY_TIMEOUT_S:.0f} s") from None
            if kind == "ready":
                ready.add(index)
            elif kind == "error":
                raise BenchError(f"bench worker {index} failed:\n{payload}")
            elif kind == "exit":
                raise BenchError(f"bench worker {index} exited before it was ready")
            elif kind == "stop":
                pool.send_all(("cancel",))
                run = _skipped(spec, side, rate, "interrupted before the run started")
                run.interrupted = True
                return run
        pool.send_all(("go", time.monotonic_ns() + START_DELAY_NS))
        while len(results) < len(plans):
            kind, index, payload = await pool.queue.get()
            if kind == "progress":
                on_progress(payload)
            elif kind == "result":
                results[index] = payload
            elif kind == "stop":
                pool.stop_event.set()
            elif kind == "error":
                pool.stop_event.set()
                raise BenchError(f"bench worker {index} failed:\n{payload}")
            elif kind == "exit" and index not in results:
                pool.stop_event.set()
                raise BenchError(f"bench worker {index} exited without a result")
    except asyncio.CancelledError:
        pool.stop_event.set()
        raise
    finally:
        if stop_task is not None:
            stop_task.cancel()
        await pool.close()
    merged = merge_results([results[k] for k in sorted(results)])
    return _run_result(spec, side, rate, len(plans), merged)


async def run_bench(
    spec: BenchSpec,
    *,
    progress: Callable[[BenchProgress], None] | None = None,
    stop: asyncio.Event | None = None,
    on_run: Callable[[RunResult], None] | None = None,
) -> BenchResult:
    """Preflight every side, then run every rate on every side (in that order: rate-major).

    ``progress`` gets a :class:`BenchProgress` about twice a second; ``on_run`` each finished
    :class:`RunResult`; setting ``stop`` ends the current run early and skips the rest (the
    result then has ``interrupted=True`` and holds what was measured).
    """
    result = BenchResult(spec=spec, runs=[], preflight={})
    problems: dict[str, str] = {}
    if spec.preflight:
        for side in spec.sides:
            pf = await preflight(side, spec)
            result.preflight[side.name] = pf
            problem = preflight_problem(side, pf)
            if problem:
                problems[side.name] = problem
    plan = [(rate, side) for rate in spec.rates for side in spec.sides]
    count = sum(1 for _, side in plan if side.name not in problems)
    index = 0
    for rate, side in plan:
        if stop is not None and stop.is_set():
            result.interrupted = True
            break
        if side.name in problems:
            run = _skipped(spec, side, rate, problems[side.name])
        else:
            if index:
                await asyncio.sleep(PAUSE_BETWEEN_RUNS_S)
            run = await run_once(spec, side, rate, stop=stop, progress=progress, run_index=index, run_count=count)
            index += 1
        result.runs.append(run)
        if on_run is not None:
            on_run(run)
        if run.interrupted or (stop is not None and stop.is_set()):
            result.interrupted = True
            break
    return result
