"""Incident records on disk: one append-only JSON-lines file per target and incident, safe with several processes.

Layout: ``$XDG_STATE_HOME/ppdoctor/incidents/<target-key>/<incident-id>.jsonl``. Every line is one
entry ``{"v", "at", "kind", "summary", "data", "by", "pid", "eid"}``. Writers take an exclusive
``fcntl.flock`` on the file, write the whole line with one ``write`` on an ``O_APPEND`` descriptor,
then ``fsync`` before unlocking, so a TUI and a shell on the same incident never interleave and an
entry that was reported written survives a crash of the machine.

A crash in the middle of a write can leave a last line without its newline. Readers skip such a
torn line with a warning; the next writer, under the lock, cuts the fragment off and keeps it in a
``note`` entry, so its own line never glues onto the fragment and nothing is silently dropped.
Any other unreadable line is corruption: ``read`` reports the file and line number and still
returns every readable entry.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import PPDoctorError

ENTRY_VERSION = 1
SUFFIX = ".jsonl"
_TAIL_CHUNK = 64 * 1024
# Two entries written in the same clock tick still get strictly increasing times.
_MIN_STEP_S = 1e-6


class IncidentError(PPDoctorError):
    kind = "incident"


@dataclass
class Problem:
    """An unreadable line: ``torn`` (interrupted last write, harmless) or ``corrupt``."""

    path: Path
    line: int
    kind: str
    detail: str

    def __str__(self) -> str:
        if self.kind == "torn":
            return (
                f"{self.path}:{self.line}: an interrupted write left an incomplete last line "
                f"({self.detail}); it was skipped"
            )
        return f"{self.path}:{self.line}: unreadable entry ({self.detail})"


@dataclass
class ReadResult:
    entries: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def corrupt(self) -> list[Problem]:
        return [p for p in self.problems if p.kind == "corrupt"]

    def raise_if_corrupt(self) -> None:
        bad = self.corrupt
        if bad:
            first = bad[0]
            more = f" (and {len(bad) - 1} more line(s))" if len(bad) > 1 else ""
            raise IncidentError(
                f"the incident record {first.path} is damaged at line {first.line}: {first.detail}{more}",
                hint="`ppdoctor incident show` lists what is readable; move the file aside or "
                "`ppdoctor incident new` to start a fresh record",
            )


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ppdoctor" / "incidents"


def new_incident_id(now: float | None = None) -> str:
    """Sortable by time, unique across processes: 20261202T052241Z-3f9a."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now if now is not None else time.time()))
    return f"{stamp}-{secrets.token_hex(2)}"


def _is_entry(text: str) -> bool:
    try:
        entry = json.loads(text)
    except ValueError:
        return False
    return isinstance(entry, dict) and "kind" in entry and isinstance(entry.get("at"), (int, float))


class IncidentLog:
    """One incident's file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def id(self) -> str:
        return self.path.name.removesuffix(SUFFIX)

    # --- writing ---------------------------------------------------------------------------

    def append(
        self, kind: str, summary: str, data: dict[str, Any] | None = None, *, by: str = "", at: float | None = None
    ) -> dict[str, Any]:
        """Append one entry atomically (locked, flushed, fsynced); returns it with its final time."""
        try:
            return self._append(kind, summary, data, by=by, at=at)
        except OSError as exc:
            raise IncidentError(
                f"cannot write the incident record {self.path}: {exc.strerror or exc}",
                hint="make $XDG_STATE_HOME/ppdoctor writable (or point XDG_STATE_HOME elsewhere)",
            ) from exc

    def _append(self, kind: str, summary: str, data: dict[str, Any] | None, *, by: str, at: float | None) -> dict[str, Any]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        entry = {
            "v": ENTRY_VERSION,
            "at": 0.0,
            "kind": kind,
            "summary": summary,
            "data": data or {},
            "by": by,
            "pid": os.getpid(),
            "eid": secrets.token_hex(6),
        }
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                last_at, torn = self._tail(fd)
                if torn is not None and _is_entry(torn[1]):
                    os.write(fd, b"\n")  # a whole entry that only lacked its newline: complete it
                    last_at = max(last_at, float(json.loads(torn[1])["at"]))
                elif torn is not None:
                    self._cut_torn(fd, *torn)
                    note = {
                        "v": ENTRY_VERSION,
                        "at": max(time.time(), last_at + _MIN_STEP_S),
                        "kind": "note",
                        "summary": "an interrupted write had left an incomplete line; it was cut off and kept here",
                        "data": {"torn_fragment": torn[1][:2000]},
                        "by": by,
                        "pid": os.getpid(),
                        "eid": secrets.token_hex(6),
                    }
                    self._write_line(fd, note)
                    last_at = note["at"]
                entry["at"] = max(at if at is not None else time.time(), last_at + _MIN_STEP_S)
                self._write_line(fd, entry)
                os.fsync(fd)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        return entry

    @staticmethod
    def _write_line(fd: int, entry: dict[str, Any]) -> None:
        line = (json.dumps(entry, default=str, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        view = memoryview(line)
        while view:
            n = os.write(fd, view)
            view = view[n:]

    @staticmethod
    def _tail(fd: int) -> tuple[float, tuple[int, str] | None]:
        """The time of the last complete entry, and (offset, text) of a torn last line if there is one."""
        size = os.fstat(fd).st_size
        if size == 0:
            return 0.0, None
        pos, buf = size, b""
        while pos > 0:
            step = min(_TAIL_CHUNK, pos)
            pos -= step
            buf = os.pread(fd, step, pos) + buf
            if buf.count(b"\n") >= 2 or (pos == 0):
                break
        torn = None
        if not buf.endswith(b"\n"):
            cut = buf.rfind(b"\n") + 1
            torn = (pos + cut, buf[cut:].decode("utf-8", "replace"))
            buf = buf[:cut]
        last_at = 0.0
        for line in reversed(buf.splitlines()):
            try:
                last_at = float(json.loads(line).get("at") or 0.0)
                break
            except (ValueError, AttributeError, TypeError):
                continue
        return last_at, torn

    @staticmethod
    def _cut_torn(fd: int, offset: int, _text: str) -> None:
        os.ftruncate(fd, offset)

    # --- reading ---------------------------------------------------------------------------

    def read(self) -> ReadResult:
        """Every readable entry in order, with the lines that could not be read (never raises for content)."""
        out = ReadResult()
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return out
        except OSError as exc:
            raise IncidentError(f"cannot read the incident record {self.path}: {exc.strerror}") from exc
        lines = raw.split(b"\n")
        complete_end = len(lines) - 1  # the part after the last newline is not a complete line
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            torn = number > complete_end
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict) or "kind" not in entry or "at" not in entry:
                    raise ValueError("not an incident entry (needs kind and at)")
            except ValueError as exc:
                detail = f"{len(line)} bytes" if torn else (str(exc)[:200] or "not JSON")
                out.problems.append(Problem(self.path, number, "torn" if torn else "corrupt", detail))
                continue
            out.entries.append(entry)  # (a whole entry lacking only its newline is kept)
        return out

    def entries(self) -> list[dict[str, Any]]:
        result = self.read()
        result.raise_if_corrupt()
        return result.entries


@dataclass
class IncidentInfo:
    id: str
    path: Path
    opened_at: float
    closed_at: float | None
    last_at: float
    count: int
    target: str
    close_note: str = ""
    instance: str = ""

    @property
    def open(self) -> bool:
        return self.closed_at is None


def summarize(log: IncidentLog) -> IncidentInfo:
    entries = log.read().entries
    opened = next(
        (e for e in entries if e.get("kind") == "incident" and (e.get("data") or {}).get("action") == "open"), None
    )
    closed = next(
        (
            e
            for e in reversed(entries)
            if e.get("kind") == "incident" and (e.get("data") or {}).get("action") == "close"
        ),
        None,
    )
    target = ((opened or {}).get("data") or {}).get("target", "")
    return IncidentInfo(
        id=log.id,
        path=log.path,
        opened_at=float(entries[0]["at"]) if entries else 0.0,
        closed_at=float(closed["at"]) if closed else None,
        last_at=float(entries[-1]["at"]) if entries else 0.0,
        count=len(entries),
        target=str(target),
        close_note=str(((closed or {}).get("data") or {}).get("note", "")),
        instance=str(((opened or {}).get("data") or {}).get("instance") or ""),
    )


def _opened_key(log: IncidentLog) -> tuple[float, str]:
    """Order incidents by when they were opened (the first entry), the id breaking ties."""
    try:
        with open(log.path, "rb") as f:
            return float(json.loads(f.readline()).get("at") or 0.0), log.id
    except (OSError, ValueError, AttributeError, TypeError):
        return 0.0, log.id


class TargetIncidents:
    """All incidents of one target (one directory); choosing or creating the current one is locked."""

    def __init__(self, key: str, label: str = "", base: Path | None = None) -> None:
        self.key = key
        self.label = label or key
        self.dir = (base or state_dir()) / key

    def logs(self) -> list[IncidentLog]:
        if not self.dir.is_dir():
            return []
        return sorted((IncidentLog(p) for p in self.dir.glob("*" + SUFFIX)), key=_opened_key)

    def infos(self) -> list[IncidentInfo]:
        return [summarize(log) for log in self.logs()]

    def find(self, ident: str) -> IncidentLog:
        """An incident by id or unique id prefix."""
        matches = [log for log in self.logs() if log.id == ident] or [
            log for log in self.logs() if log.id.startswith(ident)
        ]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(log.id for log in self.logs()) or "none"
        what = "several incidents match" if matches else "no incident"
        raise IncidentError(f"{what} {ident!r} for target {self.label}", hint=f"known incidents: {known}")

    def _locked(self) -> "_DirLock":
        return _DirLock(self.dir / ".lock")

    def current(self, *, create: bool = True, by: str = "", meta: dict[str, Any] | None = None) -> IncidentLog | None:
        """The open incident (the newest one not closed); a new one when there is none and ``create``.

        ``meta["instance"]`` names the physical target (the NLB's ARN). When the open incident was
        opened on another instance, the load balancer has been replaced since (same name, new ARN):
        that incident is closed, because its changes were made to objects that are gone.
        """
        instance = (meta or {}).get("instance") or ""
        with self._locked():
            for log in reversed(self.logs()):
                info = summarize(log)
                if info.open:
                    if instance and info.instance and info.instance != instance:
                        if not create:
                            return None
                        close(log, by=by, note=f"the target was replaced (NLB {info.instance} → {instance})")
                        break
                    return log
                break  # the newest is closed: earlier ones are closed too (``new`` closes the previous)
            if not create:
                return None
            return self._new(by, meta)

    def new(
        self, *, by: str = "", meta: dict[str, Any] | None = None, note: str = ""
    ) -> tuple[IncidentLog, IncidentLog | None]:
        """Close the open incident (if any) and start another; returns (new, closed)."""
        with self._locked():
            closed = None
            for log in reversed(self.logs()):
                if summarize(log).open:
                    close(log, by=by, note=note or "a new incident was started")
                    closed = log
                break
            return self._new(by, meta), closed

    def _new(self, by: str, meta: dict[str, Any] | None) -> IncidentLog:
        now = time.time()
        log = IncidentLog(self.dir / f"{new_incident_id(now)}{SUFFIX}")
        while log.path.exists():
            log = IncidentLog(self.dir / f"{new_incident_id(now)}{SUFFIX}")
        log.append(
            "incident",
            f"incident opened on {self.label}",
            {"action": "open", "target": self.label, "target_key": self.key, **(meta or {})},
            by=by,
            at=now,
        )
        return log


def close(log: IncidentLog, *, by: str = "", note: str = "") -> dict[str, Any]:
    return log.append(
        "incident", "incident closed" + (f": {note}" if note else ""), {"action": "close", "note": note}, by=by
    )


class _DirLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> "_DirLock":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise IncidentError(
                f"cannot write the incident records in {self.path.parent}: {exc.strerror or exc}",
                hint="make $XDG_STATE_HOME/ppdoctor writable (or point XDG_STATE_HOME elsewhere)",
            ) from exc
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: Any) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def all_targets(base: Path | None = None) -> Iterator[TargetIncidents]:
    root = base or state_dir()
    if not root.is_dir():
        return
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        label = ""
        logs = sorted((IncidentLog(p) for p in d.glob("*" + SUFFIX)), key=_opened_key)
        if logs:
            label = summarize(logs[-1]).target
        yield TargetIncidents(d.name, label, base=root)
