"""``ppdoctor fix``: preview → confirm → apply → verify, and ``--rollback``. Nothing is written without a yes.

Everything goes through the target's incident session, so the plan shown, the confirmation
(who, when), each change and each verification are in the incident record the report tells.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from ..ask import confirm, confirmed_by
from ..session import IncidentSession

MAX_ROUNDS = 6


def _report(result, out: list[dict[str, Any]], as_json: bool) -> None:
    out.append(result.as_dict())
    if as_json:
        return
    for c in result.plan.changes:
        print(f"  [{c.status}] {c.object} {c.field}" + (f": {c.error}" if c.error else ""))
    for v in result.verifications:
        print(f"  verify {v.check}: {'passed' if v.passed else 'FAILED'} after {v.seconds:.1f} s")
    if result.error:
        print(f"  stopped: {result.error}")
        if result.applied:
            print("  applied so far: " + "; ".join(f"{c.object} {c.field}" for c in result.applied))
        if result.not_applied:
            print("  not applied: " + "; ".join(f"{c.object} {c.field}" for c in result.not_applied))
        print("  undo what was applied with: ppdoctor fix --rollback")


def _who(args: argparse.Namespace) -> str:
    return confirmed_by(args.yes)


async def _run_plan(session: IncidentSession, fix_id: str, args: argparse.Namespace,
                    out: list[dict[str, Any]]) -> bool | None:
    """True applied, False failed, None declined/empty."""
    plan = await session.plan(fix_id)
    if not args.json:
        print(plan.preview())
    if not plan.changes:
        return None
    if not confirm(f"{fix_id}: {len(plan.changes)} change(s) above.", assume_yes=args.yes):
        session.declined(plan, by="user")
        if not args.json:
            print("  declined: nothing was changed")
        out.append({"plan": plan.as_dict(), "declined": True})
        return None
    result = await session.apply(plan, on_progress=None if args.json else (lambda m: print(f"  … {m}")),
                                 confirmed_by=_who(args))
    _report(result, out, args.json)
    return result.completed


def _show(value: Any) -> str:
    return "(absent)" if value is None else json.dumps(value, default=str) if not isinstance(value, str) else repr(value)


async def _rollback(session: IncidentSession, args: argparse.Namespace) -> int:
    named = args.incident
    entries = session.rollback_candidates(named)
    earlier = [] if named else session.earlier_changes()
    if not args.json and earlier:
        now = time.time()
        from ..incident.journal import age

        print("earlier incidents on this target hold applied changes (rolled back only when named with "
              "--incident ID):")
        for info, changes in earlier:
            state = f"closed {age(now - info.closed_at)} ago" if info.closed_at else "open"
            print(f"  {info.id} ({state}):")
            for c in changes:
                print(f"    {age(now - (c.get('at') or now))} ago  {c.get('object')} {c.get('field')}: "
                      f"{_show(c.get('before'))} → {_show(c.get('after'))}")
    if not entries:
        where = f"incident {named}" if named else f"the current incident ({session.incident.id if session.incident else '-'})"
        if args.json:
            print(json.dumps({"rolled_back": [], "failed": []}))
        else:
            print(f"nothing to roll back in {where}")
        return 0
    if not args.json:
        print(f"changes to undo, newest first ({'incident ' + named if named else 'current incident'}):")
        for e in reversed(entries):
            print(f"  {e['object']} {e['field']}: {_show(e['after'])} → {_show(e['before'])}")
    if not confirm(f"roll back {len(entries)} change(s)?", assume_yes=args.yes):
        session.note(f"rollback of {len(entries)} change(s) declined by the user; nothing was changed")
        return 1
    session.record("confirm", f"rollback of {len(entries)} change(s): confirmed by {_who(args)}", action="rollback",
                   confirmed=True, who=_who(args), changes=len(entries))
    done, failed = await session.rollback(named)
    if args.json:
        print(json.dumps({"rolled_back": done, "failed": failed}, default=str))
    else:
        print(f"rolled back {len(done)} change(s)")
        for f in failed:
            if f["status"] == "conflict":
                print(f"stopped: {f['object']} {f['field']} was changed by someone else since ppdoctor wrote it; "
                      "not overwritten")
                print(f"  before: {_show(f['before'])}")
                print(f"  ours:   {_show(f['ours'])}")
                print(f"  now:    {_show(f['now'])}")
                print("  decide by hand; the older changes were not rolled back either")
            else:
                print(f"stopped: {f['object']} {f['field']}: {f.get('error')}")
    return 2 if failed else 0


async def _fix(args: argparse.Namespace) -> int:
    from ..discovery.target import config_for_args

    config = config_for_args(args)  # no complete config file: discover the path
    session = IncidentSession.open(config, by="cli fix")
    for warning in session.load_warnings:
        print(f"ppdoctor: warning: {warning}", file=sys.stderr)
    out: list[dict[str, Any]] = []
    if args.rollback:
        return await _rollback(session, args)
    await session.probe_all()
    findings = session.diagnose()
    if args.list:
        rows = [{"finding": f.id, "title": f.title, "fixes": f.fixes} for f in findings if f.fixes]
        if args.json:
            print(json.dumps({"fixes": rows}))
        else:
            for r in rows:
                print(f"{r['finding']} {r['title']}: {', '.join(r['fixes'])}")
            if not rows:
                print("no finding that a fix addresses")
        return 0
    if args.id:
        ok = await _run_plan(session, args.id.upper(), args, out)
    else:
        ok = await _fix_all(session, findings, args, out)
    after = await session.settle()
    if args.json:
        print(json.dumps({"results": out, "findings_after": [f.as_dict() for f in after],
                          "incident": session.incident.id if session.incident else None}, indent=2, default=str))
    else:
        top = after[0] if after else None
        print(f"after: {top.id} {top.title}" if top else "after: no finding")
    return 0 if ok is not False else 2


async def _fix_all(session: IncidentSession, findings, args, out) -> bool | None:
    applied: set[str] = set()
    ok: bool | None = None
    for _ in range(MAX_ROUNDS):
        actionable = [f for f in findings if f.fixes and f.superseded_by is None and f.severity in ("error", "warning")]
        pending = [(f, fx) for f in actionable for fx in f.fixes if fx not in applied]
        if not pending:
            break
        finding = pending[0][0]
        if not args.json:
            print(f"{finding.id} {finding.title}")
        for fix_id in [fx for fx in finding.fixes if fx not in applied]:
            applied.add(fix_id)
            result = await _run_plan(session, fix_id, args, out)
            if result is False:
                return False
            ok = True if result else ok
        findings = await session.settle()
    return ok


def run(args: argparse.Namespace) -> int:
    if getattr(args, "incident", None) and not args.rollback:
        print("ppdoctor fix: --incident names whose changes --rollback undoes", file=sys.stderr)
        return 2
    if not (args.list or args.id or args.all or args.rollback):
        print("ppdoctor fix: name a fix id, or pass --list, --all or --rollback", file=sys.stderr)
        return 2
    return asyncio.run(_fix(args))
