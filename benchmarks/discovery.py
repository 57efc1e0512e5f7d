"""Discovery of the lab's world: how long `ppdoctor discover` takes from a kubeconfig and an AWS endpoint alone.

Run from the repository root: ``python benchmarks/discovery.py [--runs N]``. Starts a ``healthy`` lab
(two gateways — Helm and Gateway API — two NLBs, listeners 80 and 443 on the first), writes a config
holding only ``[kubernetes] kubeconfig``, ``[aws]`` region/endpoint and the lab's resolver map, and measures

- ``discover()`` in-process, N times in one process (the first run pays the boto3/kubernetes imports
  and client set-up; later runs make fresh clients, as every command does);
- ``ppdoctor --config MIN discover --json`` as a subprocess, N times (interpreter start-up included);

and replaces the ``## Discovery`` section of benchmarks/RESULTS.md. Goal: discovery ≤ 1.5 s.
"""

from __future__ import annotations

import argparse
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
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from results_md import write_section  # noqa: E402  (shared with the other benchmarks)

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Discovery"
GOAL_S = 1.5
PPDOCTOR = [sys.executable, "-c", "import sys; from ppdoctor.cli import main; sys.exit(main())"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    from ppdoctor.config import load_config
    from ppdoctor.lab.cli import start_lab, stop_lab
    from tests.discovery.zeroconfig import minimal_config

    base = Path(tempfile.mkdtemp(prefix="ppdoctor-bench-discovery-"))
    os.environ["XDG_STATE_HOME"] = str(base / "state")
    os.environ["XDG_CONFIG_HOME"] = str(base / "config")
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "KUBECONFIG"):
        os.environ.pop(var, None)
    proc, endpoints = start_lab("healthy", base / "lab", owner_pid=os.getpid())
    try:
        full = load_config(endpoints["config"], env={})
        minimal = minimal_config(full, base / "min.toml")
        from ppdoctor.discovery.engine import discover

        cfg = load_config(minimal, env={})
        inproc = []
        paths = 0
        for _ in range(args.runs):
            t0 = time.perf_counter()
            result = discover(cfg)
            inproc.append(time.perf_counter() - t0)
            paths = len(result.paths)
        cli = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            out = subprocess.run([*PPDOCTOR, "--config", str(minimal), "discover", "--json"], capture_output=True,
                                 text=True, check=True, timeout=60)
            cli.append(time.perf_counter() - t0)
            assert len(json.loads(out.stdout)["paths"]) == paths
    finally:
        stop_lab(base / "lab", pid=proc.pid)
        proc.wait(timeout=30)

    def row(name: str, values: list[float]) -> str:
        ok = "yes" if statistics.median(values) <= GOAL_S else "**no**"
        return (f"| {name} | {min(values):.2f} | {statistics.median(values):.2f} | {max(values):.2f} | {ok} |")

    section = "\n".join([
        SECTION,
        "",
        f"`python benchmarks/discovery.py --runs {args.runs}` — {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs (shared with other work), Python {platform.python_version()}. The lab's world: "
        f"{paths} paths (Helm gateway ports 80 and 443 on one NLB, a Gateway API gateway on another); the config "
        "holds only the kubeconfig, the AWS endpoint/region and the lab's resolver map.",
        "",
        f"| what | min s | median s | max s | ≤ {GOAL_S} s |",
        "|---|---|---|---|---|",
        row("discover() in-process, first run (imports, clients)", inproc[:1]),
        row("discover() in-process, later runs", inproc[1:] or inproc),
        row("`ppdoctor discover --json` (subprocess)", cli),
        "",
    ])
    write_section(RESULTS, section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
