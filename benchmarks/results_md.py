"""Shared by the benchmark scripts: replace one ``## Heading`` section of RESULTS.md, keep the others."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, section: str) -> None:
    """``section`` starts with its ``## Heading`` line; that section of ``path`` is replaced (or appended)."""
    heading = section.splitlines()[0].rstrip()
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if not section.endswith("\n"):
        section += "\n"
    if start is None:
        if text and not text.endswith("\n\n"):
            text = text.rstrip("\n") + "\n\n"
        path.write_text(text + section, encoding="utf-8")
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = "".join(lines[end:])
    path.write_text("".join(lines[:start]) + section + ("\n" + tail if tail else ""), encoding="utf-8")
