"""``ppdoctor pcap FILE``: the capture's flows by class and the findings it decides (exit 0 none, 1 findings, 2 bad input)."""

from __future__ import annotations

import argparse
import json
import sys

from ..text import clean
from .analyze import ANSWER, FIRST_BYTES, HANDSHAKE, Analysis, analyze
from .reader import CaptureError

EXIT_NONE, EXIT_FINDINGS, EXIT_UNUSABLE = 0, 1, 2


def describe_flow(rec: dict) -> str:
    """One line per flow: 5-tuple, time and what decided its classes (remote text already cleaned)."""
    extra = []
    for key in ("pp_source", "vpce", "crc32c", "sni", "request", "status", "syn_retransmits", "synack_from",
                "pp_error"):
        if key in rec and rec[key] is not None:
            extra.append(f"{key}={clean(rec[key], limit=120)}")
    if rec.get("health_check"):
        extra.append("health check")
    return (f"{rec['client']} → {rec['server']} at {rec['time']}: {rec['handshake']}, {rec['first_bytes']}, "
            f"{rec['answer']}" + (f" ({', '.join(extra)})" if extra else ""))


def render_text(a: Analysis) -> str:
    d = a.as_dict()
    lines = [f"{clean(a.path)}: {d['format']}, {d['packets']} packets, {d['tcp_segments']} TCP segments, "
             f"{d['flows']} flows ({d['health_checks']} health checks)"]
    if d["nlb_ips"]:
        lines.append(f"NLB addresses: {', '.join(d['nlb_ips'])}")
    for kind, names in (("handshake", HANDSHAKE), ("first_bytes", FIRST_BYTES), ("answer", ANSWER)):
        counts = d["summary"][kind]
        parts = [f"{c} {counts[c]}" for c in names if counts.get(c)]
        lines.append(f"{kind:<12} " + (", ".join(parts) if parts else "-"))
    for note in d["notes"]:
        lines.append(f"note: {note}")
    lines.append("")
    if not a.findings:
        lines.append("no finding: the capture decides none of the catalogue's causes")
    for f in a.findings:
        lines.append(f"{f.severity.upper():<5} {f.id} {f.title} [confidence {f.confidence:.2f}]")
        lines.append(f"      {f.explanation}")
        for rec in f.evidence[:5]:
            lines.append(f"      - {describe_flow(rec)}")
        if f.fixes:
            lines.append(f"      fixes: {', '.join(f.fixes)}")
    lines.append("")
    lines.append("first examples:")
    for ex in d["examples"]:
        lines.append(f"  {ex['summary']}={ex['class']} ({ex['count']}): {describe_flow(ex['flows'][0])}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        result = analyze(args.file, nlb_ips=args.nlb_ip or (), vpcs=args.vpc or (), ports=args.port or ())
    except CaptureError as exc:
        if args.json:
            print(json.dumps({"error": exc.as_dict()}))
        else:
            print(f"ppdoctor pcap: {exc.message}", file=sys.stderr)
            if exc.hint:
                print(f"  next: {exc.hint}", file=sys.stderr)
        return EXIT_UNUSABLE
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(render_text(result))
    return EXIT_FINDINGS if result.findings else EXIT_NONE
