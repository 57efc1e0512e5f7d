"""What a probe returns: an Observation with its status, failure class, timings, raw evidence and facts."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .. import facts as registry


class Status(str, Enum):
    OK = "ok"  # the probe ran and what it tested works
    FAIL = "fail"  # the probe ran and saw the failure it tests for
    SKIPPED = "skipped"  # could not run here (no privilege, nothing configured); says why
    ERROR = "error"  # could not find out (API denied, bad config); says what to do


class FailureClass(str, Enum):
    """The closed set of ways a request ends (DESIGN.md), plus protocol-error for garbage replies."""

    OK = "ok"
    HTTP_4XX = "http-4xx"
    HTTP_5XX = "http-5xx"
    EMPTY_REPLY = "empty-reply"
    RESET = "reset"
    TIMEOUT_CONNECT = "timeout-connect"
    TIMEOUT_RESPONSE = "timeout-response"
    REFUSED = "refused"
    TLS_ERROR = "tls-error"
    DNS_ERROR = "dns-error"
    PROTOCOL_ERROR = "protocol-error"  # bytes came back but they are not HTTP (garbage, endless headers)


@dataclass(frozen=True)
class Fact:
    """One thing a probe established, e.g. ``tg.pp_v2 = True`` from the ELBv2 API."""

    name: str
    value: Any
    source: str  # which probe / API call established it
    note: str = ""  # e.g. "AWS default: attribute absent"

    def as_dict(self) -> dict[str, Any]:
        d = {"value": self.value, "source": self.source}
        if self.note:
            d["note"] = self.note
        return d


@dataclass
class Observation:
    probe: str
    status: Status = Status.OK
    failure_class: FailureClass | None = None
    summary: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Fact] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    error: dict[str, str] | None = None

    def fact(self, name: str, value: Any, note: str = "", *, source: str | None = None) -> None:
        registry.check(name, value, with_value=True)  # declared in ppdoctor/facts.py (strict in tests)
        self.facts[name] = Fact(name, value, source or self.probe, note)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "probe": self.probe,
            "status": self.status.value,
            "failure_class": self.failure_class.value if self.failure_class else None,
            "summary": self.summary,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "facts": {k: f.as_dict() for k, f in self.facts.items()},
            "evidence": self.evidence,
        }
        if self.error:
            out["error"] = self.error
        return out


def failure_for_status(code: int) -> FailureClass:
    if code >= 500:
        return FailureClass.HTTP_5XX
    if code >= 400:
        return FailureClass.HTTP_4XX
    return FailureClass.OK
