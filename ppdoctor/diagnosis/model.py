"""The diagnosis data model: Finding, FactView (the facts of a run), gateway_mode and the severities.

Rules (``rules*.py``) import this module; the engine imports the rules — no cycle. A
FactView reads facts by their registered names (``ppdoctor/facts.py``); in strict mode
(tests) reading an undeclared name raises. ``FactView.from_values`` builds one from a plain
mapping, for table-driven rule tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from .. import facts as registry
from ..probes.model import Fact, Observation

SEVERITIES = ("error", "warning", "info", "ok")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass
class Finding:
    id: str
    title: str
    severity: str
    confidence: float
    explanation: str
    evidence: list[dict[str, Any]] = field(default_factory=list)
    confirm: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    supersedes: list[str] = field(default_factory=list)
    superseded_by: str | None = None
    # probes whose failing observations this finding accounts for (the engine's "nothing unexplained" check)
    explains: list[str] = field(default_factory=list)
    # other catalogue ids the same evidence allows while facts are missing, most likely first
    alternatives: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = {
            "id": self.id, "severity": self.severity, "confidence": round(self.confidence, 2), "title": self.title,
            "explanation": self.explanation, "evidence": self.evidence, "fixes": self.fixes,
            "confirm": self.confirm,
        }
        if self.superseded_by:
            d["superseded_by"] = self.superseded_by
        if self.alternatives:
            d["alternatives"] = self.alternatives
        return d

    @property
    def ranked(self) -> list[str]:
        """This finding's id followed by the alternatives the evidence leaves open."""
        return [self.id, *self.alternatives]


class FactView:
    """Facts of a run by name; remembers which ones a rule used so they become its evidence."""

    def __init__(self, observations: Iterable[Observation]) -> None:
        self.facts: dict[str, Fact] = {}
        self.ran: set[str] = set()
        self.errors: dict[str, str] = {}
        # facts a partially blocked probe could not read (evidence "unavailable": the refused call, its IAM action)
        self.unread: dict[str, dict[str, Any]] = {}
        self.observations: list[Observation] = []
        for obs in observations:
            self.observations.append(obs)
            self.ran.add(obs.probe)
            if obs.status.value == "error":
                self.errors[obs.probe] = obs.summary
            for gap in obs.evidence.get("unavailable") or []:
                for name in gap.get("facts", ()):
                    self.unread.setdefault(name, gap)
            self.facts.update(obs.facts)

    @classmethod
    def from_values(cls, values: Mapping[str, Any], *, errors: Mapping[str, str] | None = None) -> "FactView":
        """A view over hand-built facts (name → value), each attributed to the probe the registry names."""
        view = cls(())
        for name, value in values.items():
            registry.check(name, value, with_value=True)
            view.facts[name] = Fact(name, value, registry.probe_for(name))
            view.ran.add(registry.probe_for(name))
        view.errors.update(errors or {})
        view.ran.update(view.errors)
        return view

    def has(self, name: str) -> bool:
        registry.check(name)
        return name in self.facts and self.facts[name].value is not None

    def get(self, name: str, default: Any = None) -> Any:
        registry.check(name)
        fact = self.facts.get(name)
        return default if fact is None or fact.value is None else fact.value

    def evidence(self, *names: str) -> list[dict[str, Any]]:
        out = []
        for name in names:
            registry.check(name)
            fact = self.facts.get(name)
            if fact is not None and fact.value is not None:
                ev = {"fact": name, "value": fact.value, "source": fact.source}
                if fact.note:
                    ev["note"] = fact.note
                out.append(ev)
        return out

    def missing(self, *names: str) -> list[str]:
        """'run `probe` to confirm' lines for facts not established yet; when the probe was refused, the permission."""
        lines = []
        for name in names:
            if not self.has(name):
                probe = registry.probe_for(name)
                gap = self.unread.get(name)
                if gap is not None:
                    line = (f"{name} unknown: `{probe}` was refused {gap.get('action')} ({gap.get('kind')}); "
                            f"IAM {gap.get('action')} would confirm it")
                elif probe in self.errors:
                    perm = registry.permission_for(name)
                    line = (f"{name} unknown: `{probe}` could not run ({self.errors[probe]})"
                            + (f"; {perm} would confirm it" if perm else ""))
                else:
                    line = f"run `{probe}` to establish {name}"
                if line not in lines:
                    lines.append(line)
        return lines

    def missing_count(self, *names: str) -> int:
        return sum(1 for n in names if not self.has(n))

    def failing(self) -> list[Observation]:
        """Observations whose probe saw the failure it tests for."""
        return [o for o in self.observations if o.status.value == "fail"]


def gateway_mode(f: FactView) -> tuple[str | None, list[str]]:
    """Does the gateway expect PROXY protocol: "required", "optional", "off", or None (unknown)?

    Decided by the differential direct probes when they ran; otherwise by the running
    Envoy config (envoy probe). Returns the mode and the facts that decided it.
    """
    plain, ppv2 = f.get("gateway.plain_result"), f.get("gateway.ppv2_result")
    if plain is not None and ppv2 is not None:
        plain_ok, ppv2_ok = plain == "ok", ppv2 == "ok"
        if plain_ok and ppv2_ok:
            return "optional", ["gateway.plain_result", "gateway.ppv2_result"]
        if ppv2_ok and plain in ("reset", "empty-reply", "timeout-response"):
            return "required", ["gateway.plain_result", "gateway.ppv2_result"]
        if plain_ok and ppv2 == "http-4xx":
            return "off", ["gateway.plain_result", "gateway.ppv2_result"]
    if f.has("gateway.pp_live"):
        if not f.get("gateway.pp_live"):
            return "off", ["gateway.pp_live"]
        return ("optional" if f.get("gateway.pp_allow_without") else "required"), ["gateway.pp_live", "gateway.pp_allow_without"]
    return None, []


Rule = Callable[[FactView], "Finding | None"]
