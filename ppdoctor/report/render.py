"""Rendering the report document as Markdown or as a self-contained HTML page (no script, no network)."""

from __future__ import annotations

import html
import json
from typing import Any, Callable

from .model import top_finding


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text.replace("|", "\\|").replace("\n", " ")


def _t(seconds: float | None) -> str:
    return "-" if seconds is None else f"+{seconds:.2f} s"


def _verdict_text(v: dict[str, Any] | None) -> str:
    if not v:
        return "no diagnosis recorded"
    return f"{v['id'] or '—'} — {v['title']}"


def _confirmation_text(c: dict[str, Any] | None) -> str:
    if not c:
        return "not confirmed (no answer recorded)"
    word = "confirmed" if c["confirmed"] else "declined"
    return f"{word} by {c['by']} at {c['when']} ({_t(c['t'])})"


def _value(value: Any) -> str:
    return "(absent)" if value is None else _cell(value)


def _change_text(c: dict[str, Any]) -> str:
    return f"{_value(c.get('before'))} → {_value(c.get('after'))}"


def _verification_text(c: dict[str, Any]) -> str:
    v = c.get("verification")
    if v in ("passed", "failed"):
        return f"{v} ({c.get('verification_check')}, {c.get('verification_seconds')} s)"
    if v == "not run":
        return f"not run ({c.get('verification_check')})"
    return v or "-"


def markdown(report: dict[str, Any]) -> str:
    inc = report.get("incident") or {}
    out = [
        f"# ppdoctor incident report — {report['target'].get('name', '')}",
        "",
        f"Incident `{inc.get('id') or '(not recorded)'}` on {inc.get('target') or report['target'].get('name', '')}, "
        f"started {inc.get('started_at') or '-'}; generated {report['generated_at']} by ppdoctor "
        f"{report['environment'].get('ppdoctor')}.",
        "",
    ]
    for w in report.get("warnings") or []:
        out += [f"> warning: {w}", ""]
    before, after = report["verdict"]["before"], report["verdict"]["after"]
    out += [
        "## Verdict",
        "",
        "| | verdict | when |",
        "|---|---|---|",
        f"| before | **{_cell(_verdict_text(before))}** | {_t((before or {}).get('t'))} |",
        f"| after | **{_cell(_verdict_text(after))}** | {_t((after or {}).get('t'))} |",
        "",
    ]
    first = report.get("first_diagnosis")
    if first and first.get("finding"):
        f = first["finding"]
        out += [
            f"## First diagnosis ({_t(first['t'])})",
            "",
            f"**{f['id']} {f['title']}** ({f['severity']}, confidence {f['confidence']}). {f['explanation']}",
            "",
        ]
        if first["evidence"]:
            out.append("Evidence:")
            out += [
                f"- `{ev['fact']}` = `{json.dumps(ev['value'], default=str)}` ({ev['source']})"
                for ev in first["evidence"]
            ]
            out.append("")
        if first["failing_observations"]:
            out.append("What the probes saw:")
            for o in first["failing_observations"]:
                cls = f" ({o['failure_class']})" if o.get("failure_class") else ""
                out.append(f"- **{o['probe']}** {o['status']}{cls}: {o['summary']}")
            out.append("")
    out += ["## Traffic path where it broke", "", "```mermaid", report["diagram"], "```", ""]
    out += ["## Plans", ""]
    if report["plans"]:
        for p in report["plans"]:
            out.append(
                f"- {_t(p['t'])} **{p['fix']}** {p['title']} — {len(p['changes'])} change(s) shown "
                f"({p['by'] or '-'}); {_confirmation_text(p['confirmation'])}"
            )
    else:
        out.append("No fix was planned.")
    out += ["", "## Changes", ""]
    if report["changes"]:
        out += [
            "| time | fix | object | field | before → after | status | verification | rolled back |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for c in report["changes"]:
            out.append(
                f"| {_t(c['t'])} | {c.get('fix') or ''} | {_cell(c['object'])} | {_cell(c['field'])} | "
                f"{_change_text(c)} | {c.get('status', '')}{(': ' + _cell(c['error'])) if c.get('error') else ''} | "
                f"{_verification_text(c)} | {c.get('rollback') or ''} |"
            )
    else:
        out.append("No change was applied.")
    if report.get("rollbacks"):
        out += ["", "## Rollbacks", ""]
        for r in report["rollbacks"]:
            line = f"- {_t(r['t'])} {r['status']}: {_cell(r['object'])} {_cell(r['field'])}"
            if r["status"] == "conflict":
                line += f" — before {_cell(r['before'])}, ours {_cell(r['ours'])}, now {_cell(r.get('now'))}"
            out.append(line)
    final = report.get("final_diagnosis")
    out += ["", "## Final diagnosis", ""]
    if final:
        out.append(f"At {_t(final['t'])}:")
        out.append("")
        for f in final["findings"]:
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
        if not final["findings"]:
            out += ["No rule could decide from what the probes established.", ""]
    else:
        out += ["No diagnosis recorded.", ""]
    if report.get("bench"):
        out += ["## Bench", ""]
        for b in report["bench"]:
            out += [
                f"{_t(b['t'])} {b.get('summary', '')}",
                "",
                "```",
                *(b.get("table") or []),
                *(b.get("comparison") or []),
                "```",
                "",
            ]
    if report.get("notes"):
        out += ["## Notes", ""]
        out += [f"- {_t(n['t'])} ({n['by'] or '-'}) {n['text']}" for n in report["notes"]]
        out.append("")
    out += ["## Timeline", ""]
    out += [
        f"- {_t(e['t'])} [{e['kind']}]{(' (' + e['by'] + ')') if e.get('by') else ''} {e['summary']}"
        for e in report["timeline"]
    ] or ["Nothing was recorded."]
    out += ["", "## Probe evidence (latest run of each probe)", ""]
    for o in report["observations"]:
        out += [
            f"### {o['probe']} — {o['status']}" + (f" ({o['failure_class']})" if o.get("failure_class") else ""),
            "",
            o["summary"],
            "",
            "```json",
            json.dumps(
                {"timings_ms": o.get("timings_ms"), "facts": o.get("facts"), "evidence": o.get("evidence")},
                indent=2,
                default=str,
            ),
            "```",
            "",
        ]
    out += [
        "## Target and environment",
        "",
        "```json",
        json.dumps({"target": report["target"], "environment": report["environment"]}, indent=2),
        "```",
        "",
    ]
    return "\n".join(out)


# --- HTML --------------------------------------------------------------------------------------------

# No script may run and nothing may be fetched: the page is read offline, attached to tickets,
# opened in locked-down browsers. The Mermaid source is shown as text (paste it into any Mermaid
# renderer to draw it); the report JSON rides along as inert data.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:72em;margin:1.5em auto;padding:0 1em;color:#1b1b1b}
h1{font-size:1.5em;margin-bottom:.2em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
.meta{color:#555} table{border-collapse:collapse;width:100%;font-size:.92em} td,th{border:1px solid #ccc;padding:.3em .5em;
text-align:left;vertical-align:top} th{background:#f0f0f0} pre{background:#f6f6f6;padding:.8em;overflow:auto;font-size:.85em}
.verdict{display:flex;gap:1em;flex-wrap:wrap}.card{flex:1;min-width:18em;border-radius:6px;padding:.8em 1em;border:2px solid}
.bad{border-color:#c62828;background:#fdecea}.good{border-color:#2e7d32;background:#e8f5e9}.unk{border-color:#999;background:#f4f4f4}
.card .label{font-size:.8em;text-transform:uppercase;color:#555}.card .what{font-size:1.15em;font-weight:600}
.passed{color:#2e7d32;font-weight:600}.failed{color:#c62828;font-weight:600} code{font-size:.9em}
"""


def _card(label: str, v: dict[str, Any] | None) -> str:
    e = html.escape
    cls = "unk" if not v or not v.get("id") else ("good" if v.get("healthy") else "bad")
    when = "" if not v else f"<div class='meta'>{e(_t(v.get('t')))}</div>"
    return (
        f"<div class='card {cls}' id='verdict-{e(label)}'><div class='label'>{e(label)}</div>"
        f"<div class='what'>{e(_verdict_text(v))}</div>{when}</div>"
    )


def _table(head: list[str], rows: list[list[str]], raw: Callable[[int], bool] = lambda _i: False) -> str:
    e = html.escape
    out = ["<table><thead><tr>", *(f"<th>{e(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{c if raw(i) else e(c)}</td>" for i, c in enumerate(row)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def page(report: dict[str, Any]) -> str:
    e = html.escape
    inc = report.get("incident") or {}
    name = str(report["target"].get("name", ""))
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<meta http-equiv='Content-Security-Policy' content=\"{_CSP}\">",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>{e('ppdoctor incident report — ' + name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>ppdoctor incident report — {e(name)}</h1>",
        f"<p class='meta'>Incident <code>{e(str(inc.get('id') or '(not recorded)'))}</code> on "
        f"{e(str(inc.get('target') or name))}, started {e(str(inc.get('started_at') or '-'))}; generated "
        f"{e(str(report['generated_at']))} by ppdoctor {e(str(report['environment'].get('ppdoctor')))}.</p>",
    ]
    for w in report.get("warnings") or []:
        parts.append(f"<p class='failed'>warning: {e(str(w))}</p>")
    parts += [
        "<h2>Verdict</h2><div class='verdict'>",
        _card("before", report["verdict"]["before"]),
        _card("after", report["verdict"]["after"]),
        "</div>",
    ]
    first = report.get("first_diagnosis")
    if first and first.get("finding"):
        f = first["finding"]
        parts.append(
            f"<h2>First diagnosis <span class='meta'>{e(_t(first['t']))}</span></h2>"
            f"<p><strong>{e(f['id'])} {e(f['title'])}</strong> ({e(str(f['severity']))}, confidence "
            f"{e(str(f['confidence']))}). {e(str(f['explanation']))}</p>"
        )
        if first["evidence"]:
            parts.append(
                _table(
                    ["fact", "value", "source"],
                    [
                        [str(ev["fact"]), json.dumps(ev["value"], default=str), str(ev["source"])]
                        for ev in first["evidence"]
                    ],
                )
            )
        if first["failing_observations"]:
            parts.append("<p>What the probes saw:</p>")
            parts.append(
                _table(
                    ["probe", "result", "summary"],
                    [
                        [
                            str(o["probe"]),
                            f"{o['status']}" + (f" ({o['failure_class']})" if o.get("failure_class") else ""),
                            str(o["summary"]),
                        ]
                        for o in first["failing_observations"]
                    ],
                )
            )
    parts.append(
        "<h2>Traffic path where it broke</h2><p class='meta'>Mermaid source: paste it into a Mermaid "
        "renderer to draw it (this page runs no script).</p>"
        f"<pre class='mermaid' id='diagram'>{e(report['diagram'])}</pre>"
    )
    parts.append("<h2>Plans</h2>")
    parts.append(
        _table(
            ["time", "fix", "changes shown", "confirmation"],
            [
                [_t(p["t"]), f"{p['fix']} {p['title']}", str(len(p["changes"])), _confirmation_text(p["confirmation"])]
                for p in report["plans"]
            ],
        )
        if report["plans"]
        else "<p>No fix was planned.</p>"
    )
    parts.append("<h2>Changes</h2>")
    if report["changes"]:
        rows = []
        for c in report["changes"]:
            v = c.get("verification")
            vtext = (
                f"<span class='{e(v)}'>{e(_verification_text(c))}</span>"
                if v in ("passed", "failed")
                else e(_verification_text(c))
            )
            rows.append(
                [
                    e(_t(c["t"])),
                    e(str(c.get("fix") or "")),
                    e(str(c["object"])),
                    e(str(c["field"])),
                    e(_change_text(c)),
                    e(str(c.get("status", "")) + (f": {c['error']}" if c.get("error") else "")),
                    vtext,
                    e(str(c.get("rollback") or "")),
                ]
            )
        parts.append(
            _table(
                ["time", "fix", "object", "field", "before → after", "status", "verification", "rolled back"],
                rows,
                raw=lambda _i: True,
            )
        )
    else:
        parts.append("<p>No change was applied.</p>")
    if report.get("rollbacks"):
        parts.append("<h2>Rollbacks</h2>")
        parts.append(
            _table(
                ["time", "status", "object", "field", "before", "ours", "now"],
                [
                    [
                        _t(r["t"]),
                        str(r["status"]),
                        str(r["object"]),
                        str(r["field"]),
                        _cell(r["before"]),
                        _cell(r["ours"]),
                        _cell(r.get("now")) if r["status"] == "conflict" else "",
                    ]
                    for r in report["rollbacks"]
                ],
            )
        )
    final = report.get("final_diagnosis")
    parts.append("<h2>Final diagnosis</h2>")
    if final and final["findings"]:
        parts.append(
            _table(
                ["finding", "severity", "confidence", "explanation"],
                [
                    [
                        f"{f['id']} {f['title']}"
                        + (f" (explained by {f['superseded_by']})" if f.get("superseded_by") else ""),
                        str(f["severity"]),
                        str(f["confidence"]),
                        str(f["explanation"]),
                    ]
                    for f in final["findings"]
                ],
            )
        )
    else:
        parts.append("<p>No diagnosis recorded.</p>" if not final else "<p>No rule could decide.</p>")
    if report.get("bench"):
        parts.append("<h2>Bench</h2>")
        for b in report["bench"]:
            parts.append(
                f"<p>{e(_t(b['t']))} {e(str(b.get('summary', '')))}</p>"
                f"<pre>{e(chr(10).join([*(b.get('table') or []), *(b.get('comparison') or [])]))}</pre>"
            )
    if report.get("notes"):
        parts.append(
            "<h2>Notes</h2><ul>"
            + "".join(f"<li>{e(_t(n['t']))} ({e(n['by'] or '-')}) {e(str(n['text']))}</li>" for n in report["notes"])
            + "</ul>"
        )
    parts.append("<h2>Timeline</h2>")
    parts.append(
        _table(
            ["time", "kind", "by", "what"],
            [[_t(t["t"]), str(t["kind"]), str(t.get("by") or ""), str(t["summary"])] for t in report["timeline"]],
        )
    )
    parts.append("<h2>Probe evidence</h2>")
    for o in report["observations"]:
        parts.append(
            f"<h3>{e(str(o['probe']))} — {e(str(o['status']))}</h3><p>{e(str(o['summary']))}</p>"
            f"<pre>{e(json.dumps({'timings_ms': o.get('timings_ms'), 'facts': o.get('facts'), 'evidence': o.get('evidence')}, indent=2, default=str))}</pre>"
        )
    parts.append(
        "<h2>Target and environment</h2>"
        f"<pre>{e(json.dumps({'target': report['target'], 'environment': report['environment']}, indent=2))}</pre>"
    )
    # Inert data for tools; with every "<" escaped no text inside can end or re-open the element.
    data = json.dumps(report, default=str).replace("<", "\\u003c")
    parts.append(f"<script type='application/json' id='ppdoctor-report'>{data}</script></body></html>")
    return "".join(parts)


def verdict_line(report: dict[str, Any]) -> str:
    top = top_finding(report.get("findings") or [])
    return f"{top['id']} {top['title']}" if top else "no finding"
