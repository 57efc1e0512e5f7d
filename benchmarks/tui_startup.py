"""TUI start-up: process start → first rendered screen of ``ppdoctor --lab``, minus the lab's own start.

Run from the repository root: ``python benchmarks/tui_startup.py [--runs N]``. Writes the
``## TUI start-up`` section of benchmarks/RESULTS.md (other sections are kept).

Method: one lab is started first (its start time is reported, not counted). Each run then
spawns ``python -m ppdoctor.cli --lab`` in a pseudo-terminal of 120×40 with
``PPDOCTOR_LAB_ATTACH`` pointing at that lab, so the process does everything ``ppdoctor --lab``
does after the lab is ready (imports, config, session, screens) without starting another.
The clock starts just before the spawn and stops when the terminal output — escape sequences
stripped — shows a marker: the boot screen's title (first paint) and then the Probes table
(the screen an operator works in). The baseline is a minimal Textual app (one ``Static``)
measured the same way in the same run, interleaved, so machine load affects both alike.

``--compare DIR`` adds another ppdoctor tree to the same interleaving (its ``ppdoctor`` package
first on PYTHONPATH, with its stylesheet at ``ppdoctor/assets``), so a branch is measured against
``main`` under the same load: ``git archive main ppdoctor assets | tar -x -C DIR && ln -s ../assets
DIR/ppdoctor/assets``. ``--size 80x24`` measures in another terminal size.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import platform
import re
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import write_section  # noqa: E402  (shared with the other benchmarks)

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## TUI start-up"
SCENARIO = "tg-pp-on-gateway-off"
GOAL_S = 0.35  # issue 17: start-up to the Probes screen, against ~0.13 s for a bare Textual app
SIZE = (120, 40)
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]|\x1bP[^\x1b]*\x1b\\")
BASELINE_APP = (
    "from textual.app import App\n"
    "from textual.widgets import Static\n"
    "class Minimal(App):\n"
    "    def compose(self):\n"
    "        yield Static('minimal-app-ready')\n"
    "Minimal().run()\n"
)


def measure(argv: list[str], markers: list[str], env: dict[str, str], timeout: float = 20.0,
            cwd: str | None = None) -> dict[str, float]:
    """Seconds from spawn until each marker first appears on the (pseudo-)terminal; waits for the last one."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True, cwd=cwd)
    os.close(slave)
    seen = ""
    found: dict[str, float] = {}
    try:
        while markers[-1] not in found:
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"{argv[-1]!r}: {markers[-1]!r} not seen within {timeout:g} s; "
                                   f"screen so far: {seen[-400:]!r}")
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                if proc.poll() is not None:
                    raise RuntimeError(f"the process exited with {proc.returncode}: {seen[-400:]!r}")
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            seen += ANSI.sub("", chunk.decode("utf-8", errors="replace"))
            for marker in markers:
                if marker not in found and marker in seen:
                    found[marker] = time.perf_counter() - t0
    finally:
        try:
            os.write(master, b"\x11")  # ctrl+q: quit
            os.write(master, b"q")
        except OSError:
            pass
        try:
            end = time.monotonic() + 10
            while proc.poll() is None and time.monotonic() < end:
                select.select([master], [], [], 0.05)
                try:
                    os.read(master, 65536)
                except OSError:
                    break
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            os.close(master)
    return found


def _row(name: str, values: list[float], goal: str = "") -> str:
    median = statistics.median(values)
    every = ", ".join(f"{v:.2f}" for v in values)
    verdict = "" if not goal else ("met" if median < GOAL_S else "NOT met")
    return f"| {name} | {len(values)} | {median:.2f} | {min(values):.2f} | {max(values):.2f} | {goal} {verdict} | {every} |"


def main(argv: list[str] | None = None) -> int:
    global SIZE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per contender (interleaved)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="Markdown file to update")
    parser.add_argument("--no-write", action="store_true", help="print the section only")
    parser.add_argument("--compare", type=Path, help="another ppdoctor tree to measure interleaved (e.g. main)")
    parser.add_argument("--compare-label", default="main", help="its name in the table")
    parser.add_argument("--size", default="120x40", help="terminal COLSxROWS")
    args = parser.parse_args(argv)
    SIZE = tuple(int(n) for n in args.size.lower().split("x"))  # type: ignore[assignment]

    from ppdoctor.lab.cli import start_lab, stop_lab

    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTUAL")}
    env.update(TERM="xterm-256color", COLORTERM="truecolor", COLUMNS=str(SIZE[0]), LINES=str(SIZE[1]))
    first_paint: list[float] = []
    probes_ready: list[float] = []
    baseline: list[float] = []
    compared: list[float] = []
    compare_env = dict(env, PYTHONPATH=str(args.compare.resolve())) if args.compare else None
    with tempfile.TemporaryDirectory(prefix="ppdoctor-bench-") as tmp:
        state_dir = Path(tmp) / "lab"
        t0 = time.perf_counter()
        proc, _endpoints = start_lab(SCENARIO, state_dir, owner_pid=os.getpid())
        lab_start = time.perf_counter() - t0
        env["PPDOCTOR_LAB_ATTACH"] = str(state_dir)
        env["XDG_STATE_HOME"] = str(Path(tmp) / "state")
        try:
            ppdoctor = [sys.executable, "-m", "ppdoctor.cli", "--lab"]
            markers = ["Starting the lab", "http-via-nlb"]  # the boot screen (may never show), the Probes table
            measure([sys.executable, "-c", BASELINE_APP], ["minimal-app-ready"], env)  # warm the file cache
            measure(ppdoctor, markers, env)
            if compare_env is not None:  # from a neutral directory, so its PYTHONPATH decides which tree imports
                compare_env["PPDOCTOR_LAB_ATTACH"], compare_env["XDG_STATE_HOME"] = env["PPDOCTOR_LAB_ATTACH"], env["XDG_STATE_HOME"]
                measure(ppdoctor, markers, compare_env, cwd=tmp)
            for _ in range(args.runs):
                times = measure(ppdoctor, markers, env)
                first_paint.append(min(times.values()))
                probes_ready.append(times[markers[-1]])
                baseline.append(measure([sys.executable, "-c", BASELINE_APP], ["minimal-app-ready"], env)["minimal-app-ready"])
                if compare_env is not None:
                    compared.append(measure(ppdoctor, markers, compare_env, cwd=tmp)[markers[-1]])
        finally:
            stop_lab(state_dir, pid=proc.pid)
            proc.wait(timeout=20)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    import textual

    overhead = statistics.median(probes_ready) - statistics.median(baseline)
    section = "\n".join([
        SECTION,
        "",
        f"Seconds from process start to a rendered screen in a {SIZE[0]}×{SIZE[1]} pseudo-terminal (`python benchmarks/tui_startup.py`), "
        f"median of {args.runs} interleaved runs; the lab was already up (`PPDOCTOR_LAB_ATTACH`), its own start is not counted.",
        "",
        "| measurement | runs | median | min | max | goal | every run |",
        "|---|---:|---:|---:|---:|---|---|",
        _row("`ppdoctor --lab`: first paint (boot screen or Probes)", first_paint, f"< {GOAL_S:g} s"),
        _row("`ppdoctor --lab`: Probes screen on the lab", probes_ready, f"< {GOAL_S:g} s"),
        *([_row(f"`ppdoctor --lab` of {args.compare_label}: Probes screen on the lab", compared)] if compared else []),
        _row("minimal Textual app (one `Static`)", baseline),
        "",
        f"- ppdoctor's own cost over a bare Textual app: {overhead:+.2f} s (Probes screen vs the minimal app, medians).",
        *([f"- This tree vs {args.compare_label}, same runs interleaved: "
           f"{statistics.median(probes_ready) - statistics.median(compared):+.2f} s (medians)."] if compared else []),
        f"- The lab itself took {lab_start:.2f} s to start (scenario `{SCENARIO}`); `ppdoctor --lab` shows the boot screen "
        "during that time.",
        f"- Python {platform.python_version()} ({platform.machine()}), Textual {textual.__version__}; "
        f"{os.cpu_count()} CPUs, load average {load:.1f} when the run ended.",
        "",
    ])
    print(section)
    if not args.no_write:
        write_section(args.output, section)
    return 0 if statistics.median(probes_ready) < GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
