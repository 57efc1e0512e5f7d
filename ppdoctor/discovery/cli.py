"""``ppdoctor discover``: list every candidate client-IP path; ``--write FILE`` saves the chosen one as a config."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config import load_config, write_config
from ..text import clean as plain
from .engine import discover
from .target import candidate_config, choose


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    result = discover(cfg)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        _print_text(result)
    if args.write:
        chosen = choose(result, gateway=args.gateway, port=args.port)
        out = Path(args.write)
        write_config(candidate_config(chosen, cfg), out)
        print(f"wrote {out} ({chosen.label()})", file=sys.stderr)
    if not result.paths:
        return 2
    return 0


def _print_text(result) -> None:  # noqa: ANN001 - Discovery
    if result.paths:
        print(f"{len(result.paths)} client-IP path(s):")
    for c in result.paths:
        print(f"  {plain(c.label())}")
        print(f"    service {plain(c.service)} port {c.port} → target port {c.target_port}; "
              f"listener {c.listener_port}; target group {plain(c.target_group_arn)} ({c.target_type})")
        print(f"    NLB {plain(c.nlb['dns_name'])} ({c.nlb['scheme']}, {c.region}); "
              f"deployment {plain(c.deployment) or '?'}; pods {', '.join(plain(p) for p in c.pods) or 'none'}")
        print(f"    choose with: --gateway {plain(c.gateway.ref())} --port {c.port}")
    for note in result.notes:
        print(f"note: {plain(note)}")
    for p in result.problems:
        print(f"problem: {plain(p.where)}: {plain(p.message)}")
        if p.hint:
            print(f"  next: {plain(p.hint)}")
