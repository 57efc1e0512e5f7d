"""What an incident's entries say about changes: which were applied, verified, rolled back (pure functions over entries)."""

from __future__ import annotations

from typing import Any

UNDONE = ("rolled-back", "unchecked", "not-reversible")


def change_entries(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every change written in the incident, flattened: the change's fields plus cid, fix, at, by."""
    out = []
    for e in entries:
        if e.get("kind") != "change":
            continue
        data = e.get("data") or {}
        change = data.get("change")
        if not isinstance(change, dict):
            continue
        out.append({**change, "cid": data.get("cid"), "fix": data.get("fix"), "at": e.get("at"), "by": e.get("by", "")})
    return out


def rollback_steps(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """cid → the last rollback step recorded for it."""
    out: dict[str, dict[str, Any]] = {}
    for e in entries:
        step = (e.get("data") or {}).get("step") if e.get("kind") == "rollback" else None
        if isinstance(step, dict) and step.get("cid"):
            out[step["cid"]] = {**step, "at": e.get("at")}
    return out


def outstanding_changes(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Applied changes not yet undone, oldest first."""
    undone = {cid for cid, step in rollback_steps(entries).items() if step.get("status") in UNDONE}
    return [c for c in change_entries(entries) if c.get("status") == "applied" and c.get("cid") not in undone]


def verifications(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """cid → the verification that followed the change."""
    out = {}
    for e in entries:
        data = e.get("data") or {}
        if e.get("kind") == "verify" and data.get("cid"):
            out[data["cid"]] = {**(data.get("verification") or {}), "at": e.get("at")}
    return out


def age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"
