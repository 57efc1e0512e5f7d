"""The rule engine: runs the rules over a run's facts, applies supersession, ranks findings, maps them to an exit code."""

from __future__ import annotations

from typing import Iterable

from ..facts import probe_for
from ..probes.model import Observation
from .model import SEVERITY_RANK, FactView, Finding, Rule, gateway_mode
from .rules import RULES

__all__ = ["Finding", "FactView", "gateway_mode", "probe_for", "diagnose", "exit_code", "INCONCLUSIVE", "SEVERITY_RANK"]


def diagnose(observations: Iterable[Observation], rules: Iterable[Rule] | None = None) -> list[Finding]:
    view = FactView(observations)
    findings = [finding for rule in (rules or RULES) if (finding := rule(view)) is not None]
    by_id = {f.id: f for f in findings}
    for finding in findings:
        for other in finding.supersedes:
            if other in by_id and by_id[other].superseded_by is None:
                by_id[other].superseded_by = finding.id
    if any(f.severity in ("error", "warning") for f in findings):
        findings = [f for f in findings if f.id != "PPD000"]
    findings.sort(key=lambda f: (f.superseded_by is not None, SEVERITY_RANK[f.severity], -f.confidence, f.id))
    return findings


INCONCLUSIVE = 3


def exit_code(findings: list[Finding]) -> int:
    """0 when only PPD000/info, 1 for warnings, 2 for errors, 3 when no rule could decide.

    No finding is not "healthy": PPD000 says that. A script must not read "the probes were
    denied / the gateway is mid-rollout" as a pass.
    """
    if not findings:
        return INCONCLUSIVE
    severities = {f.severity for f in findings}
    if "error" in severities:
        return 2
    if "warning" in severities:
        return 1
    return 0
