"""Suite-wide: never touch the user's ~/.config or ~/.local/state (fix journals, lab state); strict fact names."""

from __future__ import annotations

import os
import tempfile
from typing import Iterator

import pytest

from tests.labsupport import LabPool


def pytest_configure(config):
    home = tempfile.mkdtemp(prefix="ppdoctor-tests-")
    os.environ["XDG_STATE_HOME"] = os.path.join(home, "state")
    os.environ["XDG_CONFIG_HOME"] = os.path.join(home, "config")
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "KUBECONFIG"):
        os.environ.pop(var, None)
    # a fact name not declared in ppdoctor/facts.py (a typo on the probe or the rule side) fails the test
    os.environ["PPDOCTOR_STRICT_FACTS"] = "1"
    from ppdoctor import facts

    facts.set_strict(True)


@pytest.fixture(scope="session")
def lab_pool(tmp_path_factory) -> Iterator[LabPool]:
    """One pool per test process (each pytest-xdist worker has its own), so at most one lab per process runs at a time."""
    pool = LabPool(tmp_path_factory.mktemp("labs"))
    yield pool
    pool.close()
