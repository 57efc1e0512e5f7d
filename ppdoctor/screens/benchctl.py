"""The Bench screen's side of the app: parameters, the run as a worker, and what it measured so far.

The load itself runs where ``ppdoctor bench`` runs it — worker processes started by
:func:`ppdoctor.bench.run_bench` — driven from the engine loop, so the UI thread only
receives progress (about twice a second) and finished runs, as typed ``Bench*`` messages.
State lives here, on the app, so it survives switching screens; the screen redraws from it.

On the lab, one gateway accepts only one of "PP off" / "PP on" (docs/bench.md): with
*companion lab* on, a side the gateway refuses at preflight is pointed at a second lab
started for it (``healthy`` for PP on, ``no-client-ip`` for PP off), stopped when ppdoctor
quits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config import TargetConfig, load_config
from ..errors import ConfigError, PPDoctorError
from . import messages as msg

if TYPE_CHECKING:
    from ..bench import BenchProgress, BenchResult, BenchSpec, RunResult
    from .host import Host, LabLike

Key = tuple[float | None, str]  # (rate, side)
LIVE_POINTS = 2000  # per run: ~16 min of half-second progress points


@dataclass(frozen=True)
class BenchParams:
    """What the form holds, as typed (validated by :meth:`parsed`)."""

    rates: str = "1500,2000,4000"
    duration: str = "10"
    connections: str = "32"
    mode: str = "keepalive"
    target: str = "gateway"
    pp: str = "both"
    off_config: str = ""
    path: str = "/bench"
    companion: bool = True  # lab only: start a second lab for a side this gateway refuses

    def parsed(self) -> tuple[tuple[float | None, ...], float, int]:
        """(rates, duration in s, connections); ConfigError with the field's name when one is wrong."""
        from ..bench.cli import parse_duration, parse_rates

        rates = parse_rates(self.rates.replace("--rate", "").strip() or None)
        duration = parse_duration(self.duration.strip() or None)
        try:
            connections = int(self.connections.strip())
        except ValueError:
            raise ConfigError(f"connections: {self.connections.strip()!r} is not a whole number") from None
        if connections < 1:
            raise ConfigError("connections must be ≥ 1")
        if not self.path.strip().startswith("/"):
            raise ConfigError(f"path {self.path.strip()!r} must start with / (the lab's gateway answers /bench itself)")
        if duration > 3600:
            raise ConfigError("duration: at most 3600 s per run from the TUI (use `ppdoctor bench` for longer)")
        return rates, duration, connections

    def total_seconds(self) -> float:
        """How long the whole bench takes (runs × duration), for the status line."""
        try:
            rates, duration, _ = self.parsed()
        except ConfigError:
            return 0.0
        sides = 2 if self.pp == "both" else 1
        return len(rates) * sides * duration


class BenchController:
    """The bench's state on the app: parameters, runs so far, companion labs; fed by ``Bench*`` messages."""

    def __init__(self, app: Host) -> None:
        self.app = app
        self.params = BenchParams()
        self.running = False
        self.stopping = False
        self.spec: BenchSpec | None = None
        self.plan: list[Key] = []
        self.runs: dict[Key, RunResult] = {}
        self.result: BenchResult | None = None
        self.progress: BenchProgress | None = None
        self.live: dict[Key, list[tuple[float, float | None, float | None]]] = {}
        self.status = "not run yet"
        self.error = ""
        self.companions: dict[str, LabLike] = {}
        self._companion_cfg: dict[str, TargetConfig] = {}
        self._stop: asyncio.Event | None = None
        self._future: concurrent.futures.Future[Any] | None = None

    # --- commands (UI thread) ----------------------------------------------------------------

    def start(self, params: BenchParams) -> str | None:
        """Start a bench; returns why not (a message for the form) or None."""
        if self.running:
            return "a bench is already running (ctrl+x stops it)"
        if self.app.session is None:
            return "no target: start the lab or configure a target first"
        if self.app.fixes.applying:
            return "a fix is being applied: bench once it has finished"
        try:
            params.parsed()
        except ConfigError as exc:
            return str(exc)
        if params.mode not in ("keepalive", "new-connection"):
            return f"mode must be keepalive or new-connection, not {params.mode!r}"
        self.params = params
        self.running, self.stopping = True, False
        self.spec, self.plan, self.runs, self.result, self.progress = None, [], {}, None, None
        self.live, self.error = {}, ""
        self.status = "preparing"
        self.app.bench_changed.publish("start")
        self.app.run_worker(self._run(params, self.app.config), name="bench", group="bench", exclusive=True,
                            exit_on_error=False)
        return None

    def stop(self) -> bool:
        """Ask the running bench to stop: the current run ends early and keeps what it measured."""
        if not self.running:
            return False
        self.stopping = True
        self.status = "stopping: collecting what was measured"
        stop = self._stop
        if stop is not None:
            self.app.engine.call(stop.set)
        else:  # still preparing (preflight, companion lab): cancel outright
            for worker in self.app.workers:
                if worker.group == "bench":
                    worker.cancel()
            self.running = False
            self.status = "stopped before the first run"
        self.app.bench_changed.publish("status")
        return True

    def shutdown(self, timeout: float = 5.0) -> None:
        """ppdoctor is quitting: stop a running bench and wait (bounded) for its load processes to end."""
        stop, future = self._stop, self._future
        if stop is None or future is None or future.done():
            return
        try:
            self.app.engine.call(stop.set).result(timeout=1.0)
            concurrent.futures.wait([future], timeout=timeout)
        except (concurrent.futures.TimeoutError, RuntimeError):
            pass  # the worker processes also die with their parent (PR_SET_PDEATHSIG)

    def close(self) -> None:
        """Stop the companion labs (blocking; when ppdoctor exits)."""
        for handle in list(self.companions.values()):
            handle.close()
        self.companions.clear()

    # --- the run (a worker on the UI loop; the load runs from the engine loop) ------------------

    def _post(self, message: msg.BenchUpdate) -> None:
        self.app.post_message(message)  # thread-safe

    def _build_spec(self, params: BenchParams, config: TargetConfig) -> "BenchSpec":
        from ..bench import BenchSpec
        from ..bench.targets import build_sides

        rates, duration, connections = params.parsed()
        off_cfg = load_config(params.off_config.strip()) if params.off_config.strip() else None
        sides = build_sides(config, target=params.target, pp=params.pp, off_cfg=off_cfg)
        return BenchSpec(sides=sides, rates=rates, duration_s=duration, connections=connections, mode=params.mode,
                         path=params.path.strip(),
                         connect_timeout_s=config.timeouts.connect, response_timeout_s=config.timeouts.response)

    async def _run(self, params: BenchParams, config: TargetConfig) -> None:
        from ..bench import run_bench
        from ..bench.companion import companion_scenario, refused_sides, with_side_from

        try:
            spec = await asyncio.to_thread(self._build_spec, params, config)  # --target nlb reads AWS
            if (self.app.lab is not None and params.companion and params.target == "gateway"
                    and not params.off_config.strip()):
                self._post(msg.BenchStatus("preflight: one request per side"))
                refused = await self.app.engine.run(refused_sides(spec))
                for name, problem in refused.items():
                    scenario = companion_scenario(name)
                    if scenario is None:
                        continue
                    cfg = self._companion_cfg.get(name)
                    if cfg is None:
                        self._post(msg.BenchStatus(f"PP {name}: {problem} — starting companion lab {scenario} "
                                                   "for this side"))
                        cfg = await asyncio.to_thread(self._start_companion, name, scenario)
                    spec = with_side_from(spec, name, cfg, f"companion lab {scenario} ({cfg.path})")
            stop = asyncio.Event()  # waited on and set on the engine loop only
            self._post(msg.BenchPlanned(spec))
            self._stop = stop
            self._future = self.app.engine.submit(run_bench(
                spec, stop=stop, progress=lambda p: self._post(msg.BenchProgressed(p)),
                on_run=lambda r: self._post(msg.BenchRunDone(r))))
            try:
                result = await asyncio.wrap_future(self._future)
            except asyncio.CancelledError:
                self.app.engine.call(stop.set)  # the load processes stop; the engine task ends by itself
                raise
            self._post(msg.BenchFinished(result))
        except PPDoctorError as exc:
            self._post(msg.BenchFailed(str(exc)))
        finally:
            self._stop = None
            self._future = None

    def _start_companion(self, side: str, scenario: str) -> TargetConfig:
        """Blocking (a thread): start a lab for ``side`` beside the app's own and return its target config."""
        assert self.app.lab is not None  # companions only on the lab (checked by _run)
        handle = self.app.lab.sibling(scenario)
        self.companions[side] = handle
        cfg = handle.start_config()
        self._companion_cfg[side] = cfg
        self.app.note(f"bench: companion lab {scenario} started for the PP-{side} side "
                      f"(gateway {cfg.gateway.direct})", state_dir=str(handle.state_dir))
        return cfg

    # --- updates (UI thread) --------------------------------------------------------------------

    def handle(self, message: msg.BenchUpdate) -> str:
        """Fold one update into the state; returns its kind (what ``bench_changed`` publishes)."""
        from ..bench.report import comparison, fmt_rate, run_line

        match message:
            case msg.BenchStatus(text=text):
                kind, self.status = "status", text
            case msg.BenchPlanned(spec=spec):
                kind, self.spec = "spec", spec
                self.plan = [(rate, side.name) for rate in spec.rates for side in spec.sides]
                self.status = f"{len(self.plan)} runs of {spec.duration_s:g} s"
            case msg.BenchProgressed(progress=p):
                kind, self.progress = "progress", p
                points = self.live.setdefault((p.rate, p.side), [])
                if len(points) < LIVE_POINTS:
                    points.append((p.elapsed_s, p.window_p50_ms, p.window_p99_ms))
                if not self.stopping:
                    self.status = f"run {p.run_index + 1}/{p.run_count}: {fmt_rate(p.rate)} RPS, PP {p.side}"
            case msg.BenchRunDone(run=r):
                kind = "run"
                self.runs[(r.rate, r.side)] = r
                self.app.note(f"bench: {run_line(r)}", bench={
                    "rate": r.rate, "side": r.side, "target": r.target.address,
                    "achieved_rps": round(r.achieved_rps, 1),
                    "latency_ms": {k: v for k, v in r.latency.as_dict().items() if k.endswith("_ms")},
                    "late": r.late, "unsent": r.unsent, "outcomes": dict(r.outcomes), "skipped": r.skipped or None})
            case msg.BenchFinished(result=result):
                kind, self.result = "finished", result
                self.running, self.stopping = False, False
                held = [r for r in result.runs if not r.skipped]
                self.status = ("interrupted: the table holds what was measured" if result.interrupted
                               else f"done: {len(held)} run(s)" + (f", {len(result.runs) - len(held)} skipped"
                                                                  if len(held) < len(result.runs) else ""))
                from ..bench.report import table

                # One "bench" entry with the table: the incident report shows it (the lines stay notes too).
                if self.app.session is not None:
                    self.app.in_engine(self.app.session.record, "bench", f"bench (TUI): {self.status}",
                                       table=table(result), comparison=comparison(result))
                for line in comparison(result):
                    self.app.note(f"bench: {line.strip()}")
            case msg.BenchFailed(error=error):
                kind = "failed"
                self.running, self.stopping = False, False
                self.error = error
                self.status = "failed"
        self.app.bench_changed.publish(kind)
        return kind

    def failed(self, error: BaseException | str) -> None:
        """The worker died with an unexpected error (the app shows it in a modal)."""
        self.handle(msg.BenchFailed(str(error)))
