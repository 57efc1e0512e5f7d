"""Every probe honours ``timeouts.total``: pointed at a peer that accepts and never answers, it ends on time.

"On time" is measured around ``asyncio.run`` (what ``ppdoctor probe`` does) and around the
``ppdoctor probe --all`` process: a probe whose API call is still blocked in a worker thread
must not keep the run (or the process exit) waiting for it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ppdoctor.config import (
    AwsTarget,
    GatewayTarget,
    KubeTarget,
    NlbTarget,
    TargetConfig,
    Timeouts,
    write_config,
)
from ppdoctor.lab.kubeapi import write_kubeconfig
from ppdoctor.probes import PROBES, ProbeContext, default_probes, run_probe, run_probes
from ppdoctor.probes.model import Status

from . import peers

TOTAL = 1.0
SLACK = 3.0  # loop start-up and teardown, thread start, scheduling on a loaded CI box (API retries take 20+ s)
# Probes that finish on their own against a peer that accepts connections (no reply needed).
ANSWERED_BY_ACCEPT = {"tcp", "syn"}
# Probes that refuse at once when what they must watch cannot fit the budget: they would make a change first
# (rollout restarts the gateway), and a change watched halfway is worse than none.
REFUSED_OVER_BUDGET = {"rollout"}
PPDOCTOR = str(Path(sys.executable).with_name("ppdoctor"))  # the console script of this venv
LB_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/silent/0123456789abcdef"


@pytest.fixture(scope="module")
def silent_config(tmp_path_factory, hostile) -> TargetConfig:
    port = hostile.serve(peers.silence)
    addr = f"127.0.0.1:{port}"
    kubeconfig = tmp_path_factory.mktemp("silent") / "kubeconfig"
    write_kubeconfig(kubeconfig, f"http://{addr}", "not-a-real-token")
    return TargetConfig(
        name="silent",
        nlb=NlbTarget(address=addr, arn=LB_ARN),
        aws=AwsTarget(region="us-east-1", endpoint_url=f"http://{addr}", static_credentials=True),
        kubernetes=KubeTarget(kubeconfig=str(kubeconfig), context="ppdoctor-lab"),
        gateway=GatewayTarget(direct=addr, admin=addr),
        # every layer below would wait longer than the probe deadline
        timeouts=Timeouts(connect=0.5, response=5.0, api=5.0, total=TOTAL),
    )


@pytest.mark.parametrize("name", list(PROBES))
def test_probe_ends_within_total(silent_config, name):
    t0 = time.perf_counter()

    async def one():
        ctx = ProbeContext(silent_config)
        try:
            return await run_probe(name, ctx)
        finally:
            ctx.close()

    obs = asyncio.run(one())
    wall = time.perf_counter() - t0
    assert wall < TOTAL + SLACK, f"{name}: {wall:.2f} s for a {TOTAL} s deadline"
    if name in ANSWERED_BY_ACCEPT:
        assert obs.status in (Status.OK, Status.SKIPPED), obs.as_dict()
    elif name in REFUSED_OVER_BUDGET:
        assert obs.status == Status.ERROR and obs.error["kind"] == "config", obs.as_dict()
        assert "timeouts.total" in obs.error["hint"]
    else:
        assert obs.status == Status.ERROR, obs.as_dict()
        assert obs.error == {"kind": "deadline", "message": obs.summary}
        assert f"within its {TOTAL:g} s deadline" in obs.summary
        assert TOTAL * 0.95 <= obs.timings_ms["probe"] / 1000 <= TOTAL + SLACK


def test_all_probes_together_end_within_total(silent_config):
    t0 = time.perf_counter()
    observations = asyncio.run(run_probes(silent_config))
    wall = time.perf_counter() - t0
    assert wall < TOTAL + SLACK, f"{wall:.2f} s"
    assert [o.probe for o in observations] == default_probes()  # on-demand probes only when named
    stuck = {o.probe for o in observations if o.error and o.error.get("kind") == "deadline"}
    assert stuck == set(default_probes()) - ANSWERED_BY_ACCEPT


def test_explicit_deadline_overrides_total(silent_config):
    t0 = time.perf_counter()
    obs = asyncio.run(run_probe("direct-plain", ProbeContext(silent_config), deadline=0.3))
    assert time.perf_counter() - t0 < 0.3 + SLACK
    assert "within its 0.3 s deadline" in obs.summary


def test_cli_probe_all_exits_on_time(silent_config, tmp_path):
    """The process, not only the coroutine: blocked boto3/kubernetes calls must not hold up the exit."""
    path = tmp_path / "silent.toml"
    write_config(silent_config, path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {"PYTHONDONTWRITEBYTECODE": "1"}
    # Start-up cost of the interpreter and the imports, measured rather than guessed.
    t0 = time.perf_counter()
    subprocess.run([PPDOCTOR, "probe", "--list"], env=env, check=True,
                   capture_output=True, timeout=60)
    startup = time.perf_counter() - t0
    t0 = time.perf_counter()
    proc = subprocess.run([PPDOCTOR, "--config", str(path), "probe", "--all", "--json"],
                          env=env, capture_output=True, text=True, check=False, timeout=60)
    wall = time.perf_counter() - t0
    assert proc.returncode == 1, proc.stderr  # errors (deadlines) → exit 1
    out = json.loads(proc.stdout)
    assert len(out["observations"]) == len(default_probes())
    # boto3/kubernetes/scapy imports happen inside the probes: allow for them, not for the 5 s API timeouts
    assert wall < startup + TOTAL + 2.5, f"probe --all took {wall:.2f} s (interpreter start-up {startup:.2f} s)"
