"""Fixtures for the probe engine tests: hostile peers on loopback, and the lab pool of tests/lab."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.lab.conftest import LabPool, RunningLab, lab_pool  # noqa: F401  (re-exported fixture)

from .peers import PeerThread


@pytest.fixture(scope="module")
def hostile() -> Iterator[PeerThread]:
    thread = PeerThread()
    yield thread
    thread.stop()
