"""``ppdoctor lab list|up|down|status``: start the embedded lab in its own process and report its endpoints."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import LabError
from .scenario import DEFAULT_SCENARIO, list_scenarios, load_scenario

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ppdoctor" / "lab"


def _state_dir(args: argparse.Namespace) -> Path:
    return Path(getattr(args, "state_dir", None) or default_state_dir())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(state_dir: Path) -> int | None:
    try:
        pid = int((state_dir / "supervisor.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def read_endpoints(state_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((state_dir / "lab.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def start_lab(scenario: str | None, state_dir: Path, *, timeout: float = READY_TIMEOUT_S,
              owner_pid: int | None = None, scratch: bool = False) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start the supervisor process and wait until the lab is ready; returns (process, endpoints).

    ``owner_pid``: the lab stops by itself when that process exits (a closed terminal, a crash);
    None for a detached lab that runs until ``lab down``. ``scratch``: ``state_dir`` is the
    owner's temporary directory, removed with the lab when the owner dies without cleaning up.
    """
    load_scenario(scenario)  # fail fast, in this process, on a bad name or file
    state_dir.mkdir(parents=True, exist_ok=True)
    running = _read_pid(state_dir)
    if running:
        current = read_endpoints(state_dir) or {}
        raise LabError(
            f"a lab is already running from {state_dir} (pid {running}, scenario {current.get('scenario', '?')})",
            hint="stop it with `ppdoctor lab down` or pass another --state-dir",
        )
    for name in ("lab.json", "error.json"):
        (state_dir / name).unlink(missing_ok=True)
    log = open(state_dir / "supervisor.out", "wb")
    owner = ["--owner-pid", str(owner_pid)] + (["--remove-state-dir"] if scratch else []) if owner_pid else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "ppdoctor.lab.supervisor", "--scenario", scenario or DEFAULT_SCENARIO,
         "--state-dir", str(state_dir), *owner],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        endpoints = read_endpoints(state_dir)
        if endpoints and endpoints.get("pid") == proc.pid:
            return proc, endpoints
        error = state_dir / "error.json"
        if error.exists() or proc.poll() is not None:
            proc.wait(timeout=STOP_TIMEOUT_S)
            try:
                info = json.loads(error.read_text(encoding="utf-8"))
            except (FileNotFoundError, json.JSONDecodeError):
                tail = (state_dir / "supervisor.out").read_text(errors="replace")[-2000:]
                info = {"message": f"the lab process exited with code {proc.returncode}", "hint": tail.strip() or None}
            raise LabError(f"the lab did not start: {info.get('message')}", hint=info.get("hint"))
        time.sleep(0.05)
    stop_lab(state_dir, pid=proc.pid)
    raise LabError(f"the lab was not ready after {timeout:.0f} s", hint=f"see {state_dir / 'lab.log'}")


def stop_lab(state_dir: Path, *, pid: int | None = None) -> bool:
    """Stop the supervisor (and with it Envoy); True when something was running."""
    pid = pid or _read_pid(state_dir)
    if not pid:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and _alive(pid):
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    if _alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return True


def _print_endpoints(endpoints: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        keys = ("config", "nlb", "gateway", "gateway_admin", "echo_path", "aws_endpoint_url", "region",
                "kubeconfig", "target_group_arn")
        print(json.dumps({k: endpoints[k] for k in keys} | {"scenario": endpoints["scenario"]}))
        return
    print(f"lab scenario {endpoints['scenario']} is ready")
    rows = [
        ("NLB listener", endpoints["nlb"]),
        ("gateway (direct)", endpoints["gateway"]),
        ("gateway admin", endpoints["gateway_admin"]),
        ("echo path", endpoints["echo_path"]),
        ("AWS endpoint", f"{endpoints['aws_endpoint_url']} ({endpoints['region']})"),
        ("target group", endpoints["target_group_arn"]),
        ("kubeconfig", endpoints["kubeconfig"]),
        ("ppdoctor config", endpoints["config"]),
    ]
    for label, value in rows:
        print(f"  {label:<18} {value}")
    print(f"  try: ppdoctor --config {endpoints['config']} probe --all")


def run_list(args: argparse.Namespace) -> int:
    scenarios = list_scenarios()
    if getattr(args, "json", False):
        print(json.dumps([{"name": s.name, "description": s.description} for s in scenarios]))
        return 0
    width = max(len(s.name) for s in scenarios)
    for s in scenarios:
        marker = " (default)" if s.name == DEFAULT_SCENARIO else ""
        print(f"{s.name:<{width}}  {s.description}{marker}")
    return 0


def run_up(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    proc, endpoints = start_lab(args.scenario, state_dir, owner_pid=None if args.detach else os.getpid())
    _print_endpoints(endpoints, as_json=args.json)
    sys.stdout.flush()
    if args.detach:
        return 0
    if not args.json:
        print("press Ctrl-C to stop the lab", file=sys.stderr)
    try:
        while proc.poll() is None:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        stop_lab(state_dir, pid=proc.pid)
    return 0


def run_down(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    if stop_lab(state_dir):
        print(f"lab in {state_dir} stopped")
    else:
        print(f"no lab is running from {state_dir}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    endpoints = read_endpoints(state_dir) if _read_pid(state_dir) else None
    if not endpoints:
        print(f"no lab is running from {state_dir}", file=sys.stderr)
        return 1
    _print_endpoints(endpoints, as_json=args.json)
    return 0


def run_capture(args: argparse.Namespace) -> int:
    """Start the scenario (or use the lab running from --state-dir), capture while the probes run."""
    from .capture import capture_scenario

    state_dir = _state_dir(args)
    endpoints = read_endpoints(state_dir) if _read_pid(state_dir) else None
    proc = None
    if endpoints is not None and args.scenario and endpoints.get("scenario") != args.scenario:
        raise LabError(f"the lab running from {state_dir} is scenario {endpoints.get('scenario')}, not {args.scenario}",
                       hint="stop it with `ppdoctor lab down`, or capture without --scenario")
    if endpoints is None:
        import tempfile

        state_dir = Path(tempfile.mkdtemp(prefix="ppdoctor-capture-"))
        proc, endpoints = start_lab(args.scenario, state_dir, owner_pid=os.getpid(), scratch=True)
    try:
        result = capture_scenario(endpoints, Path(args.output))
    finally:
        if proc is not None:
            stop_lab(state_dir, pid=proc.pid)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"captured scenario {result['scenario']} to {result['file']} while {result['probes']} probes ran")
        print(f"  analyse: ppdoctor pcap {result['file']} {' '.join(result['pcap_arguments'])}")
    return 0
