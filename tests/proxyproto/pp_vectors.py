"""Where the public PROXY-protocol test vectors live, and reading them: a missing file fails loudly.

The vectors are not in this repository: they come with the project's shared folder, checked
out beside it (``../shared/vectors/ppv2-public.tsv``). ``PPDOCTOR_VECTORS_DIR`` names another
folder holding ``ppv2-public.tsv``. A missing file is a *failure* of the test run, never a
skip: a skip would hide a missing dependency.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

VECTORS_ENV = "PPDOCTOR_VECTORS_DIR"
VECTORS_FILE = "ppv2-public.tsv"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VECTORS_DIR = REPO_ROOT.parent / "shared" / "vectors"

Vector = tuple[str, bytes, str, str]  # name, header bytes, expected, source


def vectors_dir() -> Path:
    """``$PPDOCTOR_VECTORS_DIR`` if set, else ``../shared/vectors`` beside the repository."""
    override = os.environ.get(VECTORS_ENV, "").strip()
    return Path(override).expanduser() if override else DEFAULT_VECTORS_DIR


def missing_message(path: Path) -> str:
    """What is missing, where it was looked for, and what to do about it."""
    folder = path.parent
    if os.environ.get(VECTORS_ENV, "").strip():
        where = f"in {folder} (from {VECTORS_ENV})"
        todo = f"point {VECTORS_ENV} at a folder holding {VECTORS_FILE}, or unset it to use {DEFAULT_VECTORS_DIR}"
    else:
        where = f"in {folder} (../shared/vectors beside the repository {REPO_ROOT})"
        todo = (
            f"check out or copy the project's shared folder next to the repository, so that "
            f"{DEFAULT_VECTORS_DIR / VECTORS_FILE} exists, or set {VECTORS_ENV} to a folder holding {VECTORS_FILE}"
        )
    state = "the folder exists but the file does not" if folder.is_dir() else "the folder does not exist"
    return (
        f"PROXY-protocol test vectors not found: {VECTORS_FILE} {where}; {state}.\n"
        f"The vectors come with the project's shared folder, not with this repository.\n"
        f"To fix: {todo}."
    )


def load_vectors(directory: Path | None = None) -> list[Vector]:
    """The rows of ``ppv2-public.tsv``; fails the run (not a skip) with what to do when it is missing."""
    path = (directory or vectors_dir()) / VECTORS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        text = None
    if text is None:  # failed outside the except block: no "during handling of" chain in the report
        pytest.fail(missing_message(path), pytrace=False)
    rows: list[Vector] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 4:
            pytest.fail(
                f"{path}:{number}: expected 4 tab-separated fields (name, hex, expected, source), "
                f"found {len(fields)}",
                pytrace=False,
            )
        name, hex_text, expected, source = fields
        try:
            data = bytes.fromhex("".join(hex_text.split()))
        except ValueError as exc:
            problem = str(exc)
        else:
            rows.append((name, data, expected, source))
            continue
        pytest.fail(f"{path}:{number}: vector {name!r} has bad hex: {problem}", pytrace=False)
    return rows
