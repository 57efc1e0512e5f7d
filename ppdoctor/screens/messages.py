"""Messages between the engine bridge, the app and the screens: small dataclasses, handled with ``@on``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textual.message import Message

from ..config import TargetConfig
from ..diagnosis.model import Finding
from ..probes.model import Observation
from ..session import TimelineEvent

if TYPE_CHECKING:  # the bench and fixes packages load when first used, not at start-up
    from ..bench import BenchProgress, BenchResult, BenchSpec, RunResult
    from ..fixes.apply import ApplyResult
    from ..fixes.model import FixPlan


@dataclass
class ProbeStarted(Message):
    name: str


@dataclass
class ProbeFinished(Message):
    observation: Observation


@dataclass
class ProbeCancelled(Message):
    name: str


@dataclass
class FindingsReady(Message):
    findings: list[Finding]


@dataclass
class PlanReady(Message):
    plan: FixPlan


@dataclass
class ApplyProgress(Message):
    text: str


@dataclass
class ApplyFinished(Message):
    result: ApplyResult


@dataclass
class RollbackFinished(Message):
    done: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TimelineEventAdded(Message):
    event: TimelineEvent


@dataclass
class LabProgress(Message):
    text: str


@dataclass
class LabReady(Message):
    endpoints: dict[str, Any]
    config: TargetConfig


@dataclass
class LabFailed(Message):
    error: str


@dataclass
class ReportWritten(Message):
    path: str
    size: int


@dataclass
class ReportPreview(Message):
    fmt: str
    text: str


@dataclass
class EngineFailed(Message):
    """A worker failed unexpectedly; shown in an error modal."""

    title: str
    error: str


# --- the bench: one message per kind of update (BenchController.handle) ---------------------------

@dataclass
class BenchStatus(Message):
    """What the bench is doing now (preflight, starting a companion lab)."""

    text: str


@dataclass
class BenchPlanned(Message):
    """The runs are decided: sides × rates."""

    spec: BenchSpec


@dataclass
class BenchProgressed(Message):
    """About twice a second during a run."""

    progress: BenchProgress


@dataclass
class BenchRunDone(Message):
    run: RunResult


@dataclass
class BenchFinished(Message):
    result: BenchResult


@dataclass
class BenchFailed(Message):
    error: str


BenchUpdate = BenchStatus | BenchPlanned | BenchProgressed | BenchRunDone | BenchFinished | BenchFailed
