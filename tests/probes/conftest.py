"""Fixtures for the probe engine tests: hostile peers on loopback, (the lab pool is the suite's `lab_pool`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .peers import PeerThread


@pytest.fixture(scope="module")
def hostile() -> Iterator[PeerThread]:
    thread = PeerThread()
    yield thread
    thread.stop()
