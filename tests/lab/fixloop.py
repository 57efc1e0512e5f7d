"""`fix --all --yes` driven through the engine (what the CLI does, without the printing)."""

from __future__ import annotations

import asyncio

from ppdoctor.diagnosis import diagnose
from ppdoctor.fixes import apply_plan, build_plan, read_state
from ppdoctor.fixes.apply import diagnose_settled
from ppdoctor.probes import ProbeContext, run_probes


async def _fix_all(config, rounds: int = 6):
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
        findings = await diagnose_settled(config)
    return findings


def fix_all(config):
    return asyncio.run(_fix_all(config))
