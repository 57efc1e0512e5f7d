"""Fixes: plans as data (Change: object, field, before → after, API call, verifying probe), applied after confirmation.

The names below load on first use (PEP 562): the TUI needs the fix titles and ``choose`` at start-up,
the planner (YAML, the AWS and Kubernetes readers) and the applier only once a fix is planned.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "ApplyResult": "apply", "RollbackStep": "apply", "apply_plan": "apply", "rollback_changes": "apply",
    "verify": "apply",
    "FIX_TITLES": "model", "Change": "model", "FixPlan": "model",
    "BUILDERS": "registry", "LiveState": "planner", "PlanError": "planner", "build_plan": "registry",
    "read_state": "planner",
    "suggest_fixes": "choose",
}

__all__ = ["ApplyResult", "BUILDERS", "Change", "FIX_TITLES", "FixPlan", "LiveState", "PlanError", "RollbackStep",
           "apply_plan", "build_plan", "read_state", "rollback_changes", "suggest_fixes", "verify"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return list(__all__)
