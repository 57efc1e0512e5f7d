"""Command-line entry point: the TUI by default, headless sub-commands for scripts and tests.

Start-up time matters during an incident, so this module imports nothing heavy: each
sub-command names its handler as "module:function" and the module is imported only
when that sub-command runs (boto3, kubernetes, scapy and textual stay unloaded for
``--help``, ``--version`` and ``pp``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable, Sequence

from . import __version__
from .errors import PPDoctorError

EXIT_OK = 0
EXIT_USAGE = 2


def _handler(spec: str) -> Callable[[argparse.Namespace], int]:
    module, _, func = spec.partition(":")

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module), func)(args)

    return run


def _target_choice(parser: argparse.ArgumentParser) -> None:
    """--gateway/--port: which discovered path to use when discovery finds several."""
    parser.add_argument("--gateway", metavar="NS/NAME", help="discovered gateway to use (Gateway, Deployment or Service)")
    parser.add_argument("--port", type=int, metavar="N", help="Service / NLB listener port of the path to use")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ppdoctor",
        description=(
            "Diagnose lost client IPs, hangs, empty replies and 400s behind an AWS NLB "
            "and an Istio ingress gateway (PROXY protocol v2)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"ppdoctor {__version__}")
    parser.add_argument("--config", metavar="FILE", help="target configuration (TOML)")
    parser.add_argument("--lab", action="store_true", help="start the embedded lab and open the TUI on it")
    parser.add_argument("--scenario", metavar="NAME", help="lab scenario for --lab")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    # pp: the PROXY protocol codec for people pasting bytes from tcpdump
    pp = sub.add_parser("pp", help="decode or encode PROXY protocol headers")
    pp_sub = pp.add_subparsers(dest="pp_command", metavar="ACTION", required=True)
    dec = pp_sub.add_parser("decode", help="decode a PROXY header given as hex ('-' reads stdin)")
    dec.add_argument("hex", nargs="+", help="hex bytes; spaces allowed; '-' reads standard input")
    dec.add_argument("--json", action="store_true", help="print one JSON object")
    dec.set_defaults(run=_handler("ppdoctor.proxyproto.cli:run_decode"))
    enc = pp_sub.add_parser("encode", help="build a PROXY header and print it as hex")
    enc.add_argument("--src", metavar="IP:PORT", help="source address (client)")
    enc.add_argument("--dst", metavar="IP:PORT", help="destination address (proxy)")
    enc.add_argument("--v1", action="store_true", help="text header (version 1)")
    enc.add_argument("--local", action="store_true", help="LOCAL command (health-check style)")
    enc.add_argument("--crc32c", action="store_true", help="append a CRC32C TLV")
    enc.add_argument("--vpce", metavar="ID", help="AWS 0xEA TLV with this VPC endpoint id")
    enc.add_argument("--authority", metavar="HOST", help="AUTHORITY TLV (SNI)")
    enc.add_argument("--tlv", metavar="TYPE=HEX", action="append", default=[], help="extra TLV")
    enc.set_defaults(run=_handler("ppdoctor.proxyproto.cli:run_encode"))

    # probe: the probe engine, headless
    probe = sub.add_parser("probe", help="run one probe, or all of them")
    probe.add_argument("name", nargs="?", help="probe name (see --list)")
    probe.add_argument("--all", action="store_true", help="run every probe concurrently")
    probe.add_argument("--list", action="store_true", help="list the probes")
    probe.add_argument("--json", action="store_true", help="print {\"observations\": [...]}")
    probe.add_argument("-v", "--verbose", action="store_true", help="also print the facts")
    probe.add_argument("--yes", action="store_true", help="confirm a probe that changes the target without asking")
    _target_choice(probe)
    probe.set_defaults(run=_handler("ppdoctor.probes.cli:run"))

    # diagnose: probes → findings
    diag = sub.add_parser("diagnose", help="run the probes and name the root cause (exit 0 ok, 1 warnings, 2 errors)")
    diag.add_argument("--json", action="store_true", help="print {\"findings\": [...]}")
    diag.add_argument("-v", "--verbose", action="store_true", help="also print each finding's evidence")
    _target_choice(diag)
    diag.set_defaults(run=_handler("ppdoctor.diagnosis.cli:run"))

    # fix: plans applied after confirmation
    fix = sub.add_parser("fix", help="preview, confirm, apply and verify a fix; or roll back")
    fix.add_argument("id", nargs="?", help="fix id, e.g. FIX-TG-PP-ON")
    fix.add_argument("--list", action="store_true", help="fixes for the current findings")
    fix.add_argument("--all", action="store_true", help="apply the fixes of each finding until healthy")
    fix.add_argument("--rollback", action="store_true",
                     help="undo the current incident's changes, newest first (each checked against the live value)")
    fix.add_argument("--incident", metavar="ID", help="with --rollback: undo that (earlier) incident's changes instead")
    fix.add_argument("--yes", action="store_true", help="confirm without asking (headless)")
    fix.add_argument("--json", action="store_true")
    _target_choice(fix)
    fix.set_defaults(run=_handler("ppdoctor.fixes.cli:run"))

    # report: incident report
    rep = sub.add_parser("report", help="probe, diagnose and write an incident report (.md, .json or .html)")
    rep.add_argument("-o", "--output", required=True, metavar="FILE", help="FILE.md, FILE.json or FILE.html")
    _target_choice(rep)
    rep.add_argument("--incident", metavar="ID", help="report that incident (default: the current one)")
    rep.set_defaults(run=_handler("ppdoctor.report:run_cli"))

    # incident: the record every process appends to
    inc = sub.add_parser("incident", help="the incident record of the target: list, show, new, close, note")
    inc_sub = inc.add_subparsers(dest="incident_command", metavar="ACTION", required=True)
    inc_list = inc_sub.add_parser("list", help="incidents of the target (--all: of every target)")
    inc_list.add_argument("--all", action="store_true", help="every target with an incident record")
    inc_list.add_argument("--json", action="store_true")
    inc_list.set_defaults(run=_handler("ppdoctor.incident.cli:run_list"))
    inc_show = inc_sub.add_parser("show", help="the entries of an incident (default: the current one)")
    inc_show.add_argument("id", nargs="?", metavar="ID")
    inc_show.add_argument("--json", action="store_true", help="one JSON entry per line")
    inc_show.set_defaults(run=_handler("ppdoctor.incident.cli:run_show"))
    inc_new = inc_sub.add_parser("new", help="close the current incident and start a new one")
    inc_new.add_argument("--note", metavar="TEXT", default="")
    inc_new.set_defaults(run=_handler("ppdoctor.incident.cli:run_new"))
    inc_close = inc_sub.add_parser("close", help="close the current incident")
    inc_close.add_argument("--note", metavar="TEXT", default="")
    inc_close.set_defaults(run=_handler("ppdoctor.incident.cli:run_close"))
    inc_note = inc_sub.add_parser("note", help="add an operator note to the current incident")
    inc_note.add_argument("text", nargs="+", metavar="TEXT")
    inc_note.set_defaults(run=_handler("ppdoctor.incident.cli:run_note"))

    # bench: PROXY protocol latency cost, open loop
    bench = sub.add_parser("bench", help="open-loop load test: latency with PROXY protocol v2 off vs on")
    bench.add_argument("--rate", required=True, metavar="R[,R...]",
                       help="requests/s, comma-separated; 'max' = closed-loop max throughput")
    bench.add_argument("--duration", default="10", metavar="S", help="seconds per run (30, 30s, 500ms, 2m)")
    bench.add_argument("--connections", type=int, default=32, metavar="N")
    bench.add_argument("--mode", choices=["keepalive", "new-connection"], default="keepalive")
    bench.add_argument("--target", choices=["gateway", "nlb"], default="gateway")
    bench.add_argument("--path", default="/bench")
    bench.add_argument("--pp", choices=["both", "on", "off"], default="both", help="sides to run")
    bench.add_argument("--off-config", metavar="FILE", help="config of a gateway without PROXY protocol, for the PP-off side")
    bench.add_argument("--workers", default="auto", metavar="N", help="load processes per run; 0 = in-process")
    bench.add_argument("--host", metavar="HOST", help="Host header")
    bench.add_argument("--realtime", action="store_true", help="SCHED_FIFO load processes (fixed rates only)")
    bench.add_argument("--json", action="store_true")
    _target_choice(bench)
    bench.set_defaults(run=_handler("ppdoctor.bench.cli:run"))

    # discover: zero-config path discovery
    disc = sub.add_parser("discover", help="find every NLB → Istio ingress gateway path from the kube context and AWS")
    disc.add_argument("--json", action="store_true", help='print {"paths": [...], "problems": [...], "notes": [...]}')
    disc.add_argument("--write", metavar="FILE", help="save the chosen path as a config file")
    _target_choice(disc)
    disc.set_defaults(run=_handler("ppdoctor.discovery.cli:run"))

    # permissions: least-privilege IAM policy and Kubernetes RBAC
    perm = sub.add_parser("permissions", help="print the IAM policy and Kubernetes RBAC ppdoctor needs")
    which = perm.add_mutually_exclusive_group()
    which.add_argument("--aws", action="store_true", help="only the IAM policy (JSON)")
    which.add_argument("--kube", action="store_true", help="only the Kubernetes ClusterRole (YAML)")
    perm.add_argument("--with-fixes", action="store_true", help="also what the fixes change")
    perm.set_defaults(run=_handler("ppdoctor.probes.permissions:run_cli"))
    # pcap: offline evidence from a capture
    pcap = sub.add_parser("pcap", help="classify the TCP flows of a pcap/pcapng capture and name the cause "
                                       "(exit 0 none, 1 findings, 2 unusable file)")
    pcap.add_argument("file", metavar="FILE", help="capture written by tcpdump -w, tshark or Wireshark")
    pcap.add_argument("--json", action="store_true", help="print one JSON object")
    pcap.add_argument("--nlb-ip", action="append", metavar="IP", help="an address of the NLB (repeatable)")
    pcap.add_argument("--vpc", action="append", metavar="CIDR", help="the VPC's CIDR block (repeatable)")
    pcap.add_argument("--port", action="append", type=int, metavar="N", help="only flows to this port (repeatable)")
    pcap.set_defaults(run=_handler("ppdoctor.pcap.cli:run"))

    # echo: PP-aware echo server
    echo = sub.add_parser("echo", help="run a PROXY-protocol-aware HTTP echo server")
    echo.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT")
    echo.add_argument(
        "--proxy-protocol",
        choices=["optional", "required", "off"],
        default="optional",
        help="expect a PROXY header (default: accept with or without)",
    )
    echo.set_defaults(run=_handler("ppdoctor.echo.server:run_cli"))

    # lab: the embedded AWS NLB + Istio gateway world
    lab = sub.add_parser("lab", help="start, stop or list the embedded lab")
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    lab_list = lab_sub.add_parser("list", help="list lab scenarios")
    lab_list.add_argument("--json", action="store_true")
    lab_list.set_defaults(run=_handler("ppdoctor.lab.cli:run_list"))
    up = lab_sub.add_parser("up", help="start the lab and wait until it is ready")
    up.add_argument("--scenario", metavar="NAME", help="scenario name or path to a scenario file")
    up.add_argument("--json", action="store_true", help="print the endpoints as one JSON object")
    up.add_argument("--detach", action="store_true", help="return once ready and leave the lab running")
    up.add_argument("--state-dir", metavar="DIR", help="where the lab keeps its files")
    up.set_defaults(run=_handler("ppdoctor.lab.cli:run_up"))
    down = lab_sub.add_parser("down", help="stop a detached lab")
    down.add_argument("--state-dir", metavar="DIR")
    down.set_defaults(run=_handler("ppdoctor.lab.cli:run_down"))
    status = lab_sub.add_parser("status", help="show the running lab's endpoints")
    status.add_argument("--state-dir", metavar="DIR")
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=_handler("ppdoctor.lab.cli:run_status"))
    cap = lab_sub.add_parser("capture", help="tcpdump the lab's loopback traffic while the probes run")
    cap.add_argument("--scenario", metavar="NAME", help="scenario to start (default: the running lab's)")
    cap.add_argument("-o", "--output", required=True, metavar="FILE", help="pcap file to write")
    cap.add_argument("--state-dir", metavar="DIR", help="use the lab running from here")
    cap.add_argument("--json", action="store_true")
    cap.set_defaults(run=_handler("ppdoctor.lab.cli:run_capture"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "run", None)
    if run is None:
        if args.lab:
            args.run = _handler("ppdoctor.tui:run_lab")
        else:
            args.run = _handler("ppdoctor.tui:run_default")
        run = args.run
    try:
        return int(run(args) or 0)
    except PPDoctorError as exc:
        print(f"ppdoctor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ppdoctor: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
