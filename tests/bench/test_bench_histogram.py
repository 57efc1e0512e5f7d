"""Percentiles: exact on synthetic data (nearest rank), bounded error past the memory bound."""

from __future__ import annotations

import pickle
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppdoctor.bench.histogram import LatencyRecorder, LogLinearHistogram, nearest_rank, percentile_sorted
from ppdoctor.bench.runner import merge_results
from ppdoctor.bench.engine import WorkerResult
from ppdoctor.bench import wire


def test_nearest_rank_on_1_to_100():
    r = LatencyRecorder()
    values = list(range(1, 101))
    random.Random(7).shuffle(values)
    for v in values:
        r.record(v)
    s = r.summary()
    assert s.exact
    assert s.percentiles == {50.0: 50, 90.0: 90, 95.0: 95, 99.0: 99}
    assert (s.min_ns, s.max_ns, s.count) == (1, 100, 100)
    assert s.mean_ns == 50.5


def test_nearest_rank_small_and_uneven_counts():
    # 10 samples: p50 is the 5th, p90 the 9th, p95 and p99 the 10th (ceil)
    values = [10, 20, 30, 40, 50, 60, 70, 80, 90, 1000]
    r = LatencyRecorder()
    for v in reversed(values):
        r.record(v)
    assert r.summary().percentiles == {50.0: 50, 90.0: 90, 95.0: 1000, 99.0: 1000}
    # one sample: every percentile is it
    one = LatencyRecorder()
    one.record(42)
    assert set(one.summary().percentiles.values()) == {42}
    # 1000 samples with a tail: p99 is the 990th value exactly
    tail = [1_000] * 985 + [5_000_000 + i for i in range(15)]
    r = LatencyRecorder()
    for v in tail:
        r.record(v)
    s = r.summary()
    assert s.percentiles[99.0] == 5_000_004  # rank 990 = the 5th tail value
    assert s.percentiles[95.0] == 1_000 and s.max_ns == 5_000_014


def test_rank_is_not_fooled_by_float_rounding():
    assert nearest_rank(99.0, 100) == 99
    assert nearest_rank(95.0, 20) == 19
    assert nearest_rank(50.0, 1) == 1
    assert nearest_rank(0.0, 10) == 1 and nearest_rank(100.0, 10) == 10
    with pytest.raises(ValueError):
        nearest_rank(50.0, 0)


def test_empty_summary():
    s = LatencyRecorder().summary()
    assert s.count == 0 and s.percentiles == {} and s.max_ns is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=120_000_000_000), min_size=1, max_size=400),
       st.sampled_from([50.0, 90.0, 95.0, 99.0, 99.9, 100.0]))
def test_log_linear_error_is_bounded(values, p):
    h = LogLinearHistogram()
    h.record_many(values)
    exact = percentile_sorted(sorted(values), p)
    got = h.percentile(p)
    assert got >= exact  # never under-reports a tail
    assert got - exact <= exact * h.max_relative_error
    assert h.max == max(values) and h.min == min(values)


def test_bucket_bounds_cover_every_value():
    h = LogLinearHistogram(bits=4)
    for v in [0, 1, 15, 16, 17, 31, 32, 33, 1000, 10**9]:
        lo, hi = h.bounds(h.index(v))
        assert lo <= v <= hi
        assert (hi - lo) <= max(0, lo) * h.max_relative_error


def test_recorder_folds_past_its_memory_bound_and_stays_close():
    rng = random.Random(1)
    values = [rng.randint(50_000, 20_000_000) for _ in range(5000)]
    r = LatencyRecorder(max_exact=1000)
    for v in values:
        r.record(v)
    assert not r.exact and r.count == 5000
    s = r.summary()
    ordered = sorted(values)
    for p in (50.0, 90.0, 99.0):
        exact = percentile_sorted(ordered, p)
        assert exact <= s.percentiles[p] <= exact * (1 + 1 / 1024)
    assert s.max_ns == ordered[-1]


def test_merge_of_worker_results_is_exact_and_pickles():
    parts = []
    for k in range(3):
        lat = LatencyRecorder()
        for v in range(k + 1, 301, 3):  # worker k holds k+1, k+4, …
            lat.record(v)
        w = WorkerResult(worker_index=k, latency=lat, outcomes={c: 0 for c in wire.CLASSES}, statuses={200: 100},
                         scheduled=100, sent=100, late=k, lag_max_ns=k * 10, t0_ns=5, end_ns=100 + k)
        w.outcomes[wire.OK] = 100
        parts.append(pickle.loads(pickle.dumps(w)))
    merged = merge_results(parts)
    s = merged.latency.summary()
    assert s.count == 300 and s.percentiles[50.0] == 150 and s.percentiles[99.0] == 297 and s.max_ns == 300
    assert merged.sent == 300 and merged.late == 3 and merged.lag_max_ns == 20 and merged.end_ns == 102
    assert merged.outcomes[wire.OK] == 300 and merged.statuses == {200: 300}
