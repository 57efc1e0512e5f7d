"""Which fixes the findings suggest: the fix ids of the actionable findings, in rank order."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..diagnosis.model import Finding

ACTIONABLE = ("error", "warning", "info")  # severities whose fixes are offered ("ok" findings have none to offer)


def suggest_fixes(findings: Iterable[Finding]) -> list[tuple[str, str]]:
    """(fix id, finding id) for every fix of a finding that is actionable and not superseded; each fix once."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for finding in findings:
        if finding.superseded_by is None and finding.severity in ACTIONABLE:
            for fix in finding.fixes:
                if fix not in seen:
                    seen.add(fix)
                    out.append((fix, finding.id))
    return out
