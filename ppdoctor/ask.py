"""Asking the operator before a change, headless: a typed "yes" on a terminal, or --yes; never silently."""

from __future__ import annotations

import sys


def confirm(question: str, *, assume_yes: bool, action: str = "apply") -> bool:
    """True when the operator typed 'yes' (or passed --yes); False without a terminal to ask on."""
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        print(f"{question} — not confirmed: standard input is not a terminal; pass --yes to {action} without asking",
              file=sys.stderr)
        return False
    try:
        answer = input(f"{question} Type 'yes' to {action}: ")
    except EOFError:
        return False
    return answer.strip().lower() == "yes"


def confirmed_by(assume_yes: bool) -> str:
    """Who said yes, as the incident records it."""
    return "--yes" if assume_yes else "user (typed yes)"
