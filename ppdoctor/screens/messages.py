"""Messages between the engine bridge, the app and the screens: small dataclasses, handled with ``@on``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from ..config import TargetConfig
from ..diagnosis.engine import Finding
from ..probes.model import Observation
from ..session import TimelineEvent


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
    plan: Any  # FixPlan


@dataclass
class ApplyProgress(Message):
    text: str


@dataclass
class ApplyFinished(Message):
    result: Any  # ApplyResult


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


@dataclass
class BenchUpdate(Message):
    """Something happened in the bench: ``kind`` is status | progress | run | finished | failed."""

    kind: str
    payload: Any = None
