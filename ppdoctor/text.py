"""Untrusted text made visible: control codes and invisible characters escaped, for terminals and widgets.

Engine code (CLI output) and the TUI (``widgets/safe.py``, which adds Rich ``Text`` on top)
share this; it imports nothing but the standard library.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["clean", "show_value"]

_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
# Bidi controls and invisible separators can make a value read as something it is not.
_INVISIBLE = "\u061c\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
_UNSAFE_MULTILINE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_INVISIBLE}]")
_UNSAFE_ONE_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_INVISIBLE}]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code in _NAMED:
        return _NAMED[code]
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def clean(value: Any, *, multiline: bool = False, limit: int | None = None) -> str:
    """``value`` as a string whose every character is visible as itself."""
    text = value if isinstance(value, str) else show_value(value)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    if multiline:
        return _UNSAFE_MULTILINE.sub(_visible, text.replace("\r\n", "\n"))
    return _UNSAFE_ONE_LINE.sub(_visible, text)


def show_value(value: Any) -> str:
    """How a fact or plan value reads in a cell: JSON for structures, ``—`` for unknown."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str, ensure_ascii=False, separators=(", ", ": "))
    return str(value)
