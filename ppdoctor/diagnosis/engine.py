"""The rule engine: runs the rules over a run's facts, applies supersession, ranks findings, maps them to an exit code."""

from __future__ import annotations

from typing import Iterable

from ..facts import probe_for
from ..probes.model import Observation
from .model import SEVERITY_RANK, FactView, Finding, Rule, gateway_mode
from .rules import CATALOGUE as _CAT
from .rules import RULES as _CATALOGUE_RULES
from .rules_diag import CATALOGUE as _DIAG_CAT
from .rules_diag import META_IDS, META_RULES
from .rules_diag import RULES as _DIAG_RULES

RULES = [*_CATALOGUE_RULES, *_DIAG_RULES]

__all__ = ["Finding", "FactView", "gateway_mode", "probe_for", "diagnose", "exit_code", "INCONCLUSIVE", "UNEXPLAINED",
           "SEVERITY_RANK", "RULES", "CATALOGUE"]

CATALOGUE = {**_CAT, **_DIAG_CAT}


def diagnose(observations: Iterable[Observation], rules: Iterable[Rule] | None = None) -> list[Finding]:
    """Catalogue rules, then supersession, then the engine-level findings (rules_diag.META_RULES), ranked.

    Invariant: every failing observation is explained by a finding (``Finding.explains``) or named
    in PPD090; every probe that could not find out is named in PPD091.
    """
    view = FactView(observations)
    findings = [finding for rule in (rules or RULES) if (finding := rule(view)) is not None]
    for finding in findings:
        if not finding.explains:  # a rule that does not say: the probes its evidence came from
            finding.explains = sorted({probe_for(e["fact"]) for e in finding.evidence if isinstance(e, dict) and "fact" in e}
                                      | {e["source"] for e in finding.evidence if isinstance(e, dict) and e.get("source")})
    by_id = {f.id: f for f in findings}
    for finding in findings:
        for other in finding.supersedes:
            if other in by_id and by_id[other].superseded_by is None:
                by_id[other].superseded_by = finding.id
    if any(f.severity in ("error", "warning") for f in findings):
        findings = [f for f in findings if f.id != "PPD000"]
    for meta in META_RULES:
        if (finding := meta(view, findings)) is not None:
            findings.append(finding)
    findings.sort(key=lambda f: (f.superseded_by is not None, f.id in META_IDS, SEVERITY_RANK[f.severity],
                                 -f.confidence, f.id))
    return findings


INCONCLUSIVE = 3
UNEXPLAINED = 4


def exit_code(findings: list[Finding]) -> int:
    """2 errors found, 4 failures no rule explains (PPD090), 1 warnings, 0 healthy/info, 3 not decided.

    3 ("not decided") is no finding at all, only hypotheses (PPD093), or targets still in their
    initial health checks (PPD092) or a rollout in progress (PPD094) with nothing else decided. No finding is not "healthy":
    PPD000 says that. A script must not read "the probes were denied / mid-rollout" as a pass.
    """
    decided = [f for f in findings if f.id not in META_IDS]
    ids = {f.id for f in findings}
    severities = {f.severity for f in decided}
    if "error" in severities:
        return 2
    if "PPD090" in ids:
        return UNEXPLAINED
    if "warning" in severities:
        return 1
    if not decided or (ids & {"PPD092", "PPD094"} and "PPD000" not in ids):
        return INCONCLUSIVE
    return 0
