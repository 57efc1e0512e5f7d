"""Untrusted text as plain text: never markup, never terminal control codes.

Everything ppdoctor shows from the network or the cluster (headers, annotations, pod names,
error messages) goes through ``safe_text``. Rich ``Text`` already keeps ``[b]`` and
``[@click=…]`` literal, but it passes ESC through to the terminal, so control characters
(C0, DEL, C1) and bidirectional overrides are replaced by visible escapes such as ``\\x1b``.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from ..text import clean, show_value

__all__ = ["clean", "safe_text", "show_value"]


def safe_text(value: Any, style: str = "", *, multiline: bool = False, limit: int | None = None) -> Text:
    """A rich Text showing ``value`` literally (no markup, control codes escaped)."""
    return Text(clean(value, multiline=multiline, limit=limit), style=style)


def copy_json(widget: Any, value: Any, done: str) -> None:
    """Put ``value`` as JSON on the clipboard (OSC 52, so it works over ssh): the whole of what a cell shows cut."""
    import json

    widget.app.copy_to_clipboard(json.dumps(value, indent=2, default=str, ensure_ascii=False))
    widget.app.notify(clean(done), timeout=3, markup=False)
