"""The lab's target health: what its NLB's health checks found, patched into moto's DescribeTargetHealth.

moto reports every registered target ``healthy``; the lab's NLB emulator pushes what its real
checks found into a process-global registry (moto's backends are per process, so the registry
is too), and ``FakeTargetGroup.health_for`` is patched to consult it while a lab moto server runs.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from ..constants import ATTR_DEREGISTRATION_DELAY, NLB_DEFAULT_DEREGISTRATION_DELAY_S

TARGET_STATES = ("initial", "healthy", "unhealthy", "unused", "draining", "unavailable")


@dataclass(frozen=True)
class TargetHealthRecord:
    """One target's health as DescribeTargetHealth reports it (State, Reason, Description)."""

    state: str
    reason: str | None = None
    description: str | None = None


# Reason codes: Elastic Load Balancing API Reference, "TargetHealth". For Network Load
# Balancers every failed check is Target.FailedHealthChecks ("Check the health of your Network
# Load Balancer targets"); Target.ResponseCodeMismatch and Target.Timeout apply only to
# Application and Gateway Load Balancers. Descriptions are the texts AWS puts beside them.
HEALTH_REGISTRATION = TargetHealthRecord(
    "initial", "Elb.RegistrationInProgress", "Target registration is in progress"
)
HEALTH_INITIAL = TargetHealthRecord(
    "initial", "Elb.InitialHealthChecking", "Initial health checks in progress"
)
HEALTH_HEALTHY = TargetHealthRecord("healthy")
HEALTH_FAILED = TargetHealthRecord("unhealthy", "Target.FailedHealthChecks", "Health checks failed")
# A deregistered target for the target group's deregistration delay (API Reference, "TargetHealth";
# "Deregistration delay" in "Edit target group attributes for your Network Load Balancer").
HEALTH_DRAINING = TargetHealthRecord(
    "draining", "Target.DeregistrationInProgress", "Target deregistration is in progress"
)


def deregistration_delay(attributes: dict[str, str]) -> float:
    """The target group's ``deregistration_delay.timeout_seconds`` (AWS's default 300 s when unset or unreadable)."""
    value = str(attributes.get(ATTR_DEREGISTRATION_DELAY, NLB_DEFAULT_DEREGISTRATION_DELAY_S))
    return float(value) if value.isdigit() else float(NLB_DEFAULT_DEREGISTRATION_DELAY_S)


class _TargetHealthRegistry:
    """What the lab's health checks found, consulted by the patched ``FakeTargetGroup.health_for``.

    moto keeps its backends per process, so this registry is per process too: every
    ``MotoServer`` in the process shares it. The patch is installed while at least one
    ``MotoServer`` runs and removed when the last one stops.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str, str], TargetHealthRecord] = {}
        # (target group ARN, target id) → (monotonic time of DeregisterTargets, port): moto forgets the target
        # at once, AWS lists it as draining until the deregistration delay ends.
        self._deregistered: dict[tuple[str, str], tuple[float, int]] = {}
        # target group ARN → the lab's time factor for it (its NLB emulator's): AWS time (1.0) unless set
        self._time_scale: dict[str, float] = {}
        self._servers = 0
        self._original: Any = None

    @staticmethod
    def key(tg_arn: str, target_id: str, port: int | str) -> tuple[str, str, str]:
        return (tg_arn, str(target_id), str(int(port)))

    def set(self, tg_arn: str, target_id: str, port: int | str, record: TargetHealthRecord) -> None:
        with self._lock:
            self._records[self.key(tg_arn, target_id, port)] = record

    def clear(self, tg_arn: str, target_id: str, port: int | str) -> None:
        with self._lock:
            self._records.pop(self.key(tg_arn, target_id, port), None)

    def get(self, tg_arn: str, target_id: str, port: int | str) -> TargetHealthRecord:
        with self._lock:
            return self._records.get(self.key(tg_arn, target_id, port), HEALTH_INITIAL)

    def set_time_scale(self, tg_arn: str, scale: float) -> None:
        with self._lock:
            self._time_scale[tg_arn] = scale

    def draining(self, tg: Any, now: float) -> list[tuple[str, int]]:
        """Targets of ``tg`` (a moto FakeTargetGroup) deregistered less than its delay ago, in lab time."""
        with self._lock:
            delay = deregistration_delay({k: str(v) for k, v in tg.attributes.items()}) * self._time_scale.get(tg.arn, 1.0)
            for key in [k for k, (t, _) in self._deregistered.items() if now >= t + delay]:
                if key[0] == tg.arn:
                    del self._deregistered[key]
            return [(tid, port) for (arn, tid), (_, port) in self._deregistered.items()
                    if arn == tg.arn and tid not in tg.targets]

    def acquire(self) -> None:
        from moto.elbv2.models import ELBv2Backend, FakeHealthStatus, FakeTargetGroup

        with self._lock:
            self._servers += 1
            if self._original is not None:
                return
            original = FakeTargetGroup.health_for
            original_deregister = FakeTargetGroup.deregister
            original_describe = ELBv2Backend.describe_target_health
            registry = self

            def deregister(tg: Any, targets: list[dict[str, Any]]) -> None:
                ports = {t["Id"]: int(tg.targets[t["Id"]]["Port"]) for t in targets if t["Id"] in tg.targets}
                original_deregister(tg, targets)
                now = time.monotonic()
                with registry._lock:
                    for tid, port in ports.items():
                        registry._deregistered[(tg.arn, tid)] = (now, port)

            def describe_target_health(backend: Any, target_group_arn: str, targets: list[dict[str, Any]]) -> Any:
                statuses = original_describe(backend, target_group_arn, targets)
                if targets:
                    return statuses
                # AWS lists a deregistered target as draining until the delay ends; moto has forgotten it.
                tg = backend.target_groups[target_group_arn]
                hc_port = tg.health_check_port
                return statuses + [
                    FakeHealthStatus(tid, port, str(port) if hc_port in (None, "traffic-port") else hc_port,
                                     HEALTH_DRAINING.state, HEALTH_DRAINING.reason, HEALTH_DRAINING.description)
                    for tid, port in registry.draining(tg, time.monotonic())]

            def health_for(tg: Any, target: dict[str, Any], ec2_backend: Any) -> Any:
                status = original(tg, target, ec2_backend)
                # Unregistered, draining, stopped instances: moto's own answer stands.
                if status.status != "healthy":
                    return status
                record = registry.get(tg.arn, status.instance_id, status.port)
                # AWS reports the health-check port as a number, "traffic-port" resolved.
                hc_port = status.health_check_port
                if hc_port in (None, "traffic-port"):
                    hc_port = str(status.port)
                return FakeHealthStatus(
                    status.instance_id,
                    status.port,
                    hc_port,
                    record.state,
                    record.reason,
                    record.description,
                )

            self._original = (original, original_deregister, original_describe)
            FakeTargetGroup.health_for = health_for  # type: ignore[method-assign]
            FakeTargetGroup.deregister = deregister  # type: ignore[method-assign]
            ELBv2Backend.describe_target_health = describe_target_health  # type: ignore[method-assign]

    def release(self) -> None:
        from moto.elbv2.models import ELBv2Backend, FakeTargetGroup

        with self._lock:
            self._servers = max(0, self._servers - 1)
            if self._servers or self._original is None:
                return
            (FakeTargetGroup.health_for, FakeTargetGroup.deregister,  # type: ignore[method-assign]
             ELBv2Backend.describe_target_health) = self._original  # type: ignore[method-assign]
            self._original = None
            self._records.clear()
            self._deregistered.clear()
            self._time_scale.clear()
            # moto's backends are per process: the last lab to stop leaves a clean account, so a
            # later lab in the same process (tests, the TUI) can seed the same names again.
            from moto.moto_api._internal.models import moto_api_backend

            moto_api_backend.reset()


_HEALTH = _TargetHealthRegistry()
