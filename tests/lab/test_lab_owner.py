"""A lab started for a process stops when that process exits, however it exits (closed terminal, kill -9):
it must never outlive the session that started it. A lab started without an owner (lab up --detach) stays."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from ppdoctor.errors import LabError
from ppdoctor.lab.cli import read_endpoints, start_lab, stop_lab

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _envoy_pids(state_dir: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"envoy -c {state_dir}"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def test_the_lab_stops_when_its_owner_is_killed(tmp_path: Path):
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    state_dir = tmp_path / "owned"
    proc, endpoints = start_lab("healthy", state_dir, owner_pid=owner.pid)
    try:
        assert read_endpoints(state_dir)["pid"] == proc.pid
        envoys = _envoy_pids(state_dir)
        assert envoys, "the lab's Envoy is running"
        time.sleep(1.0)
        assert proc.poll() is None  # the owner lives: so does the lab
        owner.kill()  # like a terminal that closed under the TUI: no finally, no lab down
        owner.wait()
        proc.wait(timeout=30)
        assert proc.returncode == 0  # a clean stop, not a crash
        assert not (state_dir / "supervisor.pid").exists() and read_endpoints(state_dir) is None
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in envoys) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in envoys)
        assert "owner process" in (state_dir / "lab.log").read_text()
    finally:
        owner.kill()
        if proc.poll() is None:
            stop_lab(state_dir, pid=proc.pid)
            proc.wait(timeout=20)


def test_a_scratch_state_dir_goes_with_its_lab(tmp_path: Path):
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    state_dir = tmp_path / "ppdoctor-lab-scratch"
    proc, _ = start_lab("healthy", state_dir, owner_pid=owner.pid, scratch=True)
    try:
        assert (state_dir / "lab.log").exists()
        owner.kill()
        owner.wait()
        proc.wait(timeout=30)
        assert proc.returncode == 0 and not state_dir.exists()
    finally:
        owner.kill()
        if proc.poll() is None:
            stop_lab(state_dir, pid=proc.pid)
            proc.wait(timeout=20)


def test_a_lab_with_a_dead_owner_does_not_start(tmp_path: Path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    state_dir = tmp_path / "orphan"
    with pytest.raises(LabError, match="exited with code 0"):
        start_lab("healthy", state_dir, owner_pid=gone.pid, timeout=30)
    assert not (state_dir / "supervisor.pid").exists()
    assert "owner process" in (state_dir / "lab.log").read_text()
