"""The incident report: Markdown, JSON or HTML of an incident record, with secrets redacted.

It tells the incident from its record (``ppdoctor.incident``): the verdict before and after,
the first diagnosis with the probe results that showed the failure, each plan with who
confirmed it and when, each change before → after with its verification, rollbacks, the final
diagnosis, the bench table, and a timeline of real relative times. The format follows the file
suffix (``report_format``), the one rule the CLI and the TUI both use. JSON schema:
``docs/report.md``. Every string goes through ``redact`` before it is written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import PPDoctorError
from .model import BREAKS, SCHEMA_VERSION, build_from_entries, mermaid
from .redact import REDACTED, redact, redact_text
from .render import markdown, page

__all__ = [
    "BREAKS",
    "FORMATS",
    "REDACTED",
    "SCHEMA_VERSION",
    "build_report",
    "mermaid",
    "redact",
    "redact_text",
    "render_report",
    "report_format",
    "run_cli",
    "write_report",
]

FORMATS = {".md": "md", ".markdown": "md", ".json": "json", ".html": "html", ".htm": "html"}


def report_format(path: str | os.PathLike[str]) -> str:
    """md, json or html from the file name; anything else is a usage error that says what to use."""
    suffix = Path(path).suffix.lower()
    fmt = FORMATS.get(suffix)
    if fmt is None:
        raise PPDoctorError(
            f"cannot tell the report format from {str(path)!r}", hint="use a file name ending in .md, .json or .html"
        )
    return fmt


def _incident_meta(session: Any) -> dict[str, Any]:
    log = getattr(session, "incident", None)
    if log is None:
        return {}
    from ..incident import summarize_log, target_identity

    key, label, _ = target_identity(session.config)
    info = summarize_log(log)
    return {
        "id": log.id,
        "target": label,
        "target_key": key,
        "status": "open" if info.open else "closed",
        "closed_at": info.closed_at,
        "path": str(log.path),
    }


def build_report(session: Any, *, entries: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The report as data (the JSON format) from a session's incident record; every string redacted."""
    if entries is None:
        entries = session.entries()
    return build_from_entries(
        entries,
        session.config.as_dict(),
        incident=_incident_meta(session),
        warnings=list(getattr(session, "load_warnings", []) or []),
    )


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, indent=2, default=str)
    if fmt == "md":
        return markdown(report)
    if fmt == "html":
        return page(report)
    raise PPDoctorError(f"unknown report format {fmt!r}", hint="use a file name ending in .md, .json or .html")


def render_report(session: Any, fmt: str, **kwargs: Any) -> str:
    return render(build_report(session, **kwargs), fmt)


def write_text(path: Path, text: str) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise PPDoctorError(f"cannot write the report to {path}: {exc.strerror}", hint="choose another path") from exc
    return path


def write_report(session: Any, path: str | os.PathLike[str], **kwargs: Any) -> Path:
    path = Path(path)
    return write_text(path, render_report(session, report_format(path), **kwargs))


def run_cli(args: Any) -> int:
    """``ppdoctor report -o FILE``: probe and diagnose once more (the "after"), then write the current incident.

    With ``--incident ID`` the named incident is written as recorded, without probing.
    """
    import asyncio
    import sys

    from ..incident import incidents_for
    from ..session import IncidentSession

    fmt = report_format(args.output)  # a bad suffix fails before any probe runs
    from ..discovery.target import config_for_args

    config = config_for_args(args)  # no complete config file: discover the path
    if getattr(args, "incident", None):
        session = IncidentSession(config, incident=incidents_for(config).find(args.incident))
    else:
        session = IncidentSession.open(config, by="cli report")
        asyncio.run(session.probe_all())
        session.diagnose()
    for warning in session.load_warnings:
        print(f"ppdoctor: warning: {warning}", file=sys.stderr)
    path = write_text(Path(args.output), render_report(session, fmt))
    print(f"report of incident {session.incident.id if session.incident else '-'} written to {path}")
    return 0
