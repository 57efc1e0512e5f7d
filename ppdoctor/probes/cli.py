"""``ppdoctor probe``: run one probe or all of them headless, as text or JSON."""

from __future__ import annotations

import argparse
import asyncio
import json

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

    config = config_for_args(args)  # no complete config file: discover the path
    names = default_probes() if args.all else [args.name]
    observations = asyncio.run(run_probes(config, names))
    from ..session import IncidentSession

    IncidentSession.open(config, by="cli probe").adopt_observations(observations)  # the run joins the incident
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
