"""``ppdoctor bench``: an open-loop load generator that speaks PROXY protocol v2.

No common load tool sends PROXY headers, so this one does: constant arrival rate,
latency from each request's scheduled send time (no coordinated omission), exact
percentiles, failures by class, late and unsent sends reported, several processes when
one core is not enough. The TUI calls :func:`run_bench`; the CLI is :mod:`.cli`.
"""

from __future__ import annotations

from .engine import KEEPALIVE, MODES, NEW_CONNECTION, Target
from .histogram import CURVE_PERCENTILES, PERCENTILES, LatencyRecorder, LatencySummary, LogLinearHistogram
from .runner import BenchError, BenchProgress, BenchResult, BenchSpec, Preflight, RunResult, Side, run_bench
from .wire import CLASSES, ERROR_CLASSES

__all__ = [
    "run_bench", "BenchSpec", "BenchResult", "BenchProgress", "RunResult", "Preflight", "Side", "Target",
    "BenchError", "KEEPALIVE", "NEW_CONNECTION", "MODES", "CLASSES", "ERROR_CLASSES",
    "LatencyRecorder", "LatencySummary", "LogLinearHistogram", "PERCENTILES", "CURVE_PERCENTILES",
]
