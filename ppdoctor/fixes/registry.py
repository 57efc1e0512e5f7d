"""Every fix plan by id: the seed catalogue's builders (planner) and the field catalogue's (plans_conf, plans_disc, plans_drain).

Assembled here, above the modules that define builders, so that none of them imports another to register
itself (planner ← plans_conf would otherwise be an import cycle).
"""

from __future__ import annotations

from typing import Callable

from . import plans_conf, plans_disc, plans_drain
from .model import FIX_TITLES, Change, FixPlan
from .planner import CORE_BUILDERS, CORE_WINDOWS, LiveState, PlanError

BUILDERS: dict[str, Callable[[LiveState], list[Change]]] = {**CORE_BUILDERS, **plans_conf.BUILDERS, **plans_disc.BUILDERS,
                                                            **plans_drain.BUILDERS}
WINDOWS: dict[str, str] = {**CORE_WINDOWS, **plans_conf.WINDOWS, **plans_disc.WINDOWS, **plans_drain.WINDOWS}


def build_plan(fix_id: str, st: LiveState) -> FixPlan:
    builder = BUILDERS.get(fix_id)
    if builder is None:
        raise PlanError(f"no fix named {fix_id}", hint="`ppdoctor fix --list` shows the fixes for the current findings")
    changes = builder(st)
    return FixPlan(id=fix_id, title=FIX_TITLES[fix_id], changes=changes, window=WINDOWS.get(fix_id, ""),
                   explanation="" if changes else "nothing to change: the state already matches")
