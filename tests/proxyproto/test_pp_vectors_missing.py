"""A missing vectors file fails the run with what is missing, where it was looked for and what to do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pp_vectors import (
    DEFAULT_VECTORS_DIR,
    REPO_ROOT,
    VECTORS_ENV,
    VECTORS_FILE,
    load_vectors,
    vectors_dir,
)


def test_collection_fails_with_a_clear_message_when_the_vectors_are_missing(tmp_path: Path) -> None:
    empty = tmp_path / "no-vectors-here"
    empty.mkdir()
    env = {**os.environ, VECTORS_ENV: str(empty)}
    env.pop("PYTEST_ADDOPTS", None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/proxyproto/test_pp_vectors.py"],
        check=False,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = run.stdout + run.stderr
    assert run.returncode == pytest.ExitCode.INTERRUPTED, out  # a collection error: a failure, not a skip
    assert "skipped" not in out
    assert f"PROXY-protocol test vectors not found: {VECTORS_FILE} in {empty} (from {VECTORS_ENV})" in out
    assert "the folder exists but the file does not" in out
    assert f"point {VECTORS_ENV} at a folder holding {VECTORS_FILE}" in out
    assert "FileNotFoundError" not in out and "Traceback" not in out


def test_default_location_message_says_where_the_shared_folder_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(VECTORS_ENV, raising=False)
    assert vectors_dir() == DEFAULT_VECTORS_DIR == REPO_ROOT.parent / "shared" / "vectors"
    with pytest.raises(pytest.fail.Exception) as info:
        load_vectors(tmp_path / "shared" / "vectors")
    message = str(info.value)
    assert f"{VECTORS_FILE} in {tmp_path / 'shared' / 'vectors'} (../shared/vectors beside the repository" in message
    assert "the folder does not exist" in message
    assert "check out or copy the project's shared folder next to the repository" in message
    assert VECTORS_ENV in message


def test_the_environment_variable_names_another_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / VECTORS_FILE).write_text(
        "# name\thex\texpected\tsource\n"
        "v1-tcp4\t50524f585920 5443503420\tok: v1\tsomewhere\n",
        encoding="utf-8",
    )
    monkeypatch.setenv(VECTORS_ENV, str(tmp_path))
    assert vectors_dir() == tmp_path
    assert load_vectors() == [("v1-tcp4", b"PROXY TCP4 ", "ok: v1", "somewhere")]


def test_a_malformed_row_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / VECTORS_FILE).write_text("# comment\n\nonly\ttwo fields\n", encoding="utf-8")
    with pytest.raises(pytest.fail.Exception, match=rf"{VECTORS_FILE}:3: expected 4 tab-separated fields"):
        load_vectors(tmp_path)
