"""``ppdoctor diagnose``: run the probes, apply the rules, print findings ranked (exit codes: engine.exit_code)."""

from __future__ import annotations

import argparse
import asyncio
import json

from ..probes.model import Status
from ..text import clean
from .engine import exit_code

_SEVERITY = {"error": "ERROR", "warning": "WARN ", "info": "info ", "ok": "ok   "}


def print_findings(findings, *, verbose: bool = False, observations=()) -> None:
    if not findings:
        print("no finding: no rule could decide from what the probes established (exit status 3)")
        blocked = [o for o in observations if o.status in (Status.ERROR, Status.SKIPPED)]
        for obs in blocked:
            print(f"      {obs.status.value}: {obs.probe}: {clean(obs.summary, limit=300)}")
            hint = (obs.error or {}).get("hint") if isinstance(obs.error, dict) else None
            if hint:
                print(f"        → {clean(hint, limit=300)}")
        print("      next: " + ("fix what kept the probes above from running, then diagnose again; " if blocked else "")
              + "right after a change, a rollout may still be settling — diagnose again in a few seconds; "
                "`ppdoctor probe --all -v` shows every observation")
    for finding in findings:
        note = f" (explained by {finding.superseded_by})" if finding.superseded_by else ""
        print(f"{_SEVERITY[finding.severity]} {finding.id} {finding.title} [confidence {finding.confidence:.2f}]{note}")
        print(f"      {finding.explanation}")
        if verbose:
            for ev in finding.evidence:
                print(f"      - {ev['fact']} = {ev['value']!r} ({ev['source']})")
        for line in finding.confirm:
            print(f"      ? {line}")
        if finding.alternatives:
            print(f"      {'ranked' if finding.id == 'PPD093' else 'or, with the missing facts'}: "
                  f"{', '.join(finding.alternatives)}")
        if finding.fixes:
            print(f"      fixes: {', '.join(finding.fixes)}")


def run(args: argparse.Namespace) -> int:
    from ..session import IncidentSession

    from ..discovery.target import config_for_args

    config = config_for_args(args)  # no complete config file: discover the path
    session = IncidentSession.open(config, by="cli diagnose")  # the run and its verdict join the incident record
    observations = asyncio.run(session.probe_all())
    findings = session.diagnose()
    if args.json:
        print(json.dumps({"findings": [f.as_dict() for f in findings],
                          "observations": [o.as_dict() for o in observations]}, indent=2, default=str))
    else:
        print_findings(findings, verbose=args.verbose, observations=observations)
    return exit_code(findings)
