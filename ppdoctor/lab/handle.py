"""A lab a front end owns (starts, and stops when it quits) or attaches to (and leaves running).

The TUI's ``--lab`` path and the Bench screen's companion labs both hold a :class:`LabHandle`;
this is the one place that knows how such a lab is started, stopped and cleaned up. The TUI
imports it lazily and only through the ``LabLike`` protocol of ``ppdoctor.screens.host``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from ..config import TargetConfig, load_config
from ..errors import LabError

SCRATCH_PREFIX = "ppdoctor-lab-"  # a state dir made by scratch_state_dir(): removed with its lab
STOP_WAIT_S = 20.0


def scratch_state_dir() -> Path:
    """A fresh temporary state dir (on $XDG_RUNTIME_DIR when there is one) for a lab its owner removes."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    return Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=base if base and os.path.isdir(base) else None))


class LabHandle:
    """A lab the TUI starts and must stop, or (``attach``) an already running one it leaves alone."""

    def __init__(self, scenario: str | None, state_dir: Path, *, owned: bool = True,
                 endpoints: dict[str, Any] | None = None) -> None:
        self.scenario = scenario
        self.state_dir = state_dir
        self.owned = owned
        self.endpoints = endpoints
        self.proc: subprocess.Popen[bytes] | None = None
        self._closing = False
        self._lock = threading.Lock()

    @classmethod
    def attach(cls, state_dir: Path) -> LabHandle:
        from .cli import read_endpoints

        endpoints = read_endpoints(state_dir)
        if not endpoints:
            raise LabError(f"no running lab in {state_dir}", hint="start one with `ppdoctor lab up --detach --state-dir DIR`")
        return cls(endpoints.get("scenario"), state_dir, owned=False, endpoints=endpoints)

    @classmethod
    def scratch(cls, scenario: str | None) -> LabHandle:
        """A lab of ``scenario`` this process owns, in a fresh temporary state dir (checked name: LabError)."""
        from .scenario import load_scenario

        load_scenario(scenario)  # a bad name fails here, with the list of names
        return cls(scenario, scratch_state_dir())

    def sibling(self, scenario: str) -> LabHandle:
        """Another lab, owned by this process, beside this one (the Bench screen's companion labs)."""
        return LabHandle.scratch(scenario)

    @property
    def name(self) -> str:
        from .scenario import DEFAULT_SCENARIO

        return self.scenario or DEFAULT_SCENARIO

    @property
    def running(self) -> bool:
        return self.proc is not None

    def start(self) -> dict[str, Any]:
        """Blocking (a worker thread): start the lab and wait until it is ready."""
        if self.endpoints is not None:
            return self.endpoints
        from .cli import start_lab

        with self._lock:
            if self._closing:
                raise LabError("ppdoctor is quitting; the lab was not started")
        proc, endpoints = start_lab(self.scenario, self.state_dir, owner_pid=os.getpid(),
                                    scratch=self.state_dir.name.startswith(SCRATCH_PREFIX))
        with self._lock:
            self.proc, self.endpoints = proc, endpoints
            closing = self._closing
        if closing:  # the app quit while the lab was starting
            self._stop_process(proc)
            raise LabError("ppdoctor quit while the lab was starting; it has been stopped")
        return endpoints

    def start_config(self) -> TargetConfig:
        """Blocking: start the lab and return its target config (complete: no environment overrides)."""
        return load_config(self.start()["config"], env={})

    def stop(self) -> None:
        """Tear the lab down (idempotent; also stops a lab that is still starting)."""
        with self._lock:
            self._closing = True
            proc = self.proc
        if not self.owned:
            return
        if proc is not None:
            self._stop_process(proc)
        else:
            from .cli import stop_lab

            stop_lab(self.state_dir)  # a start in progress: the supervisor has written its pid file

    def close(self) -> None:
        """Stop the lab, then remove its scratch state dir (never an attached lab's or a named one)."""
        try:
            self.stop()
        finally:
            if self.owned and self.endpoints is not None and self.state_dir.name.startswith(SCRATCH_PREFIX):
                shutil.rmtree(self.state_dir, ignore_errors=True)

    def _stop_process(self, proc: subprocess.Popen[bytes]) -> None:
        from .cli import stop_lab

        stop_lab(self.state_dir, pid=proc.pid)
        try:
            proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            pass
