"""The lab's own process: runs the whole world in one asyncio loop until SIGTERM/SIGINT.

``ppdoctor lab up`` starts it detached (its own session, so Ctrl-C in the caller's terminal
is handled by the caller) and waits for ``lab.json`` or ``error.json`` in the state dir.

``--owner-pid PID``: the lab belongs to that process (the TUI, a foreground ``lab up``, a
test run) and stops when it exits, however it exits — a closed terminal (SIGHUP), a
``kill -9``, a crash — so a lab never outlives the session that started it. ``lab up
--detach`` starts it without an owner.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import sys
from pathlib import Path

from ..errors import PPDoctorError
from .scenario import load_scenario
from .world import ENDPOINTS_FILE, LabWorld

PID_FILE = "supervisor.pid"
ERROR_FILE = "error.json"
LOG_FILE = "lab.log"


OWNER_POLL_S = 1.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class _Owner:
    gone = False  # set when the lab stopped because its owner exited


def _watch_owner(owner_pid: int, stop: asyncio.Event) -> asyncio.Task[None] | None:
    """Set ``stop`` when ``owner_pid`` exits: a pidfd on Linux ≥ 5.3, polling otherwise."""
    loop = asyncio.get_running_loop()
    log = logging.getLogger("ppdoctor.lab")

    def gone() -> None:
        if not stop.is_set():
            log.info("owner process %d exited: stopping the lab", owner_pid)
            _Owner.gone = True
            stop.set()

    if not _pid_alive(owner_pid):
        gone()
        return None
    try:
        fd = os.pidfd_open(owner_pid)  # readable once the process has exited
    except (AttributeError, OSError):
        async def poll() -> None:
            while _pid_alive(owner_pid):
                await asyncio.sleep(OWNER_POLL_S)
            gone()

        return asyncio.ensure_future(poll())

    def readable() -> None:
        loop.remove_reader(fd)
        os.close(fd)
        gone()

    loop.add_reader(fd, readable)
    return None


async def _serve(scenario_name: str, state_dir: Path, owner_pid: int | None = None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    watcher = _watch_owner(owner_pid, stop) if owner_pid else None
    world = None
    try:
        scenario = load_scenario(scenario_name)
        world = LabWorld(scenario, state_dir)
        start = asyncio.ensure_future(world.start())
        waiter = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait({start, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if start not in done:
            start.cancel()
            await asyncio.gather(start, return_exceptions=True)
            return 0
        start.result()
        logging.getLogger("ppdoctor.lab").info("lab ready: %s", scenario.name)
        await stop.wait()
        return 0
    except PPDoctorError as exc:
        _write_error(state_dir, exc.as_dict())
        return 1
    except Exception as exc:  # a lab that cannot start says why, in the caller's terminal
        logging.getLogger("ppdoctor.lab").exception("lab failed")
        _write_error(state_dir, {"kind": "lab", "message": f"{type(exc).__name__}: {exc}",
                                  "hint": f"see {state_dir / LOG_FILE}"})
        return 1
    finally:
        if watcher is not None:
            watcher.cancel()
        if world is not None:
            await world.stop()
        (state_dir / ENDPOINTS_FILE).unlink(missing_ok=True)


def _write_error(state_dir: Path, error: dict[str, str]) -> None:
    tmp = state_dir / (ERROR_FILE + ".tmp")
    tmp.write_text(json.dumps(error), encoding="utf-8")
    tmp.replace(state_dir / ERROR_FILE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ppdoctor.lab.supervisor")
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--owner-pid", type=int, default=None,
                        help="stop the lab when this process exits (omitted: the lab runs until stopped)")
    parser.add_argument("--remove-state-dir", action="store_true",
                        help="with --owner-pid: the state dir is the owner's scratch dir; remove it when the owner "
                             "exits (the owner would have, had it ended normally)")
    args = parser.parse_args(argv)
    state_dir = Path(args.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        filename=state_dir / LOG_FILE,
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    (state_dir / PID_FILE).write_text(str(os.getpid()), encoding="utf-8")
    try:
        return asyncio.run(_serve(args.scenario, state_dir, args.owner_pid))
    finally:
        (state_dir / PID_FILE).unlink(missing_ok=True)
        if args.remove_state_dir and _Owner.gone:
            logging.shutdown()
            shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
