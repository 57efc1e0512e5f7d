"""``ppdoctor incident list | show [ID] | new | close [--note TEXT] | note TEXT``: the target's incident records."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ..config import load_config
from ..text import clean
from . import IncidentLog, TargetIncidents, all_targets, close, incidents_for, open_current, target_identity
from .journal import age, outstanding_changes

BY = "cli incident"


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at else "-"


def _target(args: argparse.Namespace) -> tuple[Any, TargetIncidents]:
    config = load_config(args.config)
    return config, incidents_for(config)


def run_list(args: argparse.Namespace) -> int:
    targets = list(all_targets()) if args.all else [_target(args)[1]]
    rows = []
    now = time.time()
    for target in targets:
        for info in target.infos():
            pending = len(outstanding_changes(IncidentLog(info.path).read().entries))
            rows.append(
                {
                    "id": info.id,
                    "target": target.label,
                    "target_key": target.key,
                    "open": info.open,
                    "opened_at": info.opened_at,
                    "closed_at": info.closed_at,
                    "entries": info.count,
                    "changes_not_rolled_back": pending,
                    "close_note": info.close_note,
                    "path": str(info.path),
                }
            )
    if args.json:
        print(json.dumps({"incidents": rows}, indent=2))
        return 0
    if not rows:
        print("no incident recorded for " + ("any target" if args.all else targets[0].label))
        return 0
    for r in rows:
        state = "open" if r["open"] else f"closed {age(now - r['closed_at'])} ago"
        print(
            f"{r['id']}  {state:<16} opened {_when(r['opened_at'])}  {r['entries']:>4} entries  "
            f"{r['changes_not_rolled_back']} change(s) in place  {clean(r['target'], limit=120)}"
        )
    return 0


def run_show(args: argparse.Namespace) -> int:
    _, target = _target(args)
    if args.id:
        log = target.find(args.id)
    else:
        log = target.current(create=False)
        if log is None:
            logs = target.logs()
            if not logs:
                print(f"no incident recorded for {target.label}", file=sys.stderr)
                return 1
            log = logs[-1]
    result = log.read()
    for problem in result.problems:
        print(f"ppdoctor: {'warning' if problem.kind == 'torn' else 'error'}: {problem}", file=sys.stderr)
    if args.json:
        for e in result.entries:
            print(json.dumps(e, default=str, ensure_ascii=False))
    else:
        print(f"incident {log.id} — {clean(target.label, limit=200)}  ({log.path})")
        t0 = float(result.entries[0]["at"]) if result.entries else 0.0
        for e in result.entries:
            by = f" ({clean(str(e.get('by')), limit=40)})" if e.get("by") else ""
            print(
                f"  +{float(e['at']) - t0:9.2f} s  {_when(float(e['at']))}  [{clean(str(e.get('kind')), limit=12)}]"
                f"{by} {clean(str(e.get('summary', '')), limit=300)}"
            )
    return 2 if result.corrupt else 0


def run_new(args: argparse.Namespace) -> int:
    config, target = _target(args)
    _, _, instance = target_identity(config)
    log, closed = target.new(
        by=BY, meta={"instance": instance, "config": config.path, "name": config.name}, note=args.note
    )
    if closed is not None:
        print(f"closed incident {closed.id}")
    print(f"new incident {log.id} for {target.label}")
    return 0


def run_close(args: argparse.Namespace) -> int:
    _, target = _target(args)
    log = target.current(create=False)
    if log is None:
        print(f"no open incident for {target.label}", file=sys.stderr)
        return 1
    pending = outstanding_changes(log.entries())
    close(log, by=BY, note=args.note)
    print(f"closed incident {log.id}")
    if pending:
        print(f"  {len(pending)} change(s) stay in place; `ppdoctor fix --rollback --incident {log.id}` undoes them")
    return 0


def run_note(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    log = open_current(config, by=BY)
    log.append("note", " ".join(args.text), {"operator": True}, by=BY)
    print(f"noted in incident {log.id}")
    return 0
