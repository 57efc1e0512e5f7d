"""A running lab per scenario for tests: one at a time (a supervisor process), stopped at the end."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ppdoctor.config import TargetConfig, load_config
from ppdoctor.lab.cli import start_lab, stop_lab


class RunningLab:
    def __init__(self, scenario: str, state_dir: Path) -> None:
        self.scenario = scenario
        self.state_dir = state_dir
        self.proc, self._endpoints = start_lab(scenario, state_dir, owner_pid=os.getpid())
        self._config: TargetConfig = load_config(self._endpoints["config"], env={})
        self._stamp = self._endpoints_stamp()

    # A rollout moves the gateway to a new pod address and the lab rewrites its config and lab.json: a later
    # test on the same running lab reads them anew, as `ppdoctor --lab` does.
    def _endpoints_stamp(self) -> int | None:
        path = self.state_dir / "lab.json"
        return path.stat().st_mtime_ns if path.exists() else None

    def _reload(self) -> None:
        stamp = self._endpoints_stamp()
        if stamp is not None and stamp != self._stamp:
            import json

            self._endpoints = json.loads((self.state_dir / "lab.json").read_text(encoding="utf-8"))
            self._config = load_config(self._endpoints["config"], env={})
            self._stamp = stamp

    @property
    def endpoints(self) -> dict[str, Any]:
        self._reload()
        return self._endpoints

    @property
    def config(self) -> TargetConfig:
        self._reload()
        return self._config

    def stop(self) -> None:
        stop_lab(self.state_dir, pid=self.proc.pid)
        self.proc.wait(timeout=20)

    # helpers for tests: the real APIs, as an operator would use them
    def elbv2(self) -> Any:
        import boto3

        return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                     region_name=self.endpoints["region"]).client(
            "elbv2", endpoint_url=self.endpoints["aws_endpoint_url"])

    def kube(self) -> Any:
        from kubernetes import config as kconfig

        return kconfig.new_client_from_config(config_file=self.endpoints["kubeconfig"])

    def wait_health(self, state: str, timeout: float = 25.0) -> list[dict]:
        """Poll DescribeTargetHealth until every registered target is ``state``; assert it at the deadline.

        Targets deregistered by a rollout are listed ``draining`` for the deregistration delay, as on AWS: not counted."""
        from ppdoctor.drain import in_service

        deadline = time.monotonic() + timeout
        while True:
            health = self.elbv2().describe_target_health(TargetGroupArn=self.endpoints["target_group_arn"])
            states = [h["TargetHealth"] for h in in_service(health["TargetHealthDescriptions"])]
            if (states and all(s["State"] == state for s in states)) or time.monotonic() > deadline:
                assert states and all(s["State"] == state for s in states), states
                return states
            time.sleep(0.3)

    def tg_attributes(self) -> dict[str, str]:
        attrs = self.elbv2().describe_target_group_attributes(TargetGroupArn=self.endpoints["target_group_arn"])
        return {a["Key"]: a["Value"] for a in attrs["Attributes"]}


class LabPool:
    """Keeps at most one lab running; asking for another scenario stops the previous one."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.current: RunningLab | None = None

    def get(self, scenario: str, *, fresh: bool = False) -> RunningLab:
        if self.current and (self.current.scenario != scenario or fresh):
            self.current.stop()
            self.current = None
        if self.current is None:
            n = len(list(self.base.glob("*")))
            self.current = RunningLab(scenario, self.base / f"{n:02d}-{scenario}")
        return self.current

    def close(self) -> None:
        if self.current:
            self.current.stop()
            self.current = None


def probe_as_an_operator(config: TargetConfig, default: list[str], on_demand: list[str] = (), ctx: Any = None) -> list:
    """The default probes, then the on-demand ones — `ppdoctor diagnose`, then `ppdoctor probe X` — after waiting
    out a rollout an earlier on-demand `rollout` probe made (what PPD094 tells an operator to do).

    Run together, a request of the default probes could meet the rollout's own replaced pod; run right after
    another rollout, it could meet the one before (the NLB's propagation window, lab time)."""
    import asyncio

    from ppdoctor.probes import run_probes

    if "rollout" in on_demand:
        settle_rollouts(config)
    observations = asyncio.run(run_probes(config, list(default), ctx=ctx))
    if on_demand:
        observations += asyncio.run(run_probes(config, list(on_demand), ctx=ctx))
    return observations


def settle_rollouts(config: TargetConfig) -> None:
    """Sleep until the NLB no longer sends new flows to gateway pods replaced by a rollout (diagnose_settled's
    reading: the newest pod's start, and the Terminating pods' deletion)."""
    import asyncio

    from ppdoctor.diagnosis.model import FactView
    from ppdoctor.fixes.apply import replaced_pods_routed_s
    from ppdoctor.probes import run_probes

    observations = asyncio.run(run_probes(config, ["kube"]))
    wait = max(replaced_pods_routed_s(observations, config.nlb.time_scale),
               FactView(observations).get("gateway.replaced_routed_s") or 0.0)
    time.sleep(wait)  # a documented window (lab time): nothing observable ends it sooner
