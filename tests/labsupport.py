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
        self.proc, self.endpoints = start_lab(scenario, state_dir, owner_pid=os.getpid())
        self.config: TargetConfig = load_config(self.endpoints["config"], env={})

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
