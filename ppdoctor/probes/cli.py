"""``ppdoctor probe``: run one probe or all of them headless, as text or JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from . import PROBES, Status, default_probes, run_probes

_MARK = {Status.OK: "ok  ", Status.FAIL: "FAIL", Status.SKIPPED: "skip", Status.ERROR: "ERR "}


def run(args: argparse.Namespace) -> int:
    if args.list:
        for info in PROBES.values():
            print(f"{info.name:<13} {info.description}")
        return 0
    if not args.all and not args.name:
        print("ppdoctor probe: name a probe or pass --all (`ppdoctor probe --list` shows them)")
        return 2
    from ..discovery.target import config_for_args

    if not args.all and args.name not in PROBES:
        print(f"ppdoctor probe: no probe named {args.name!r} (`ppdoctor probe --list` shows them)")
        return 2
    config = config_for_args(args)  # no complete config file: discover the path
    names = default_probes() if args.all else [args.name]
    from ..session import IncidentSession

    session = IncidentSession.open(config, by="cli probe")
    if not _confirmed(session, config, [PROBES[n] for n in names if PROBES[n].changes], args):
        return 1
    observations = asyncio.run(run_probes(config, names))
    session.adopt_observations(observations)  # the run joins the incident
    if args.json:
        print(json.dumps({"observations": [o.as_dict() for o in observations]}, indent=2, default=str))
    else:
        for obs in observations:
            fc = f" [{obs.failure_class.value}]" if obs.failure_class and obs.failure_class.value != "ok" else ""
            print(f"{_MARK[obs.status]} {obs.probe:<13}{fc} {obs.summary}")
            if args.verbose:
                for fact in obs.facts.values():
                    note = f"  ({fact.note})" if fact.note else ""
                    print(f"       {fact.name} = {fact.value!r}{note}")
    return 1 if any(o.status == Status.ERROR for o in observations) else 0


def _confirmed(session, config, changing: list, args: argparse.Namespace) -> bool:
    """A probe that changes the target (``ProbeInfo.changes``) runs only after a yes, recorded in the incident."""
    from ..ask import confirm, confirmed_by

    out = sys.stderr if args.json else sys.stdout  # --json keeps standard output for the JSON alone
    for info in changing:
        print(f"probe {info.name} {info.changes} — target {config.name}", file=out)
        if not confirm(f"Run probe {info.name}?", assume_yes=args.yes, action="run it"):
            session.note(f"probe {info.name} declined by the user; nothing was changed")
            print("declined: nothing was changed", file=out)
            return False
        who = confirmed_by(args.yes)
        session.record("confirm", f"probe {info.name} ({info.changes}): confirmed by {who}", action="probe",
                       confirmed=True, who=who, probe=info.name)
    return True
