"""The incident record's cost: one locked, fsynced append, alone and with two writers at once; reading it back.

Run from the repository root: ``python benchmarks/incident_append.py [--entries N]``. Writes into a temporary
directory on the same file system as ``$TMPDIR``; replaces the ``## Incident record`` section of
benchmarks/RESULTS.md. Every append is ``flock`` + one ``write`` + ``fsync``, so the number is mostly the
disk's fsync latency: a probe run of ~16 probes records ~16 entries.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from results_md import write_section  # noqa: E402  (shared with the other benchmarks)

from ppdoctor.incident import IncidentLog  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
DATA = {"observation": {"probe": "http-via-nlb", "status": "fail", "summary": "x" * 600, "facts": {"a": 1}}}


def _writer(path: str, n: int, start) -> None:  # type: ignore[no-untyped-def]
    log = IncidentLog(Path(path))
    start.wait(30)
    for i in range(n):
        log.append("probe", f"p{i}", DATA)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1000)
    args = parser.parse_args()
    n = args.entries
    with tempfile.TemporaryDirectory() as tmp:
        log = IncidentLog(Path(tmp) / "one.jsonl")
        each = []
        for i in range(n):
            t = time.perf_counter()
            log.append("probe", f"p{i}", DATA)
            each.append(time.perf_counter() - t)
        t = time.perf_counter()
        read = log.read()
        read_s = time.perf_counter() - t
        assert len(read.entries) == n and not read.problems

        path = Path(tmp) / "two.jsonl"
        ctx = multiprocessing.get_context("fork")
        start = ctx.Event()
        procs = [ctx.Process(target=_writer, args=(str(path), n, start)) for _ in range(2)]
        for p in procs:
            p.start()
        t = time.perf_counter()
        start.set()
        for p in procs:
            p.join()
        two_s = time.perf_counter() - t
        assert len(IncidentLog(path).read().entries) == 2 * n
        size = os.path.getsize(log.path)

    each_ms = sorted(x * 1e3 for x in each)
    p = lambda q: each_ms[min(len(each_ms) - 1, int(q * len(each_ms)))]  # noqa: E731
    section = "\n".join([
        "## Incident record",
        "",
        f"`python benchmarks/incident_append.py --entries {n}` on {platform.platform()}, "
        f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')} (shared machine: other jobs were running).",
        "",
        "| measurement | value |",
        "|---|---|",
        f"| one append (flock + write + fsync), ~0.8 kB entry: median / p90 / p99 | "
        f"{statistics.median(each_ms):.2f} / {p(0.9):.2f} / {p(0.99):.2f} ms |",
        f"| two processes × {n} appends at once | {two_s:.2f} s, {2 * n / two_s:.0f} entries/s, none lost |",
        f"| reading {n} entries ({size / 1024:.0f} KiB) | {read_s * 1e3:.1f} ms |",
        "",
    ])
    write_section(RESULTS, section)
    print(section)


if __name__ == "__main__":
    main()
