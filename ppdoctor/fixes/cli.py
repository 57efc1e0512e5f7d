"""``ppdoctor fix``: preview → confirm → apply → verify, and ``--rollback``. Nothing is written without a yes."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from ..diagnosis.engine import diagnose
from ..probes import run_probes
from ..probes.context import ProbeContext
from .apply import apply_plan, diagnose_settled, journal_path, load_journal, rollback
from .model import FixPlan
from .planner import build_plan, read_state

MAX_ROUNDS = 6


def confirm(question: str, *, assume_yes: bool) -> bool:
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        print(f"{question} — not confirmed: standard input is not a terminal; pass --yes to apply without asking",
              file=sys.stderr)
        return False
    try:
        answer = input(f"{question} Type 'yes' to apply: ")
    except EOFError:
        return False
    return answer.strip().lower() == "yes"


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


async def _plan(ctx: ProbeContext, fix_id: str) -> FixPlan:
    state = await asyncio.to_thread(read_state, ctx)
    return build_plan(fix_id, state)


async def _run_plan(ctx: ProbeContext, fix_id: str, args: argparse.Namespace, out: list[dict[str, Any]]) -> bool | None:
    """True applied, False failed, None declined/empty."""
    plan = await _plan(ctx, fix_id)
    if not args.json:
        print(plan.preview())
    if not plan.changes:
        return None
    if not confirm(f"{fix_id}: {len(plan.changes)} change(s) above.", assume_yes=args.yes):
        if not args.json:
            print("  declined: nothing was changed")
        out.append({"plan": plan.as_dict(), "declined": True})
        return None
    result = await apply_plan(plan, ctx, on_progress=None if args.json else (lambda m: print(f"  … {m}")))
    _report(result, out, args.json)
    return result.completed


async def _fix(args: argparse.Namespace) -> int:
    from ..discovery.target import config_for_args

    config = config_for_args(args)  # no complete config file: discover the path
    ctx = ProbeContext(config)
    out: list[dict[str, Any]] = []
    try:
        if args.rollback:
            entries = [e for e in load_journal(journal_path(ctx)) if e.get("status") == "applied"]
            if not entries:
                print("nothing to roll back")
                return 0
            if not args.json:
                for e in reversed(entries):
                    print(f"  {e['object']} {e['field']}: {e['after']!r} → {e['before']!r}")
            if not confirm(f"roll back {len(entries)} change(s)?", assume_yes=args.yes):
                return 1
            done, failed = await rollback(ctx)
            if args.json:
                print(json.dumps({"rolled_back": done, "failed": failed}, default=str))
            else:
                print(f"rolled back {len(done)} change(s)" + (f"; failed: {failed[0].get('error')}" if failed else ""))
            return 2 if failed else 0
        observations = await run_probes(config)
        findings = diagnose(observations)
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
            ok = await _run_plan(ctx, args.id.upper(), args, out)
        else:
            ok = await _fix_all(ctx, config, findings, args, out)
        after = await diagnose_settled(config)
        if args.json:
            print(json.dumps({"results": out, "findings_after": [f.as_dict() for f in after]}, indent=2, default=str))
        else:
            top = after[0] if after else None
            print(f"after: {top.id} {top.title}" if top else "after: no finding")
        return 0 if ok is not False else 2
    finally:
        ctx.close()


async def _fix_all(ctx, config, findings, args, out) -> bool | None:
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
            result = await _run_plan(ctx, fix_id, args, out)
            if result is False:
                return False
            ok = True if result else ok
        findings = await diagnose_settled(config)
    return ok


def run(args: argparse.Namespace) -> int:
    if not (args.list or args.id or args.all or args.rollback):
        print("ppdoctor fix: name a fix id, or pass --list, --all or --rollback", file=sys.stderr)
        return 2
    return asyncio.run(_fix(args))
