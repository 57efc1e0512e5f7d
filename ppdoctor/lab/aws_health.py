"""The lab's target health: what its NLB's health checks found, patched into moto's DescribeTargetHealth.

moto reports every registered target ``healthy``; the lab's NLB emulator pushes what its real
checks found into a process-global registry (moto's backends are per process, so the registry
is too), and ``FakeTargetGroup.health_for`` is patched to consult it while a lab moto server runs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

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


class _TargetHealthRegistry:
    """What the lab's health checks found, consulted by the patched ``FakeTargetGroup.health_for``.

    moto keeps its backends per process, so this registry is per process too: every
    ``MotoServer`` in the process shares it. The patch is installed while at least one
    ``MotoServer`` runs and removed when the last one stops.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str, str], TargetHealthRecord] = {}
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

    def acquire(self) -> None:
        from moto.elbv2.models import FakeHealthStatus, FakeTargetGroup

        with self._lock:
            self._servers += 1
            if self._original is not None:
                return
            original = FakeTargetGroup.health_for
            registry = self

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

            self._original = original
            FakeTargetGroup.health_for = health_for  # type: ignore[method-assign]

    def release(self) -> None:
        from moto.elbv2.models import FakeTargetGroup

        with self._lock:
            self._servers = max(0, self._servers - 1)
            if self._servers or self._original is None:
                return
            FakeTargetGroup.health_for = self._original  # type: ignore[method-assign]
            self._original = None
            self._records.clear()
            # moto's backends are per process: the last lab to stop leaves a clean account, so a
            # later lab in the same process (tests, the TUI) can seed the same names again.
            from moto.moto_api._internal.models import moto_api_backend

            moto_api_backend.reset()


_HEALTH = _TargetHealthRegistry()
