"""``ppdoctor bench`` against the lab gateway: the seed's PP off/on table, and the bench checked against wrk, hey and curl.

Run from the repository root: ``python benchmarks/bench_pp_latency.py`` (about 11 minutes;
``--quick`` for a 2-minute smoke run). It starts two labs side by side — ``healthy``
(the gateway requires PROXY protocol: the "PP on" side) and ``no-client-ip`` (no PROXY
filter: the "PP off" side, and the only one wrk/hey/curl can talk to) — plus, for step 5, a
third ``no-client-ip`` lab whose Envoy runs with precise timers, and replaces the
``## Bench`` section of benchmarks/RESULTS.md (other sections are kept).

What it measures, in one run:

1. environment floor: a process doing nothing but waking on a timerfd 4000 times a second
   — the share of its wake-ups that come > 1 ms late is what the VM alone costs;
2. the seed's table: 1500/2000/4000 RPS, keep-alive, PP off vs PP on, ``--duration`` s
   each; goal: 4000 RPS held with < 1 % late sends on both sides;
3. max throughput (closed loop) vs ``wrk -t2 -c32`` on the PP-off gateway, alternating,
   3 rounds; goal: ≥ 75 % of wrk's RPS;
4. median at a fixed 1000 RPS vs ``hey -c 10 -q 100`` (and ``curl --rate`` on one
   connection, an independent C client) on the PP-off gateway's ``/bench`` (answered at
   once, ~0.1 ms), alternating, ``--rounds`` rounds; goal: within 20 % of hey;
5. the same at ``/bench-delay`` (answered by the gateway after a fixed 2 ms fault delay —
   a server time clients' own overheads are small next to), with ten ``curl --rate``
   processes (one connection each, like hey's ten workers) and an Envoy started with
   ``EVENT_PRECISE_TIMER=1`` (otherwise its timers follow the kernel's coarse clock and the
   delay depends on when a request arrives); one round on the default-timer gateway shows
   that; goal: within 20 % of hey at a 2 ms route;
6. hey's own configuration: ``GOMAXPROCS=1``, ``-cpus 1`` and ``-c 1 -q 1000``, one run
   each on both routes (does hey get closer to the C client?).

Everything is loopback; every load stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import write_section  # noqa: E402  (shared with the other benchmarks)
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ppdoctor.bench import BenchSpec, run_bench  # noqa: E402
from ppdoctor.bench.report import render_text  # noqa: E402
from ppdoctor.bench.runner import RunResult, Side  # noqa: E402
from ppdoctor.bench.targets import gateway_target  # noqa: E402
from ppdoctor.bench.timer import PreciseTimer  # noqa: E402
from ppdoctor.config import load_config  # noqa: E402
from ppdoctor.lab.cli import start_lab, stop_lab  # noqa: E402
from ppdoctor.lab.manifests import BENCH_DELAY, BENCH_DELAY_PATH  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Bench"
# libevent (inside Envoy) reads its clock from CLOCK_MONOTONIC_COARSE unless this is set; on a
# kernel with 4 ms ticks a 2 ms timer then fires 2-6 ms later, depending on the tick's phase.
PRECISE_TIMER_ENV = {"EVENT_PRECISE_TIMER": "1"}
# hey configurations tried besides the default ``-c 10 -q 100`` (label, env, extra args, -c, -q)
HEY_CONFIGS = (
    ("GOMAXPROCS=1 hey -c 10 -q 100", {"GOMAXPROCS": "1"}, (), 10, 100.0),
    ("hey -cpus 1 -c 10 -q 100", {}, ("-cpus", "1"), 10, 100.0),
    ("hey -c 1 -q 1000", {}, (), 1, 1000.0),
)


# --- helpers -------------------------------------------------------------------------------

def loadavg() -> float:
    return os.getloadavg()[0]


def cpu_pressure() -> str:
    try:
        return Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return "n/a"


def wait_quiet(limit_s: float, threshold: float) -> float:
    deadline = time.monotonic() + limit_s
    while loadavg() > threshold and time.monotonic() < deadline:
        time.sleep(5)
    return loadavg()


async def timer_floor(rate: float = 4000.0, seconds: float = 10.0) -> dict[str, float]:
    """Share of timerfd wake-ups > 1 ms late for a process that does nothing else."""
    loop = asyncio.get_running_loop()
    period = int(1e9 / rate)
    lags: list[int] = []
    done = loop.create_future()
    state = {"next": time.monotonic_ns() + 50_000_000}
    total = int(rate * seconds)

    def tick() -> None:
        now = time.monotonic_ns()
        while state["next"] <= now:
            lags.append(now - state["next"])
            state["next"] += period
            if len(lags) >= total:
                if not done.done():
                    done.set_result(None)
                return
        timer.arm_at(state["next"])

    timer = PreciseTimer(loop, tick)
    timer.arm_at(state["next"])
    await done
    precise = timer.precise
    timer.close()
    lags.sort()
    n = len(lags)
    return {"late_pct": 100 * sum(1 for v in lags if v > 1_000_000) / n, "p50_us": lags[n // 2] / 1e3,
            "p99_us": lags[int(n * 0.99)] / 1e3, "max_ms": lags[-1] / 1e6, "precise": precise}


async def start_floor(seconds: float, rate: float = 1000.0) -> asyncio.subprocess.Process:
    """A timer-floor process running beside a bench run (1000 wake-ups/s: ~2 % of a CPU)."""
    return await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--floor", str(seconds), "--floor-rate", str(rate),
        stdout=asyncio.subprocess.PIPE)


async def floor_result(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    out, _ = await proc.communicate()
    return json.loads(out.decode().strip().splitlines()[-1])


def run_wrk(url: str, seconds: int, connections: int, threads: int = 2) -> dict[str, float]:
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "errors": errors.group(1) if errors else "", "non2xx": int(non2xx.group(1)) if non2xx else 0}


def run_hey(url: str, seconds: int, connections: int, per_worker_qps: float, *, env: dict[str, str] | None = None,
            extra: tuple[str, ...] = ()) -> dict[str, float]:
    out = subprocess.run(["hey", *extra, "-c", str(connections), "-q", f"{per_worker_qps:g}", "-z", f"{seconds}s",
                          "-o", "csv", url], capture_output=True, text=True, timeout=seconds + 30,
                         env={**os.environ, **env} if env else None).stdout
    times: list[float] = []
    codes: dict[str, int] = {}
    for line in out.splitlines()[1:]:
        parts = line.split(",")
        if len(parts) >= 7:
            times.append(float(parts[0]))
            codes[parts[6]] = codes.get(parts[6], 0) + 1
    times.sort()
    n = len(times)
    return {"count": n, "rps": n / seconds, "p50_ms": times[n // 2] * 1e3 if n else float("nan"),
            "p90_ms": times[int(n * 0.9)] * 1e3 if n else float("nan"), "codes": codes}


def run_curl(url: str, rate: int, count: int) -> dict[str, float]:
    """libcurl on one keep-alive connection, paced with --rate: an independent C client's view."""
    with tempfile.NamedTemporaryFile("w", suffix=".curlrc", delete=False) as fh:
        for _ in range(count):
            fh.write(f'url = "{url}"\noutput = "/dev/null"\n')
        cfg = fh.name
    try:
        out = subprocess.run(["curl", "-s", "--rate", f"{rate}/s", "-K", cfg, "-w", "%{time_total} %{num_connects}\n"],
                             capture_output=True, text=True, timeout=count / rate + 60).stdout
    finally:
        os.unlink(cfg)
    vals = sorted(float(line.split()[0]) for line in out.splitlines() if line.strip())
    n = len(vals)
    return {"count": n, "p50_ms": vals[n // 2] * 1e3, "p90_ms": vals[int(n * 0.9)] * 1e3}


def run_curls(url: str, rate: int, seconds: int, processes: int) -> dict[str, float]:
    """``processes`` curl processes, each on one keep-alive connection at ``rate / processes`` per second.

    curl ignores ``--rate`` with ``--parallel``, and one connection cannot carry 1000 requests a
    second of a 2 ms route; ten paced processes are what hey's ten ``-q`` workers are.
    """
    per = rate // processes
    configs: list[str] = []
    procs: list[subprocess.Popen[str]] = []
    try:
        for _ in range(processes):
            with tempfile.NamedTemporaryFile("w", suffix=".curlrc", delete=False) as fh:
                fh.write(f'url = "{url}"\noutput = "/dev/null"\n' * (per * seconds))
                configs.append(fh.name)
        for cfg in configs:
            procs.append(subprocess.Popen(["curl", "-s", "--rate", f"{per}/s", "-K", cfg, "-w", "%{time_total}\n"],
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
        outs = [p.communicate(timeout=seconds + 60)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for cfg in configs:
            os.unlink(cfg)
    vals = sorted(float(line) for out in outs for line in out.splitlines() if line.strip())
    n = len(vals)
    return {"count": n, "rps": n / seconds, "processes": processes,
            "p50_ms": vals[n // 2] * 1e3 if n else float("nan"), "p90_ms": vals[int(n * 0.9)] * 1e3 if n else float("nan")}


def start_lab_with_env(scenario: str, state_dir: Path, env: dict[str, str]) -> tuple[Any, dict[str, Any]]:
    """start_lab with extra environment variables; the lab's processes (Envoy too) inherit them."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return start_lab(scenario, state_dir, owner_pid=os.getpid())
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def tool_version(cmd: list[str]) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        text = (p.stdout or p.stderr).strip().splitlines()
        return text[0] if text else "?"
    except (OSError, subprocess.SubprocessError):
        return "not installed"


def deb_version(pkg: str) -> str:
    try:
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True,
                              timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def envoy_version() -> str:
    try:
        from ppdoctor.lab.gateway import find_envoy

        out = subprocess.run([find_envoy(), "--version"], capture_output=True, text=True, timeout=20).stdout
        m = re.search(r"version: \S+/(\d+\.\d+\.\d+)", out)
        return m.group(1) if m else "?"
    except Exception:
        return "?"


def ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


# --- the run -------------------------------------------------------------------------------

async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "load_before": loadavg(),
                            "pressure_before": cpu_pressure()}
    base = Path(tempfile.mkdtemp(prefix="ppdoctor-bench-"))
    labs = {}
    try:
        for name, scenario in (("on", "healthy"), ("off", "no-client-ip")):
            proc, endpoints = start_lab(scenario, base / scenario, owner_pid=os.getpid())
            labs[name] = (proc, endpoints, base / scenario)
        cfg_on = load_config(labs["on"][1]["config"], env={})
        cfg_off = load_config(labs["off"][1]["config"], env={})
        side_off = Side("off", gateway_target(cfg_off, send_pp=False), "lab no-client-ip")
        side_on = Side("on", gateway_target(cfg_on, send_pp=True), "lab healthy")
        url_off = f"http://{side_off.target.address}/bench"
        await asyncio.sleep(2.0)  # let the labs' start-up work settle

        # 1. the environment's own wake-up lateness
        data["floor_before"] = await timer_floor(seconds=10 if not args.quick else 3)
        print("timer floor:", data["floor_before"], flush=True)

        # 2. the seed's table: one run per (rate, side), each with a timer-floor process beside it
        seed = BenchSpec(sides=(side_off, side_on), rates=(1500.0, 2000.0, 4000.0), duration_s=args.duration,
                         connections=32)
        t = time.monotonic()
        seed_result = await run_bench(BenchSpec(**{**seed.__dict__, "rates": (100.0,), "duration_s": 0.5}))
        seed_result.runs.clear()  # the preflight (and a 0.5 s warm-up) only
        seed_result.spec = seed
        floors: list[dict[str, Any]] = []
        for rate in seed.rates:
            for side in seed.sides:
                one = BenchSpec(**{**seed.__dict__, "sides": (side,), "rates": (rate,), "preflight": False})
                floor = await start_floor(args.duration)
                run = (await run_bench(one)).runs[0]
                floors.append({"rate": rate, "side": side.name, **await floor_result(floor)})
                seed_result.runs.append(run)
                print(f"  seed run: PP {side.name} {rate:g} RPS: achieved {run.achieved_rps:.1f}, late "
                      f"{run.late_pct:.2f} %, unsent {run.unsent}; floor beside it {floors[-1]['late_pct']:.2f} %",
                      flush=True)
                await asyncio.sleep(1.0)
        data["seed"] = seed_result.as_dict()
        data["seed_floors"] = floors
        data["seed_text"] = render_text(seed_result)
        data["seed_wall_s"] = time.monotonic() - t
        print(data["seed_text"], flush=True)

        # 2b. the 4000 RPS rows again with SCHED_FIFO load processes: what is left without OS preemption
        rt_runs = []
        for side in (side_off, side_on):
            rt = BenchSpec(sides=(side,), rates=(4000.0,), duration_s=args.duration, connections=32,
                           realtime=True, preflight=False)
            floor = await start_floor(args.duration)
            run = (await run_bench(rt)).runs[0]
            rt_runs.append({**run.as_dict(), "floor": await floor_result(floor)})
            print(f"  realtime run: PP {side.name}: late {run.late_pct:.2f} % ({run.realtime})", flush=True)
            await asyncio.sleep(1.0)
        data["realtime"] = {"runs": rt_runs}

        data["floor_after"] = await timer_floor(seconds=10 if not args.quick else 3)
        print("timer floor after:", data["floor_after"], flush=True)

        # 3. max throughput vs wrk, alternating
        rounds = args.rounds if not args.quick else 1
        secs = args.max_seconds
        wrk_runs, ours_runs, ours2_runs, ours_on = [], [], [], []
        for i in range(rounds):
            wrk_runs.append(run_wrk(url_off, secs, 32))
            await asyncio.sleep(1)
            r = (await run_bench(BenchSpec(sides=(side_off,), rates=(None,), duration_s=secs, connections=32,
                                           preflight=False))).runs[0]
            ours_runs.append(_max_summary(r))
            await asyncio.sleep(1)
            r = (await run_bench(BenchSpec(sides=(side_off,), rates=(None,), duration_s=secs, connections=32,
                                           workers=2, preflight=False))).runs[0]
            ours2_runs.append(_max_summary(r))
            await asyncio.sleep(1)
            r = (await run_bench(BenchSpec(sides=(side_on,), rates=(None,), duration_s=secs, connections=32,
                                           preflight=False))).runs[0]
            ours_on.append(_max_summary(r))
            await asyncio.sleep(1)
            print(f"  max round {i}: wrk {wrk_runs[-1]['rps']:.0f}, ours {ours_runs[-1]['rps']:.0f} "
                  f"(w={ours_runs[-1]['workers']}), ours 2 workers {ours2_runs[-1]['rps']:.0f}, "
                  f"ours PP on {ours_on[-1]['rps']:.0f}", flush=True)
        data["max"] = {"wrk": wrk_runs, "ours": ours_runs, "ours_2_workers": ours2_runs, "ours_pp_on": ours_on}

        # 4. median at a fixed moderate rate vs hey -q (and curl --rate)
        rate, conns = 1000, 10
        hey_runs, ours_fixed, curl_runs = [], [], []
        for i in range(rounds):
            hey_runs.append(run_hey(url_off, args.fixed_seconds, conns, rate / conns))
            await asyncio.sleep(1)
            r = (await run_bench(BenchSpec(sides=(side_off,), rates=(float(rate),), duration_s=args.fixed_seconds,
                                           connections=conns, preflight=False))).runs[0]
            ours_fixed.append({"p50_ms": r.latency.ms(50.0), "p90_ms": r.latency.ms(90.0),
                               "service_p50_ms": r.service.ms(50.0) if r.service else None,
                               "achieved": r.achieved_rps, "late_pct": r.late_pct, "errors": r.errors})
            await asyncio.sleep(1)
            curl_runs.append(run_curl(url_off, rate, rate * args.fixed_seconds))
            await asyncio.sleep(1)
            print(f"  fixed round {i}: hey p50 {hey_runs[-1]['p50_ms']:.3f} ms, ours p50 "
                  f"{ours_fixed[-1]['p50_ms']:.3f} ms, curl p50 {curl_runs[-1]['p50_ms']:.3f} ms", flush=True)
        data["fixed"] = {"rate": rate, "connections": conns, "hey": hey_runs, "ours": ours_fixed, "curl": curl_runs}

        # 5. the same rate at a route with a fixed 2 ms server time, on a gateway with precise timers
        proc, endpoints = start_lab_with_env("no-client-ip", base / "no-client-ip-precise", PRECISE_TIMER_ENV)
        labs["precise"] = (proc, endpoints, base / "no-client-ip-precise")
        side_precise = Side("off", gateway_target(load_config(endpoints["config"], env={}), send_pp=False),
                            "lab no-client-ip, EVENT_PRECISE_TIMER=1")
        url_delay = f"http://{side_precise.target.address}{BENCH_DELAY_PATH}"
        await asyncio.sleep(2.0)

        async def delay_round(url: str, side: Side) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
            hey = run_hey(url, args.fixed_seconds, conns, rate / conns)
            await asyncio.sleep(1)
            r = (await run_bench(BenchSpec(sides=(side,), rates=(float(rate),), duration_s=args.fixed_seconds,
                                           connections=conns, path=BENCH_DELAY_PATH, preflight=False))).runs[0]
            ours = {"p50_ms": r.latency.ms(50.0), "p90_ms": r.latency.ms(90.0),
                    "service_p50_ms": r.service.ms(50.0) if r.service else None,
                    "achieved": r.achieved_rps, "late_pct": r.late_pct, "errors": r.errors}
            await asyncio.sleep(1)
            curl = run_curls(url, rate, args.fixed_seconds, conns)
            await asyncio.sleep(1)
            return hey, ours, curl

        hey_runs, ours_fixed, curl_runs = [], [], []
        for i in range(rounds):
            hey, ours, curl = await delay_round(url_delay, side_precise)
            hey_runs.append(hey)
            ours_fixed.append(ours)
            curl_runs.append(curl)
            print(f"  {BENCH_DELAY_PATH} round {i}: hey p50 {hey['p50_ms']:.3f} ms, ours p50 {ours['p50_ms']:.3f} ms, "
                  f"curl p50 {curl['p50_ms']:.3f} ms", flush=True)
        hey, ours, curl = await delay_round(f"http://{side_off.target.address}{BENCH_DELAY_PATH}", side_off)
        print(f"  {BENCH_DELAY_PATH}, default timers: hey p50 {hey['p50_ms']:.3f} ms, ours p50 {ours['p50_ms']:.3f} ms, "
              f"curl p50 {curl['p50_ms']:.3f} ms", flush=True)
        data["fixed_delay"] = {"rate": rate, "connections": conns, "path": BENCH_DELAY_PATH, "delay": BENCH_DELAY,
                               "hey": hey_runs, "ours": ours_fixed, "curl": curl_runs,
                               "coarse": {"hey": hey, "ours": ours, "curl": curl}}

        # 6. hey's own configuration: does it get closer to the C client?
        hey_configs = []
        for route, url in (("/bench", url_off), (BENCH_DELAY_PATH, url_delay)):
            for label, env, extra, c, q in HEY_CONFIGS:
                run = run_hey(url, args.fixed_seconds, c, q, env=env, extra=extra)
                hey_configs.append({"route": route, "config": label, **run})
                print(f"  {label} on {route}: p50 {run['p50_ms']:.3f} ms, {run['rps']:.0f} RPS", flush=True)
                await asyncio.sleep(1)
        data["hey_configs"] = hey_configs
    finally:
        for proc, _endpoints, state_dir in labs.values():
            stop_lab(state_dir, pid=proc.pid)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(base, ignore_errors=True)
    data["load_after"] = loadavg()
    data["pressure_after"] = cpu_pressure()
    return data


def _max_summary(r: RunResult) -> dict[str, Any]:
    return {"rps": r.achieved_rps, "workers": r.workers, "p50_ms": r.latency.ms(50.0), "p99_ms": r.latency.ms(99.0),
            "errors": r.errors}


# --- the report ----------------------------------------------------------------------------

def section(data: dict[str, Any], args: argparse.Namespace) -> str:
    seed = data["seed"]
    runs = {(r["rate"], r["side"]): r for r in seed["runs"]}
    lines = [SECTION, ""]
    lines.append(f"`ppdoctor bench` against the lab gateway (`python benchmarks/bench_pp_latency.py`, {data['started']}). "
                 "PP on = the `healthy` lab's gateway (requires PROXY protocol; the bench sends a PPv2 header per "
                 "connection from 203.0.113.x); PP off = a `no-client-ip` lab's gateway (no PROXY filter), both "
                 "Envoy with one worker answering `GET /bench` itself (VirtualService `directResponse`). Open loop, "
                 "latency from each request's scheduled send time, exact percentiles.")
    lines.append("")
    lines.append(f"### Seed table: keep-alive, 32 connections, {args.duration:g} s per run")
    lines.append("")
    floors = {(f["rate"], f["side"]): f for f in data.get("seed_floors", [])}
    lines.append("| RPS | PP | achieved | p50 ms | p90 ms | p95 ms | p99 ms | max ms | late > 1 ms | unsent | ok | errors "
                 "| workers | floor beside it |")
    lines.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for rate in (1500.0, 2000.0, 4000.0):
        for side in ("off", "on"):
            r = runs.get((rate, side))
            if not r:
                continue
            if r.get("skipped"):
                lines.append(f"| {rate:g} | {side} | skipped | | | | | | | | | | | |")
                continue
            lat = r["latency"]
            errors = {k: v for k, v in r["outcomes"].items() if k != "ok" and v}
            lines.append(
                f"| {rate:g} | {side} | {r['achieved_rps']:.1f} | {ms(lat.get('p50_ms'))} | {ms(lat.get('p90_ms'))} | "
                f"{ms(lat.get('p95_ms'))} | {ms(lat.get('p99_ms'))} | {ms(lat.get('max_ms'))} | "
                f"{r['late']} ({r['late_pct']:.2f} %) | {r['unsent']} | {r['outcomes']['ok']} | "
                f"{sum(errors.values()) or 0}{(' ' + str(errors)) if errors else ''} | {r['workers']} | "
                f"{_floor(floors.get((rate, side)))} |")
    lines.append("")
    fb, fa = data["floor_before"], data["floor_after"]
    lines.append(f"- Environment floor: a process that does nothing but wake on a timerfd (4000×/s alone before and "
                 f"after the table: {fb['late_pct']:.2f} % / {fa['late_pct']:.2f} % of wake-ups > 1 ms late, worst "
                 f"{fb['max_ms']:.1f} / {fa['max_ms']:.1f} ms; 1000×/s *beside* each run: the last column). A bench "
                 "whose late share is close to its floor is losing those sends to the VM's scheduler, not to its own "
                 "work.")
    g1 = [runs.get((4000.0, s)) for s in ("off", "on")]
    held = [r for r in g1 if r and not r.get("skipped") and r["late_pct"] < 1.0 and r["unsent"] == 0
            and abs(r["achieved_rps"] - 4000) < 40]
    for r in data.get("realtime", {}).get("runs", []):
        if r.get("skipped"):
            continue
        lat = r["latency"]
        lines.append(
            f"- Same 4000 RPS run with `--realtime` (load process {r.get('realtime')}), PP {r['side']}: "
            f"achieved {r['achieved_rps']:.1f}, p50/p90/p99 {ms(lat.get('p50_ms'))}/{ms(lat.get('p90_ms'))}/"
            f"{ms(lat.get('p99_ms'))} ms, late {r['late']} ({r['late_pct']:.2f} %), unsent {r['unsent']}; "
            f"floor beside it {_floor(r.get('floor'))}.")
    lines.append(f"- **Goal: hold 4000 RPS for {args.duration:g} s, keep-alive, < 1 % late, PP on and off — "
                 f"{'met' if len(held) == 2 else 'MISSED'}** "
                 f"(off: {_late(g1[0])}, on: {_late(g1[1])}).")
    if len(held) < 2:
        near = [r for r in g1 if r and not r.get("skipped") and r["late_pct"] >= 1.0
                and r["late_pct"] <= _floor_pct(floors.get((4000.0, r["side"]))) + 0.5]
        if near:
            lines.append("  Why: where the bench missed, a process doing nothing but wake 1000×/s beside it was "
                         "about as late (the last column) — the VM's scheduler, not the bench's own work; the "
                         "`--realtime` rows and the quiet run below show the bench holding the schedule.")
    # max
    mx = data["max"]
    wrk_med = statistics.median(r["rps"] for r in mx["wrk"])
    ours_med = statistics.median(r["rps"] for r in mx["ours"])
    ours2_med = statistics.median(r["rps"] for r in mx["ours_2_workers"])
    # each round's ratio compares runs seconds apart; their median resists other load on the machine
    ratios = [o["rps"] / w["rps"] for o, w in zip(mx["ours"], mx["wrk"]) if w["rps"]]
    ratios2 = [o["rps"] / w["rps"] for o, w in zip(mx["ours_2_workers"], mx["wrk"]) if w["rps"]]
    ratio = statistics.median(ratios) if ratios else 0
    lines.append("")
    lines.append(f"### Max throughput vs wrk (PP-off gateway, 32 connections, {args.max_seconds} s, alternating, "
                 f"{len(mx['wrk'])} rounds)")
    lines.append("")
    lines.append("| client | RPS (median) | every round | p50 / p99 ms (median round) |")
    lines.append("|---|---:|---|---|")
    lines.append(f"| wrk -t2 -c32 | {wrk_med:,.0f} | {_join(mx['wrk'], 'rps', '{:,.0f}')} | |")
    w = mx["ours"][0]["workers"]
    lines.append(f"| ppdoctor bench --rate max (auto: {w} worker) | {ours_med:,.0f} | "
                 f"{_join(mx['ours'], 'rps', '{:,.0f}')} | {_pq(mx['ours'])} |")
    lines.append(f"| ppdoctor bench --rate max --workers 2 | {ours2_med:,.0f} | "
                 f"{_join(mx['ours_2_workers'], 'rps', '{:,.0f}')} | {_pq(mx['ours_2_workers'])} |")
    lines.append(f"| ppdoctor bench --rate max, PP on (healthy gateway; wrk cannot send PROXY headers) | "
                 f"{statistics.median(r['rps'] for r in mx['ours_pp_on']):,.0f} | "
                 f"{_join(mx['ours_pp_on'], 'rps', '{:,.0f}')} | {_pq(mx['ours_pp_on'])} |")
    lines.append("")
    lines.append(f"- **Goal: ≥ 75 % of wrk's RPS — {'met' if ratio >= 0.75 else 'MISSED'}** "
                 f"(median of the per-round ratios {100 * ratio:.0f} % with the default worker count — rounds "
                 f"{', '.join(f'{100 * x:.0f} %' for x in ratios)}; ratio of medians {100 * ours_med / wrk_med:.0f} %; "
                 f"{100 * statistics.median(ratios2):.0f} % with 2 workers).")
    # fixed
    fx = data["fixed"]
    hey_p50 = statistics.median(r["p50_ms"] for r in fx["hey"])
    ours_p50 = statistics.median(r["p50_ms"] for r in fx["ours"])
    curl_p50 = statistics.median(r["p50_ms"] for r in fx["curl"])
    svc_p50 = statistics.median(r["service_p50_ms"] for r in fx["ours"] if r["service_p50_ms"] is not None)
    diff = (ours_p50 - hey_p50) / hey_p50 if hey_p50 else float("nan")
    lines.append("")
    lines.append(f"### Median at a fixed {fx['rate']} RPS (PP-off gateway, {args.fixed_seconds} s, alternating, "
                 f"{len(fx['hey'])} rounds)")
    lines.append("")
    lines.append("| client | p50 ms (median of rounds) | every round p50 | p90 ms (median round) | achieved RPS |")
    lines.append("|---|---:|---|---:|---:|")
    lines.append(f"| hey -c {fx['connections']} -q {fx['rate'] // fx['connections']} (Go net/http, closed loop per worker; "
                 f"0.1 ms resolution) | {hey_p50:.3f} | {_join(fx['hey'], 'p50_ms', '{:.3f}')} | "
                 f"{statistics.median(r['p90_ms'] for r in fx['hey']):.3f} | "
                 f"{statistics.median(r['rps'] for r in fx['hey']):.0f} |")
    lines.append(f"| ppdoctor bench --rate {fx['rate']} --connections {fx['connections']} (from schedule) | {ours_p50:.3f} | "
                 f"{_join(fx['ours'], 'p50_ms', '{:.3f}')} | "
                 f"{statistics.median(r['p90_ms'] for r in fx['ours']):.3f} | "
                 f"{statistics.median(r['achieved'] for r in fx['ours']):.0f} |")
    lines.append(f"| ppdoctor bench, same runs, from the actual write | {svc_p50:.3f} | | | |")
    lines.append(f"| curl --rate {fx['rate']}/s, one keep-alive connection (libcurl time_total, µs resolution) | "
                 f"{curl_p50:.3f} | {_join(fx['curl'], 'p50_ms', '{:.3f}')} | "
                 f"{statistics.median(r['p90_ms'] for r in fx['curl']):.3f} | |")
    lines.append("")
    met3 = abs(diff) <= 0.20
    lines.append(f"- **Goal: median within 20 % of hey -q — {'met' if met3 else 'MISSED'}** "
                 f"(ppdoctor {ours_p50:.3f} ms vs hey {hey_p50:.3f} ms: {100 * diff:+.0f} %; "
                 f"vs curl {curl_p50:.3f} ms: {100 * (ours_p50 - curl_p50) / curl_p50:+.0f} %).")
    if not met3:
        lines.append(f"  Why: hey's latency includes the Go HTTP client's goroutine hand-offs (write loop, read "
                     f"loop, channels) and is printed in 0.1 ms steps; the independent C client (curl, one "
                     f"connection, same rate) measures {curl_p50:.3f} ms and ppdoctor's median from the actual "
                     f"write is {svc_p50:.3f} ms ({100 * (svc_p50 - curl_p50) / curl_p50:+.0f} %). The median from "
                     f"the schedule adds the timer's wake-up latency (~{1000 * (ours_p50 - svc_p50):.0f} µs), which "
                     f"an open-loop measurement counts on purpose. The bench does not add overhead to agree with hey.")
    lines += _delay_section(data, args)
    lines.append("")
    lines.append(f"- Machine: {platform.python_implementation()} {platform.python_version()} ({platform.machine()}), "
                 f"{os.cpu_count()} CPUs; Envoy {data.get('envoy', '?')} (one worker per gateway); "
                 f"wrk {data.get('wrk', '?')}, hey {data.get('hey', '?')} (Debian), curl {data.get('curl', '?')}. "
                 f"Load average {data['load_before']:.2f} before, {data['load_after']:.2f} after; "
                 f"CPU pressure after: {data['pressure_after']}.")
    return "\n".join(lines) + "\n"


def _delay_section(data: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """Step 5 (the 2 ms route) and step 6 (hey's configurations); nothing for runs from before they existed."""
    fd = data.get("fixed_delay")
    if not fd:
        return []
    fx = data["fixed"]
    hey_p50 = statistics.median(r["p50_ms"] for r in fd["hey"])
    ours_p50 = statistics.median(r["p50_ms"] for r in fd["ours"])
    curl_p50 = statistics.median(r["p50_ms"] for r in fd["curl"])
    svc = [r["service_p50_ms"] for r in fd["ours"] if r["service_p50_ms"] is not None]
    svc_p50 = statistics.median(svc) if svc else float("nan")
    diff = (ours_p50 - hey_p50) / hey_p50 if hey_p50 else float("nan")
    per = fd["rate"] // fd["connections"]
    delay = re.sub(r"^([\d.]+)\s*([a-zµ]+)$", r"\1 \2", fd["delay"])  # "2ms" → "2 ms"
    lines = ["", f"### Median at a fixed {fd['rate']} RPS on a {delay} route (`{fd['path']}`, PP-off gateway with "
             f"precise timers, {args.fixed_seconds} s, alternating, {len(fd['hey'])} rounds)", ""]
    fx_hey = statistics.median(r["p50_ms"] for r in fx["hey"])
    fx_curl = statistics.median(r["p50_ms"] for r in fx["curl"])
    lines.append(f"Why a second comparison: at `/bench` Envoy answers at once — the C client measures {fx_curl:.3f} ms "
                 f"in all, hey {fx_hey:.3f} ms — so a client's median there is mostly the client itself (hey's Go HTTP "
                 "client, printed in 0.1 ms steps), and the 20 % goal compares client overheads, not the latency a "
                 "user cares about. The lab's VirtualService has a second "
                 f"route, `{fd['path']}`, that the gateway answers itself after a fixed {delay} "
                 f"(`fault.delay.fixedDelay: {fd['delay']}`, translated like istiod to Envoy's fault filter), a "
                 "realistic server time next to which the clients' overheads are small; the same rate, connections "
                 "and alternation as above. Both are shown: the `/bench` result stays as measured (missed), this one "
                 "answers whether the bench agrees with hey once the server, not the client, dominates. Envoy here "
                 "runs with `EVENT_PRECISE_TIMER=1` (a third `no-client-ip` lab): by default its timers read the "
                 "kernel's coarse clock (4 ms ticks on this VM), and the delay then depends on each request's "
                 "arrival phase — the last row shows what that does.")
    lines.append("")
    lines.append("| client | p50 ms (median of rounds) | every round p50 | p90 ms (median round) | achieved RPS |")
    lines.append("|---|---:|---|---:|---:|")
    lines.append(f"| hey -c {fd['connections']} -q {per} (0.1 ms resolution) | {hey_p50:.3f} | "
                 f"{_join(fd['hey'], 'p50_ms', '{:.3f}')} | {statistics.median(r['p90_ms'] for r in fd['hey']):.3f} | "
                 f"{statistics.median(r['rps'] for r in fd['hey']):.0f} |")
    lines.append(f"| ppdoctor bench --rate {fd['rate']} --connections {fd['connections']} --path {fd['path']} "
                 f"(from schedule) | {ours_p50:.3f} | {_join(fd['ours'], 'p50_ms', '{:.3f}')} | "
                 f"{statistics.median(r['p90_ms'] for r in fd['ours']):.3f} | "
                 f"{statistics.median(r['achieved'] for r in fd['ours']):.0f} |")
    lines.append(f"| ppdoctor bench, same runs, from the actual write | {svc_p50:.3f} | | | |")
    lines.append(f"| {fd['connections']} × curl --rate {per}/s, one keep-alive connection each | {curl_p50:.3f} | "
                 f"{_join(fd['curl'], 'p50_ms', '{:.3f}')} | {statistics.median(r['p90_ms'] for r in fd['curl']):.3f} | "
                 f"{statistics.median(r['rps'] for r in fd['curl']):.0f} |")
    co = fd["coarse"]
    lines.append(f"| one round each on the default-timer gateway: hey / ppdoctor / curl | "
                 f"{co['hey']['p50_ms']:.3f} / {co['ours']['p50_ms']:.3f} / {co['curl']['p50_ms']:.3f} | | "
                 f"{co['hey']['p90_ms']:.3f} / {co['ours']['p90_ms']:.3f} / {co['curl']['p90_ms']:.3f} | |")
    lines.append("")
    met = abs(diff) <= 0.20
    gap_here = hey_p50 - ours_p50
    gap_bench = statistics.median(r["p50_ms"] for r in fx["hey"]) - statistics.median(r["p50_ms"] for r in fx["ours"])
    same = abs(gap_here - gap_bench) <= 0.15
    lines.append(f"- **Goal: median within 20 % of hey -q at a {delay} route — {'met' if met else 'MISSED'}** "
                 f"(ppdoctor {ours_p50:.3f} ms vs hey {hey_p50:.3f} ms: {100 * diff:+.0f} %; vs curl {curl_p50:.3f} ms: "
                 f"{100 * (ours_p50 - curl_p50) / curl_p50:+.0f} %). hey − ppdoctor is {1000 * gap_here:.0f} µs here and "
                 f"{1000 * gap_bench:.0f} µs at `/bench`"
                 + (": hey's client overhead stays about the same in absolute terms and is now small next to the "
                    "server's time." if same else "."))
    configs = data.get("hey_configs") or []
    if configs:
        base = {"/bench": statistics.median(r["p50_ms"] for r in fx["hey"]), fd["path"]: hey_p50}
        parts = []
        for route in ("/bench", fd["path"]):
            runs = [r for r in configs if r["route"] == route]
            one = ", ".join(f"`{r['config']}` {r['p50_ms']:.3f} ms ({r['rps']:.0f} RPS)" for r in runs)
            parts.append(f"at `{route}` (default `hey -c {fd['connections']} -q {per}`: {base[route]:.3f} ms) {one}")
        lines.append(f"- hey's configuration, one {args.fixed_seconds} s run each: " + "; ".join(parts) + ". "
                     "`GOMAXPROCS=1` and `-cpus 1` (the same setting: hey's `-cpus` defaults to GOMAXPROCS) keep "
                     "hey's goroutines on one OS thread; `-c 1 -q 1000` is one closed-loop worker that sends the "
                     "next request only after the previous response, so it holds at most 1/latency requests a "
                     "second (the RPS in brackets) — not the same load. Each is one run against the "
                     f"{len(fd['hey'])}-round median above, and hey still prints 0.1 ms steps.")
    return lines


def history(paths: list[Path]) -> str:
    """One line per earlier run: the goals' numbers, so a noisy or a quiet run is not the only one shown."""
    if not paths:
        return ""
    lines = ["", "Earlier runs of this script the same day (same bench code and machine; the floor shows how busy the machine was):", ""]
    for path in paths:
        d = json.loads(path.read_text(encoding="utf-8"))
        runs = {(r["rate"], r["side"]): r for r in d["seed"]["runs"]}
        floors = {(f["rate"], f["side"]): f for f in d.get("seed_floors", [])}
        off, on = runs.get((4000.0, "off")), runs.get((4000.0, "on"))
        rt = {r["side"]: r for r in d.get("realtime", {}).get("runs", [])}
        mx = d["max"]
        ratio = statistics.median(o["rps"] / w["rps"] for o, w in zip(mx["ours"], mx["wrk"]))
        fx = d["fixed"]
        hey = statistics.median(r["p50_ms"] for r in fx["hey"])
        ours = statistics.median(r["p50_ms"] for r in fx["ours"])
        fd = d.get("fixed_delay")
        delay = ""
        if fd:
            dh = statistics.median(r["p50_ms"] for r in fd["hey"])
            do = statistics.median(r["p50_ms"] for r in fd["ours"])
            delay = f"; at `{fd['path']}` {do:.3f} ms vs hey {dh:.3f} ms ({100 * (do - dh) / dh:+.0f} %)"
        lines.append(
            f"- {d['started']} (load {d['load_before']:.2f} → {d['load_after']:.2f}): 4000 RPS late "
            f"{off['late_pct']:.2f} % off / {on['late_pct']:.2f} % on (floor beside "
            f"{_floor(floors.get((4000.0, 'off')))} / {_floor(floors.get((4000.0, 'on')))}; `--realtime` "
            f"{rt['off']['late_pct']:.2f} % / {rt['on']['late_pct']:.2f} %) — "
            f"{'met' if max(off['late_pct'], on['late_pct']) < 1 else 'missed'}; max vs wrk {100 * ratio:.0f} %; "
            f"p50 {ours:.3f} ms vs hey {hey:.3f} ms ({100 * (ours - hey) / hey:+.0f} %){delay}.")
    return "\n".join(lines) + "\n"


def _floor_pct(f: dict[str, Any] | None) -> float:
    return f["late_pct"] if f else 0.0


def _floor(f: dict[str, Any] | None) -> str:
    return "-" if not f else f"{f['late_pct']:.2f} %"


def _join(runs: list[dict[str, Any]], key: str, fmt: str) -> str:
    return ", ".join(fmt.format(r[key]) for r in runs)


def _late(r: dict[str, Any] | None) -> str:
    if not r:
        return "not run"
    if r.get("skipped"):
        return "skipped"
    return f"{r['late_pct']:.2f} % late, {r['unsent']} unsent, achieved {r['achieved_rps']:.1f}"


def _pq(runs: list[dict[str, Any]]) -> str:
    mid = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
    return f"{mid['p50_ms']:.2f} / {mid['p99_ms']:.2f}"


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per seed-table run (default 30)")
    parser.add_argument("--max-seconds", type=int, default=5, help="seconds per max-throughput run")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of the wrk and hey comparisons")
    parser.add_argument("--fixed-seconds", type=int, default=10, help="seconds per fixed-rate run")
    parser.add_argument("--quick", action="store_true", help="short runs, one round (smoke test; not for RESULTS.md)")
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="S",
                        help="wait up to S seconds for the 1-minute load average to drop below --quiet-load")
    parser.add_argument("--quiet-load", type=float, default=1.0)
    parser.add_argument("--output", type=Path, default=RESULTS, help="Markdown file to update")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not write it")
    parser.add_argument("--json-out", type=Path, help="also write the raw measurements here")
    parser.add_argument("--from-json", type=Path, help="do not measure: render (and write) a --json-out file")
    parser.add_argument("--history", type=Path, nargs="*", default=[], metavar="JSON",
                        help="--json-out files of earlier runs: one summary line each under the section")
    parser.add_argument("--floor", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--floor-rate", type=float, default=1000.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor:
        print(json.dumps(asyncio.run(timer_floor(args.floor_rate, args.floor))))
        return 0
    # SIGTERM (and SIGINT, which background shells ignore) stop the run and the labs cleanly
    signal.signal(signal.SIGTERM, _interrupt)
    if args.quick:
        args.duration, args.max_seconds, args.fixed_seconds = 5.0, 3, 3
    for tool in ("wrk", "hey", "curl"):
        if not shutil.which(tool):
            print(f"{tool} is not installed (apt-get install -y {tool})", file=sys.stderr)
            return 2
    if args.from_json:
        text = section(json.loads(args.from_json.read_text(encoding="utf-8")), args) + history(args.history)
        print(text)
        if not args.no_write:
            write_section(args.output, text)
        return 0
    if args.wait_quiet:
        print(f"load average {wait_quiet(args.wait_quiet, args.quiet_load):.2f}", flush=True)
    data = asyncio.run(main_async(args))
    data["envoy"] = envoy_version()
    data["wrk"] = deb_version("wrk")
    data["hey"] = deb_version("hey")
    data["curl"] = tool_version(["curl", "--version"]).split()[1]
    text = section(data, args) + history(args.history)
    print(text)
    if args.json_out:
        args.json_out.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    if not args.no_write and not args.quick:
        write_section(args.output, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
