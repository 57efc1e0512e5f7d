"""A second gateway for the side the first one refuses (the TUI's Bench screen on the lab).

A gateway listener either requires a PROXY header or does not parse one (docs/bench.md), so
against one gateway only one of "PP off" / "PP on" usually succeeds. On a real target the
operator names the other gateway (``--off-config``). In the lab, ppdoctor can start it: a
companion lab whose scenario has the PROXY-protocol setting the side needs — ``healthy``
(the gateway requires PPv2) for "PP on", ``no-client-ip`` (no PROXY filter) for "PP off" —
and point that side there. This module decides which sides need one and rebuilds them; the
caller starts the lab (it owns its lifetime).
"""

from __future__ import annotations

from dataclasses import replace

from ..config import TargetConfig
from .runner import BenchSpec, Side, preflight, preflight_problem
from .targets import gateway_target

COMPANION_SCENARIOS = {"on": "healthy", "off": "no-client-ip"}


async def refused_sides(spec: BenchSpec) -> dict[str, str]:
    """Side name → why its gateway refuses it (from one preflight request each); empty when all answer."""
    out: dict[str, str] = {}
    for side in spec.sides:
        problem = preflight_problem(side, await preflight(side, spec))
        if problem:
            out[side.name] = problem
    return out


def companion_scenario(side: str) -> str | None:
    """The lab scenario whose gateway accepts what ``side`` sends (None: no lab can help)."""
    return COMPANION_SCENARIOS.get(side)


def with_side_from(spec: BenchSpec, name: str, cfg: TargetConfig, source: str) -> BenchSpec:
    """``spec`` with side ``name`` pointed at ``cfg``'s gateway (same header, same Host)."""
    sides = []
    for side in spec.sides:
        if side.name == name:
            t = gateway_target(cfg, send_pp=side.target.send_pp, host_header=side.target.host_header)
            side = Side(side.name, t, source)
        sides.append(side)
    return replace(spec, sides=tuple(sides))
