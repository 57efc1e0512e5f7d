"""``ppdoctor bench``: open-loop load with and without PROXY protocol v2, the seed's latency table.

Handler ``ppdoctor.bench.cli:run(args)``. Arguments read (see docs/bench.md):
``rate`` ("R[,R...]", "max" = closed-loop max throughput), ``duration`` (seconds, "30" or
"30s"), ``connections``, ``mode`` (keepalive|new-connection), ``json``, ``target``
(gateway|nlb), ``path`` (default /bench), ``config``; optional ``pp`` (both|on|off),
``off_config`` (the PP-off side's gateway), ``workers`` (processes; default auto),
``host`` (Host header) and ``realtime`` (SCHED_FIFO load processes).

Exit status: 0 every run held its rate without errors; 1 a run could not hold its rate,
had errors, or was skipped by its preflight; 130 interrupted (the table of what was
measured is printed first).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from ..config import TargetConfig, load_config
from ..errors import ConfigError
from .engine import KEEPALIVE, MODES
from .report import print_progress_line, render_json, render_text
from .runner import BenchResult, BenchSpec, run_bench
from .targets import PP_CHOICES, build_sides

DEFAULT_CONNECTIONS = 32
DEFAULT_DURATION_S = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``ppdoctor bench`` (what ppdoctor/cli.py declares for the sub-command)."""
    parser.add_argument("--rate", required=True, metavar="R[,R...]",
                        help="requests per second, comma-separated, one run per rate and side; 'max' = closed-loop max throughput")
    parser.add_argument("--duration", default="10", metavar="S", help="seconds per run (default 10)")
    parser.add_argument("--connections", type=int, default=DEFAULT_CONNECTIONS, metavar="N",
                        help=f"keep-alive connections, or concurrent connections in new-connection mode (default {DEFAULT_CONNECTIONS})")
    parser.add_argument("--mode", choices=list(MODES), default=KEEPALIVE,
                        help="reuse connections (default) or open one per request")
    parser.add_argument("--target", choices=["gateway", "nlb"], default="gateway",
                        help="gateway.direct (the bench adds the PROXY header itself) or nlb.address (the NLB does)")
    parser.add_argument("--path", default="/bench", help="request path (default /bench: the lab gateway answers it itself)")
    parser.add_argument("--pp", choices=list(PP_CHOICES), default="both", help="sides to run (default both)")
    parser.add_argument("--off-config", metavar="FILE",
                        help="target config of a gateway without PROXY protocol for the PP-off side (default: --config)")
    parser.add_argument("--workers", default="auto", metavar="N",
                        help="load-generating processes per run (default auto: by rate, at most one per CPU)")
    parser.add_argument("--host", metavar="HOST", help="Host header (default echo.host, else the address)")
    parser.add_argument("--realtime", action="store_true",
                        help="run the load processes SCHED_FIFO (needs CAP_SYS_NICE; fixed rates only) so that "
                             "other tasks cannot delay sends")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def parse_rates(text: str | None) -> tuple[float | None, ...]:
    if not text:
        raise ConfigError("--rate is required", hint="for example --rate 1500,2000,4000 (or --rate max)")
    rates: list[float | None] = []
    for part in str(text).split(","):
        part = part.strip().lower()
        if not part:
            continue
        if part == "max":
            rates.append(None)
            continue
        try:
            value = float(part.removesuffix("rps").removesuffix("/s"))
        except ValueError:
            raise ConfigError(f"--rate: {part!r} is not a number of requests per second or 'max'") from None
        if value <= 0:
            raise ConfigError(f"--rate: {part!r} must be > 0")
        rates.append(value)
    if not rates:
        raise ConfigError("--rate is empty")
    return tuple(rates)


def parse_duration(value: Any) -> float:
    if value is None:
        return DEFAULT_DURATION_S
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        scale = 1.0
        if text.endswith("ms"):
            text, scale = text[:-2], 0.001
        elif text.endswith("s"):
            text = text[:-1]
        elif text.endswith("m"):
            text, scale = text[:-1], 60.0
        try:
            seconds = float(text) * scale
        except ValueError:
            raise ConfigError(f"--duration: {value!r} is not a number of seconds") from None
    if seconds <= 0:
        raise ConfigError("--duration must be > 0")
    return seconds


def spec_from_args(args: argparse.Namespace) -> BenchSpec:
    from ..discovery.target import config_for_args

    target = getattr(args, "target", None) or "gateway"

    def enough(c: TargetConfig) -> bool:  # the bench needs only the address it loads
        return bool(c.gateway.direct if target == "gateway" else c.nlb.address)

    cfg = config_for_args(args, enough=enough)  # otherwise discover the path
    args.resolved_config = cfg  # the incident the run is recorded in belongs to this target
    off_path = getattr(args, "off_config", None)
    off_cfg = load_config(off_path) if off_path else None
    pp = getattr(args, "pp", None) or "both"
    if pp not in PP_CHOICES:
        raise ConfigError(f"--pp must be one of {', '.join(PP_CHOICES)}")
    mode = getattr(args, "mode", None) or KEEPALIVE
    if mode not in MODES:
        raise ConfigError(f"--mode must be one of {', '.join(MODES)}")
    path = getattr(args, "path", None) or "/bench"
    if not path.startswith("/"):
        raise ConfigError(f"--path {path!r} must start with /")
    sides = build_sides(cfg, target=target, pp=pp, off_cfg=off_cfg,
                        host_header=getattr(args, "host", None) or "")
    workers = getattr(args, "workers", None)
    if workers is not None and str(workers) != "auto":
        try:
            workers = int(workers)
        except ValueError:
            raise ConfigError("--workers must be a number or 'auto'") from None
        if workers < 0:
            raise ConfigError("--workers must be ≥ 0")
    else:
        workers = None
    connections = getattr(args, "connections", None) or DEFAULT_CONNECTIONS
    if connections < 1:
        raise ConfigError("--connections must be ≥ 1")
    return BenchSpec(
        sides=sides, rates=parse_rates(getattr(args, "rate", None)), duration_s=parse_duration(getattr(args, "duration", None)),
        connections=int(connections), mode=mode, path=path, workers=workers,
        connect_timeout_s=cfg.timeouts.connect, response_timeout_s=cfg.timeouts.response,
        realtime=bool(getattr(args, "realtime", False)),
    )


def exit_status(result: BenchResult) -> int:
    if result.interrupted:
        return 130
    for r in result.runs:
        if r.skipped or r.errors or r.held is False:
            return 1
    return 0


def run(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    as_json = bool(getattr(args, "json", False))
    show_progress = not as_json and sys.stderr.isatty()

    async def main() -> BenchResult:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def on_sigint() -> None:
            if stop.is_set():  # second Ctrl-C: give up at once
                loop.remove_signal_handler(signal.SIGINT)
                raise KeyboardInterrupt
            print("\nppdoctor bench: stopping, collecting what was measured (Ctrl-C again to abort)", file=sys.stderr)
            stop.set()

        try:
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        except (NotImplementedError, RuntimeError):
            pass

        def on_run(r) -> None:
            if show_progress:
                sys.stderr.write("\r\033[K")
                sys.stderr.flush()

        progress = (lambda p: print_progress_line(sys.stderr, p)) if show_progress else None
        return await run_bench(spec, progress=progress, stop=stop, on_run=on_run)

    result = asyncio.run(main())
    print(render_json(result) if as_json else render_text(result))
    _record(args, result)
    return exit_status(result)


def _record(args: argparse.Namespace, result: BenchResult) -> None:
    """The bench table joins the target's incident record (the report shows it); a record that cannot be
    written is a warning, never a lost measurement."""
    from ..errors import PPDoctorError
    from ..incident import open_current
    from .report import comparison, table

    try:
        config = getattr(args, "resolved_config", None) or load_config(getattr(args, "config", None))
        log = open_current(config, by="cli bench")
        s = result.spec
        log.append("bench", f"bench: GET {s.path}, {s.mode}, {s.connections} connections, {s.duration_s:g} s per run"
                   + (" (interrupted)" if result.interrupted else ""),
                   {"table": table(result), "comparison": comparison(result), "exit_status": exit_status(result)},
                   by="cli bench")
    except (PPDoctorError, OSError) as exc:
        print(f"ppdoctor bench: warning: not recorded in the incident: {exc}", file=sys.stderr)
