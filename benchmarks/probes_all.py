"""`ppdoctor probe --all` wall time against the embedded lab, and the lab's own start-up time.

Run from the repository root: ``python benchmarks/probes_all.py``. Measures

- ``ppdoctor lab up --scenario healthy --detach`` until it returns (the lab is ready), N times
  (each followed by ``lab down``);
- ``run_probes`` (every default probe, concurrently; the on-demand ones are not in ``--all``) in-process, N times in one process — the first
  run pays the imports (boto3, kubernetes, scapy), later ones do not;
- ``ppdoctor --config LAB probe --all --json`` as a subprocess, N times (what an operator waits,
  interpreter start-up included);

against a ``healthy`` lab whose target is already healthy, and writes the
``## Probes and lab start-up`` section of benchmarks/RESULTS.md (other sections are kept).
Goals: probe --all < 2 s on the healthy lab (issue 12; 3 s before the field probes), lab up < 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import write_section  # noqa: E402  (shared with the other benchmarks)

from ppdoctor.probes import default_probes  # noqa: E402  (light: the probe modules load when they run)

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Probes and lab start-up"
SCENARIO = "healthy"
GOAL_PROBES_S = 2.0
GOAL_LAB_UP_S = 10.0
PPDOCTOR = [sys.executable, "-c", "import sys; from ppdoctor.cli import main; sys.exit(main())"]


def _env(state_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "KUBECONFIG"}
    env["XDG_STATE_HOME"] = str(state_home)
    env["XDG_CONFIG_HOME"] = str(state_home / "config")
    return env


def measure_lab_up(n: int, base: Path) -> list[float]:
    times = []
    for i in range(n):
        state_dir = base / f"up-{i}"
        t0 = time.perf_counter()
        proc = subprocess.run([*PPDOCTOR, "lab", "up", "--scenario", SCENARIO, "--json", "--detach",
                               "--state-dir", str(state_dir)], env=_env(base), capture_output=True, text=True,
                              check=False, timeout=120)
        times.append(time.perf_counter() - t0)
        try:
            if proc.returncode != 0:
                raise SystemExit(f"lab up failed: {proc.stderr or proc.stdout}")
            json.loads(proc.stdout)  # the endpoints: the lab is ready
        finally:
            subprocess.run([*PPDOCTOR, "lab", "down", "--state-dir", str(state_dir)], env=_env(base),
                           capture_output=True, check=False, timeout=60)
    return times


def wait_healthy(endpoints: dict, timeout: float = 30.0) -> None:
    import boto3

    elbv2 = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                  region_name=endpoints["region"]).client(
        "elbv2", endpoint_url=endpoints["aws_endpoint_url"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = elbv2.describe_target_health(TargetGroupArn=endpoints["target_group_arn"])
        if all(h["TargetHealth"]["State"] == "healthy" for h in health["TargetHealthDescriptions"]):
            return
        time.sleep(0.3)
    raise SystemExit("the lab's target never became healthy")


def measure_probes(n: int, base: Path) -> tuple[list[float], list[float], dict[str, float], list[str]]:
    from ppdoctor.config import load_config
    from ppdoctor.lab.cli import start_lab, stop_lab
    from ppdoctor.probes import run_probes

    state_dir = base / "probes"
    proc, endpoints = start_lab(SCENARIO, state_dir, owner_pid=os.getpid())
    try:
        wait_healthy(endpoints)
        config = load_config(endpoints["config"], env={})
        in_process, slowest = [], {}
        statuses: list[str] = []
        for _ in range(n):
            t0 = time.perf_counter()
            observations = asyncio.run(run_probes(config))
            in_process.append(time.perf_counter() - t0)
            for o in observations:
                slowest[o.probe] = max(slowest.get(o.probe, 0.0), o.timings_ms.get("probe", 0.0))
            statuses = [f"{o.probe}={o.status.value}" for o in observations]
        subprocess_times = []
        for _ in range(n):
            t0 = time.perf_counter()
            out = subprocess.run([*PPDOCTOR, "--config", endpoints["config"], "probe", "--all", "--json"],
                                 env=_env(base), capture_output=True, text=True, check=False, timeout=120)
            subprocess_times.append(time.perf_counter() - t0)
            expected = len(default_probes())
            if len(json.loads(out.stdout)["observations"]) != expected:
                raise SystemExit(f"probe --all did not return {expected} observations")
        return in_process, subprocess_times, slowest, statuses
    finally:
        stop_lab(state_dir, pid=proc.pid)
        proc.wait(timeout=30)


def _row(label: str, times: list[float], goal: float) -> str:
    med, worst = statistics.median(times), max(times)
    verdict = "met" if worst < goal else ("median only" if med < goal else "missed")
    runs = ", ".join(f"{t:.2f}" for t in times)
    return f"| {label} | {len(times)} | {med:.2f} | {worst:.2f} | < {goal:g} s | {verdict} | {runs} |"


def markdown(lab_up: list[float], in_process: list[float], sub: list[float], slowest: dict[str, float],
             statuses: list[str]) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    top = sorted(slowest.items(), key=lambda kv: -kv[1])[:4]
    lines = [
        SECTION,
        "",
        f"Wall time in seconds against the `{SCENARIO}` lab (`python benchmarks/probes_all.py`).",
        "",
        "| measurement | runs | median | max | goal | result | every run |",
        "|---|---:|---:|---:|---|---|---|",
        _row("`ppdoctor lab up --detach` → ready", lab_up, GOAL_LAB_UP_S),
        _row(f"`run_probes` (all {len(default_probes())}) in-process", in_process, GOAL_PROBES_S),
        _row("`ppdoctor probe --all --json` subprocess", sub, GOAL_PROBES_S),
        "",
        "- In-process: N runs in one process; the first pays the imports of boto3, kubernetes and scapy.",
        "- Subprocess: interpreter start-up and imports included — what an operator waits.",
        ("- Slowest probes (max over the in-process runs, ms): "
         + ", ".join(f"{name} {ms:.0f}" for name, ms in top) + "."),
        f"- Last run: {' '.join(statuses)}.",
        (f"- Python {platform.python_version()} ({platform.machine()}); {os.cpu_count()} CPUs, "
         f"load average {load:.1f} when the run ended."),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="probe --all runs (in-process and subprocess)")
    parser.add_argument("--lab-runs", type=int, default=3, help="lab up runs")
    parser.add_argument("--output", type=Path, default=RESULTS, help="Markdown file to update")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ppdoctor-bench-probes-") as tmp:
        base = Path(tmp)
        lab_up = measure_lab_up(args.lab_runs, base)
        in_process, sub, slowest, statuses = measure_probes(args.runs, base)
    section = markdown(lab_up, in_process, sub, slowest, statuses)
    write_section(args.output, section)
    print(section)
    print(f"wrote the '{SECTION[3:]}' section of {args.output}")
    ok = max(sub) < GOAL_PROBES_S and statistics.median(in_process) < GOAL_PROBES_S and max(lab_up) < GOAL_LAB_UP_S
    print("goals met" if ok else "goals NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
