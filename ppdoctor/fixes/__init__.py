"""Fixes: plans as data (Change: object, field, before → after, API call, verifying probe), applied after confirmation."""

from .apply import ApplyResult, RollbackStep, apply_plan, rollback_changes, verify
from .model import FIX_TITLES, Change, FixPlan
from .planner import BUILDERS, LiveState, PlanError, build_plan, read_state

__all__ = ["ApplyResult", "BUILDERS", "Change", "FIX_TITLES", "FixPlan", "LiveState", "PlanError", "RollbackStep",
           "apply_plan", "build_plan", "read_state", "rollback_changes", "verify"]
