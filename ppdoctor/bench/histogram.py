"""Latency recording for ``ppdoctor bench``: exact while memory allows, log-linear beyond.

Why exact first. A run records one integer (nanoseconds) per request: 4000 RPS for 30 s
is 120 000 values, 960 KB as ``array('q')``. Sorting that once at the end gives *exact*
nearest-rank percentiles, so a p99 or a max in the report is a latency some request really
had, not a bucket edge. Memory stays bounded by ``max_exact`` (default 4 Mi samples =
32 MiB per recorder, i.e. 17 min at 4000 RPS or 3.5 min at 20 000 RPS per worker); past
that the samples are folded into a :class:`LogLinearHistogram` and recording continues
there.

The log-linear histogram is HdrHistogram's layout re-derived: values below ``2**bits`` get
one bucket each (exact); above, every power-of-two range is split into ``2**(bits-1)``
equal sub-buckets, so a bucket's width is at most ``2**-(bits-1)`` of its lower edge. With
the default ``bits=11`` that is a relative error ≤ 1/1024 (< 0.1 %), in ~27 000 buckets
for values up to a minute in nanoseconds. Percentiles from it return the bucket's upper
edge clipped to the recorded max (never an underestimate of the tail, never more than
0.1 % over).

Percentile definition (both modes): nearest rank — the smallest recorded value ``v``
such that at least ``p`` % of the samples are ≤ ``v`` (``rank = ceil(p/100 · n)``); p100
is the max. This is what HdrHistogram's ``getValueAtPercentile`` and wrk report.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from typing import Iterable, Sequence

DEFAULT_BITS = 11
DEFAULT_MAX_EXACT = 4 * 1024 * 1024
PERCENTILES = (50.0, 90.0, 95.0, 99.0)
# What a run keeps for the latency-by-percentile plot (the TUI's Bench screen, the JSON): the table's
# percentiles plus the tail between p99 and the max.
CURVE_PERCENTILES = (50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99)


def nearest_rank(p: float, n: int) -> int:
    """1-based rank of percentile ``p`` among ``n`` sorted samples (nearest-rank method)."""
    if n <= 0:
        raise ValueError("no samples")
    if not 0.0 <= p <= 100.0:
        raise ValueError(f"percentile {p} is outside 0..100")
    # Round p·n/100 to 1e-9 first: 99.0*100/100 must be rank 99, not 99.00000000000001 → 100.
    rank = math.ceil(round(p * n / 100.0, 9))
    return min(max(rank, 1), n)


def percentile_sorted(values: Sequence[int], p: float) -> int:
    """Exact nearest-rank percentile of an already sorted sequence."""
    return values[nearest_rank(p, len(values)) - 1]


class LogLinearHistogram:
    """Counts of non-negative integers in log-linear buckets (relative error ≤ 2**-(bits-1))."""

    __slots__ = ("bits", "_half", "_full", "counts", "total", "min", "max")

    def __init__(self, bits: int = DEFAULT_BITS) -> None:
        if not 2 <= bits <= 20:
            raise ValueError("bits must be 2..20")
        self.bits = bits
        self._full = 1 << bits
        self._half = 1 << (bits - 1)
        self.counts: dict[int, int] = {}
        self.total = 0
        self.min: int | None = None
        self.max: int | None = None

    # bucket index ↔ value range -----------------------------------------------------------
    def index(self, value: int) -> int:
        if value < self._full:
            return value
        shift = value.bit_length() - self.bits
        return self._full + (shift - 1) * self._half + ((value >> shift) - self._half)

    def bounds(self, index: int) -> tuple[int, int]:
        """Inclusive (low, high) of the values that land in bucket ``index``."""
        if index < self._full:
            return index, index
        shift = (index - self._full) // self._half + 1
        top = (index - self._full) % self._half + self._half
        low = top << shift
        return low, low + (1 << shift) - 1

    @property
    def max_relative_error(self) -> float:
        return 1.0 / self._half

    # recording ------------------------------------------------------------------------------
    def record(self, value: int, count: int = 1) -> None:
        if value < 0:
            raise ValueError("negative value")
        i = self.index(value)
        self.counts[i] = self.counts.get(i, 0) + count
        self.total += count
        if self.min is None or value < self.min:
            self.min = value
        if self.max is None or value > self.max:
            self.max = value

    def record_many(self, values: Iterable[int]) -> None:
        for v in values:
            self.record(v)

    def merge(self, other: "LogLinearHistogram") -> None:
        if other.bits != self.bits:
            raise ValueError("cannot merge histograms of different precision")
        for i, c in other.counts.items():
            self.counts[i] = self.counts.get(i, 0) + c
        self.total += other.total
        if other.min is not None and (self.min is None or other.min < self.min):
            self.min = other.min
        if other.max is not None and (self.max is None or other.max > self.max):
            self.max = other.max

    def percentile(self, p: float) -> int:
        rank = nearest_rank(p, self.total)
        seen = 0
        for i in sorted(self.counts):
            seen += self.counts[i]
            if seen >= rank:
                high = self.bounds(i)[1]
                assert self.max is not None
                return min(high, self.max)
        raise AssertionError("unreachable")  # pragma: no cover


class LatencyRecorder:
    """Latencies in integer nanoseconds: exact samples up to ``max_exact``, then a histogram."""

    __slots__ = ("samples", "hist", "max_exact", "bits")

    def __init__(self, *, max_exact: int = DEFAULT_MAX_EXACT, bits: int = DEFAULT_BITS) -> None:
        self.samples: array | None = array("q")
        self.hist: LogLinearHistogram | None = None
        self.max_exact = max_exact
        self.bits = bits

    @property
    def exact(self) -> bool:
        return self.hist is None

    @property
    def count(self) -> int:
        return len(self.samples) if self.samples is not None else self.hist.total  # type: ignore[union-attr]

    def record(self, value_ns: int) -> None:
        samples = self.samples
        if samples is not None:
            samples.append(value_ns)
            if len(samples) > self.max_exact:
                self._fold()
        else:
            self.hist.record(value_ns)  # type: ignore[union-attr]

    def _fold(self) -> None:
        hist = LogLinearHistogram(self.bits)
        assert self.samples is not None
        hist.record_many(self.samples)
        self.samples = None
        self.hist = hist

    def merge(self, other: "LatencyRecorder") -> None:
        if self.samples is not None and other.samples is not None \
                and len(self.samples) + len(other.samples) <= self.max_exact:
            self.samples.extend(other.samples)
            return
        if self.samples is not None:
            self._fold()
        assert self.hist is not None
        if other.samples is not None:
            self.hist.record_many(other.samples)
        else:
            assert other.hist is not None
            self.hist.merge(other.hist)

    def summary(self, percentiles: Sequence[float] = PERCENTILES) -> "LatencySummary":
        n = self.count
        if n == 0:
            return LatencySummary(count=0, exact=self.exact, percentiles={}, min_ns=None, max_ns=None, mean_ns=None)
        if self.samples is not None:
            ordered = sorted(self.samples)
            values = {p: percentile_sorted(ordered, p) for p in percentiles}
            return LatencySummary(count=n, exact=True, percentiles=values, min_ns=ordered[0], max_ns=ordered[-1],
                                  mean_ns=sum(ordered) / n)
        hist = self.hist
        assert hist is not None and hist.max is not None and hist.min is not None
        values = {p: hist.percentile(p) for p in percentiles}
        mean = sum(((lambda b: (b[0] + b[1]) / 2)(hist.bounds(i))) * c for i, c in hist.counts.items()) / hist.total
        return LatencySummary(count=n, exact=False, percentiles=values, min_ns=hist.min, max_ns=hist.max, mean_ns=mean)


@dataclass(frozen=True)
class LatencySummary:
    count: int
    exact: bool
    percentiles: dict[float, int]  # p → ns
    min_ns: int | None
    max_ns: int | None
    mean_ns: float | None

    def ms(self, p: float) -> float | None:
        v = self.percentiles.get(p)
        return None if v is None else v / 1e6

    def as_dict(self) -> dict:
        return {
            "count": self.count,
            "exact": self.exact,
            **{f"p{p:g}_ms": (v / 1e6) for p, v in self.percentiles.items()},
            "min_ms": None if self.min_ns is None else self.min_ns / 1e6,
            "max_ms": None if self.max_ns is None else self.max_ns / 1e6,
            "mean_ms": None if self.mean_ns is None else self.mean_ns / 1e6,
        }
