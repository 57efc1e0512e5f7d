"""`fix --all --yes` driven through the engine (what the CLI does, without the printing)."""

from __future__ import annotations

import asyncio

from ppdoctor.diagnosis import diagnose
from ppdoctor.fixes import apply_plan, build_plan, read_state
from ppdoctor.fixes.apply import diagnose_settled
from ppdoctor.probes import ProbeContext, run_probes


async def _fix_all(config, rounds: int = 6, changes: list | None = None):
    applied: set[str] = set()
    findings = diagnose(await run_probes(config))
    for _ in range(rounds):
        pending = [(f, fx) for f in findings if f.fixes and f.superseded_by is None and f.severity in ("error", "warning")
                   for fx in f.fixes if fx not in applied]
        if not pending:
            break
        finding = pending[0][0]
        for fix_id in [fx for fx in finding.fixes if fx not in applied]:
            applied.add(fix_id)
            ctx = ProbeContext(config)
            try:
                plan = build_plan(fix_id, await asyncio.to_thread(read_state, ctx))
                result = await apply_plan(plan, ctx)
            finally:
                ctx.close()
            assert result.completed, (fix_id, result.as_dict())
            if changes is not None:  # what a rollback needs, in the order applied
                changes += [{**c.as_dict(), "at": float(len(changes) + i)} for i, c in enumerate(result.applied)]
        findings = await diagnose_settled(config)
    return findings


def fix_all(config, changes: list | None = None):
    """Apply every pending fix; ``changes`` (a list) collects the applied changes for ``roll_back``."""
    return asyncio.run(_fix_all(config, changes=changes))


def roll_back(config, changes: list):
    """Undo ``changes`` newest first, as `fix --rollback` does, and diagnose once things settle."""
    from ppdoctor.fixes import rollback_changes

    async def run():
        ctx = ProbeContext(config)
        try:
            steps = await rollback_changes(ctx, changes)
        finally:
            await asyncio.to_thread(ctx.close)
        assert steps and all(s.status in ("rolled-back", "unchecked") for s in steps), [s.as_dict() for s in steps]
        # The controller reconciles annotations and the NLB polls: wait (bounded) until the healthy
        # state the fixes made is gone, then report what the diagnosis says.
        deadline = asyncio.get_running_loop().time() + 30.0
        while True:
            findings = await diagnose_settled(config)
            if (findings and findings[0].id != "PPD000") or asyncio.get_running_loop().time() > deadline:
                return findings
            await asyncio.sleep(1.0)

    return asyncio.run(run())
