"""A capture in, a diagnosis out: flows classified, a summary by class, and catalogue findings with flows as evidence."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from socket import AF_INET, AF_INET6, inet_ntop
from typing import Any

from .classify import classify_server, client_class, client_details
from .flows import CLIENT_PREFIX, MAX_OPEN_FLOWS, Flow, FlowTracker
from .reader import CaptureError, ReadStats

__all__ = ["Analysis", "analyze", "HANDSHAKE", "FIRST_BYTES", "ANSWER"]

# Class names of the JSON summary (docs/pcap.md); the first ones are the issue's, the rest additions.
HANDSHAKE = ("complete", "syn-unanswered", "asymmetric", "reset", "synack-unanswered", "mid-stream")
FIRST_BYTES = ("ppv2-proxy", "ppv2-local", "ppv1", "http", "tls", "other", "none", "ppv2-invalid", "unknown")
ANSWER = ("http-2xx", "http-3xx", "http-4xx", "http-5xx", "reset", "empty", "none", "http-1xx", "http-other", "other")

EXAMPLES_PER_CLASS = 3
EVIDENCE_PER_FINDING = 10
_MAX_BUCKETS = 4096  # (category, address, port) buckets kept for findings; beyond, only counted


def _ip(packed: bytes) -> str:
    return inet_ntop(AF_INET if len(packed) == 4 else AF_INET6, packed)


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def handshake_class(flow: Flow) -> str:
    if flow.mid_stream:
        return "mid-stream"
    if flow.synack_from is not None and not flow.synack:
        return "asymmetric"
    if flow.synack:
        return "complete" if flow.acked else "synack-unanswered"
    return "reset" if flow.s_rst else "syn-unanswered"


_PP = frozenset(("ppv2-proxy", "ppv2-local", "ppv2-invalid", "ppv1", "none"))


def flow_classes(flow: Flow, client_data: bytes) -> tuple[str, str, str, object, dict, bool]:
    """(handshake, first_bytes, answer, parsed PROXY header, answer details, ELB health checker) of a flow."""
    first, parsed, elb = client_class(client_data)
    if flow.mid_stream and first not in _PP:
        first = "unknown"  # without the SYN these need not be the connection's first bytes
    answer, adetails = classify_server(flow.server_bytes(), flow.s_rst, flow.s_fin)
    return handshake_class(flow), first, answer, parsed, adetails, elb


def flow_record(flow: Flow, classes: tuple | None = None, client_data: bytes | None = None) -> dict[str, Any]:
    """One flow as the JSON evidence shape: 5-tuple, time, the three classes and what decided them."""
    if client_data is None:
        client_data = flow.client_bytes()
    handshake, first, answer, parsed, adetails, _ = classes or flow_classes(flow, client_data)
    details = client_details(first, client_data, parsed)
    client_ip, server_ip = _ip(flow.client), _ip(flow.server)
    rec: dict[str, Any] = {
        "client": _endpoint(client_ip, flow.cport),
        "server": _endpoint(server_ip, flow.sport),
        "protocol": "tcp",
        "time": _iso(flow.first_ts),
        "handshake": handshake,
        "first_bytes": first,
        "answer": answer,
        "packets": flow.packets,
    }
    if flow.syns > 1:
        rec["syn_retransmits"] = flow.syns - 1
    if flow.synack_from is not None:
        rec["synack_from"] = _ip(flow.synack_from)
    rec.update(details)
    rec.update(adetails)
    if flow.cut:
        rec["cut"] = True
    if flow.ooo:
        rec["reordered"] = True
    if len(client_data) >= CLIENT_PREFIX:
        rec["first_bytes_prefix"] = CLIENT_PREFIX
    return rec


@dataclass
class Analysis:
    """The result: counts, the first flows of every class, evidence buckets, notes; ``as_dict`` is the JSON."""

    path: str
    nlb_ips: set[str] = field(default_factory=set)
    vpcs: list = field(default_factory=list)
    ports: list[int] | None = None
    stats: ReadStats = field(default_factory=ReadStats)
    flows: int = 0
    health_checks: int = 0
    summary: dict[str, dict[str, int]] = field(
        default_factory=lambda: {"handshake": {}, "first_bytes": {}, "answer": {}})
    examples: dict[tuple[str, str], list[dict]] = field(default_factory=dict)
    table: list[dict] = field(default_factory=list)  # the first flows, for the TUI's table
    table_limit: int = 500
    buckets: dict[tuple, list] = field(default_factory=dict)  # (category, address, port) → [count, flows]
    buckets_dropped: int = 0
    local_sources: set[str] = field(default_factory=set)
    _ips: dict[bytes, str] = field(default_factory=dict)
    _combos: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (handshake, first, answer) → flows
    _combos_full: set[tuple[str, str, str]] = field(default_factory=set)
    peak_open: int = 0
    evicted: int = 0
    findings: list = field(default_factory=list)

    # --- collecting ------------------------------------------------------------------------

    def add(self, flow: Flow) -> None:
        """Count one finished flow; its full record is built only while an example, table row or
        evidence slot still wants it (building it costs more than classifying)."""
        client_data = flow.client_bytes()
        classes = flow_classes(flow, client_data)
        handshake, first, answer, parsed, _, elb = classes
        self.flows += 1
        packed = flow.client
        client_ip = self._ips.get(packed)
        if client_ip is None:
            client_ip = _ip(packed)
            if len(self._ips) < 65536:
                self._ips[packed] = client_ip
        hc = (first == "ppv2-local" or elb
              or (first == "none" and handshake == "complete" and client_ip in self.nlb_ips))
        if first == "ppv2-local":
            self.local_sources.add(client_ip)
        rec = None
        if hc:
            self.health_checks += 1
        combo = (handshake, first, answer)
        n = self._combos.get(combo)
        if n is None:
            n = 0
        self._combos[combo] = n + 1
        if combo not in self._combos_full:
            # Examples are still wanted for one of this combination's classes (the usual case only
            # for a capture's first few flows of each kind).
            full = True
            summary = self.summary
            examples = self.examples
            for kind, cls in (("handshake", handshake), ("first_bytes", first), ("answer", answer)):
                ex = examples.get((kind, cls))
                if ex is None:
                    ex = examples[(kind, cls)] = []
                    summary[kind].setdefault(cls, 0)
                if len(ex) < EXAMPLES_PER_CLASS:
                    if rec is None:
                        rec = self._record(flow, classes, client_data, hc)
                    ex.append(rec)
                    full = full and len(ex) >= EXAMPLES_PER_CLASS
            if full:
                self._combos_full.add(combo)
        if len(self.table) < self.table_limit:
            if rec is None:
                rec = self._record(flow, classes, client_data, hc)
            self.table.append(rec)
        category = None
        if first == "ppv2-proxy" or first == "ppv2-local":
            if answer == "http-4xx":
                category = "pp-4xx"
            elif answer.startswith("http-"):
                category = "pp-ok"
            src = parsed.header.src if first == "ppv2-proxy" and not isinstance(parsed, str) else None
            if src is not None and not hc:
                src_ip = src.address
                if src_ip in (self.nlb_ips or self.local_sources):
                    rec = self._put("pp-src", src_ip, flow.sport, rec, flow, classes, client_data, hc)
        elif first == "http" and not hc:
            if answer == "reset" or answer == "empty":
                category = "plain-closed"
            elif answer.startswith("http-"):
                category = "plain-ok"
        if category is not None:
            rec = self._put(category, client_ip, flow.sport, rec, flow, classes, client_data, hc)
        if flow.syns > 1 and (handshake == "syn-unanswered" or handshake == "synack-unanswered"):
            self._put("syn-retrans", client_ip, flow.sport, rec, flow, classes, client_data, hc)
        elif handshake == "asymmetric":
            self._put("asymmetric", client_ip, flow.sport, rec, flow, classes, client_data, hc)

    def _record(self, flow: Flow, classes: tuple, client_data: bytes, hc: bool) -> dict:
        rec = flow_record(flow, classes, client_data)
        if hc:
            rec["health_check"] = True
        return rec

    def _put(self, category: str, address: str, port: int, rec, flow, classes, client_data, hc) -> dict | None:
        key = (category, address, port)
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= _MAX_BUCKETS:
                self.buckets_dropped += 1
                return rec
            bucket = self.buckets[key] = [0, []]
        bucket[0] += 1
        if len(bucket[1]) < EVIDENCE_PER_FINDING:
            if rec is None:
                rec = self._record(flow, classes, client_data, hc)
            bucket[1].append(rec)
        return rec

    # --- deciding ------------------------------------------------------------------------

    def nlb(self) -> set[str]:
        """The NLB's addresses: given with --nlb-ip; else the sources of PPv2 LOCAL (health-check) headers
        (a prober that sends LOCAL headers too would be taken for the NLB: --nlb-ip avoids that)."""
        return self.nlb_ips or self.local_sources

    def _in_vpc(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self.vpcs)

    def _select(self, category: str, want=lambda addr, port: True) -> tuple[int, list[dict], set[int]]:
        count, flows, ports = 0, [], set()
        for (cat, addr, port), (n, recs) in self.buckets.items():
            if cat == category and want(addr, port):
                count += n
                ports.add(port)
                flows.extend(recs[: EVIDENCE_PER_FINDING - len(flows)])
        return count, flows, ports

    def decide(self) -> list:
        """Findings from the catalogue that the capture decides (docs/pcap.md has the table)."""

        def finding(fid, severity, confidence, explanation, count, flows, fixes):
            # The diagnosis package loads the probes package (~0.1 s): only once something is decided.
            from ..diagnosis.model import Finding
            from ..diagnosis.rules import CATALOGUE

            return Finding(fid, CATALOGUE[fid], severity, confidence,
                           f"{explanation} ({count} flow{'s' if count != 1 else ''} in the capture).", flows,
                           [], list(fixes))

        nlb = self.nlb()
        out = []
        # PPD003: PROXY v2 arrives (from the NLB when its address is known) and is answered by 4xx.
        n, flows, _ = self._select("pp-4xx", lambda a, p: not nlb or a in nlb)
        if n:
            out.append(finding(
                "PPD003", "error", 0.9 if nlb else 0.75,
                "Connections open with a PROXY v2 header and the gateway answers 400: its listener reads the "
                "binary header as a broken HTTP request, so it has no proxy_protocol filter", n, flows,
                ["FIX-GW-PP-ON"]))
        # PPD004: plain HTTP (from the NLB when known) closed without a byte on a port that serves no plain HTTP.
        plain_ok_ports = {p for (cat, _a, p) in self.buckets if cat == "plain-ok"}
        pp_ports = {p for (cat, _a, p) in self.buckets if cat in ("pp-ok", "pp-4xx")}
        if nlb:
            n, flows, ports = self._select("plain-closed", lambda a, p: a in nlb and p not in plain_ok_ports)
        else:
            n, flows, ports = self._select("plain-closed", lambda a, p: p not in plain_ok_ports | pp_ports)
        if n:
            serves_pp = bool(ports & {p for (cat, _a, p) in self.buckets if cat == "pp-ok"})
            out.append(finding(
                "PPD004", "error", 0.9 if nlb and serves_pp else 0.8 if nlb else 0.7,
                "Plain HTTP without a PROXY header arrives " + ("from the NLB " if nlb else "")
                + f"on port {', '.join(str(p) for p in sorted(ports))} and the gateway closes it without a byte "
                "(reset or empty reply): the gateway requires PROXY protocol, the target group does not send it",
                n, flows, ["FIX-TG-PP-ON"]))
        # PPD001: the gateway's peer is the NLB itself, no header: the client's address is lost.
        if nlb:
            n, flows, _ = self._select("plain-ok", lambda a, p: a in nlb)
            m, more, _ = self._select("pp-src", lambda a, p: a in nlb)
            if n or m:
                out.append(finding(
                    "PPD001", "error", 0.85,
                    "Requests reach the gateway from the NLB's own address without a PROXY header carrying the "
                    "client's (or with a header whose source is the NLB): X-Forwarded-For can only show the NLB",
                    n + m, (flows + more)[:EVIDENCE_PER_FINDING], ["FIX-PP-ENABLE"]))
        # PPD002: handshakes that never complete (SYN retransmitted) for clients whose own address arrives
        # (preservation), or a SYN-ACK from another address (the reply left around the NLB).
        n, flows, _ = self._select("asymmetric")
        if nlb or self.vpcs:
            m, more, _ = self._select("syn-retrans", lambda a, p: a not in nlb and not self._in_vpc(a))
        else:
            m, more = 0, []
        if n or m:
            out.append(finding(
                "PPD002", "error", 0.85 if n else 0.7,
                "Handshakes of clients whose own address reaches the targets (client IP preservation) never "
                "complete: the SYN is retransmitted" + (" and the SYN-ACK comes from another address" if n else "")
                + ", so the reply leaves around the NLB and the client never gets it", n + m,
                (flows + more)[:EVIDENCE_PER_FINDING], ["FIX-TG-PRESERVE-OFF", "FIX-PP-ENABLE"]))
        self.findings = out
        return out

    def notes(self) -> list[str]:
        out = self.stats.notes()
        if self.evicted:
            out.append(f"{self.evicted} flow(s) still open when {MAX_OPEN_FLOWS} were open at once: classified "
                       "early with what was seen")
        if self.buckets_dropped:
            out.append(f"{self.buckets_dropped} flow(s) beyond {_MAX_BUCKETS} address/port groups not kept as evidence")
        if self.local_sources and not self.nlb_ips:
            out.append("NLB addresses taken from PPv2 LOCAL health-check headers: "
                       + ", ".join(sorted(self.local_sources)) + " (give --nlb-ip to be sure)")
        if self.ports and not self.flows:
            out.append(f"no TCP flow to port {', '.join(map(str, self.ports))}")
        return out

    def count(self) -> None:
        """Per-class counts of the summary from the per-combination counts (kept that way: one dict
        update a flow instead of three)."""
        summary = {"handshake": {}, "first_bytes": {}, "answer": {}}
        for (hs, first, answer), n in self._combos.items():
            for kind, cls in (("handshake", hs), ("first_bytes", first), ("answer", answer)):
                summary[kind][cls] = summary[kind].get(cls, 0) + n
        self.summary = summary

    def examples_list(self) -> list[dict]:
        out = []
        for kind, names in (("handshake", HANDSHAKE), ("first_bytes", FIRST_BYTES), ("answer", ANSWER)):
            for cls in names:
                flows = self.examples.get((kind, cls))
                if flows:
                    out.append({"summary": kind, "class": cls, "count": self.summary[kind][cls], "flows": flows})
        return out

    def as_dict(self) -> dict[str, Any]:
        s = self.stats
        return {
            "file": self.path,
            "format": s.format,
            "packets": s.packets,
            "tcp_segments": s.tcp,
            "flows": self.flows,
            "health_checks": self.health_checks,
            "nlb_ips": sorted(self.nlb()),
            "summary": self.summary,
            "findings": [f.as_dict() for f in self.findings],
            "examples": self.examples_list(),
            "notes": self.notes(),
            "open_flows_peak": self.peak_open,
        }


def analyze(path: str, *, nlb_ips: Iterable[str] = (), vpcs: Iterable[str] = (), ports: Iterable[int] = (),
            max_open: int = MAX_OPEN_FLOWS) -> Analysis:
    """Read the capture at ``path`` (streaming) and decide. Raises CaptureError for unusable input."""
    nets = []
    for cidr in vpcs:
        try:
            nets.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            raise CaptureError(f"--vpc {cidr!r} is not a CIDR block", hint="e.g. --vpc 10.0.0.0/16") from None
    nlb = set()
    for ip in nlb_ips:
        try:
            nlb.add(str(ipaddress.ip_address(ip)))
        except ValueError:
            raise CaptureError(f"--nlb-ip {ip!r} is not an IP address", hint="e.g. --nlb-ip 10.0.1.23") from None
    ports = sorted(set(ports)) or None
    result = Analysis(path, nlb_ips=nlb, vpcs=nets, ports=ports)
    tracker = FlowTracker(result.add, ports=ports, max_open=max_open)
    tracker.feed_file(path, result.stats)
    tracker.close()
    result.peak_open, result.evicted = tracker.peak_open, tracker.evicted
    result.count()
    stats = result.stats
    if stats.packets == 0 and not stats.cut_last:
        raise CaptureError(f"{path} holds no packets", hint="capture again while the problem happens")
    if stats.tcp == 0:
        if stats.unknown_linktypes and sum(stats.unknown_linktypes.values()) == stats.packets:
            lts = ", ".join(str(k) for k in sorted(stats.unknown_linktypes))
            raise CaptureError(f"{path}: link type {lts} is not supported",
                               hint="capture with `tcpdump -i IFACE` (Ethernet) or `-i any` (Linux cooked)")
        raise CaptureError(
            f"{path} holds {stats.packets} packet(s) but no TCP segment "
            f"({stats.non_tcp} other IP, {stats.non_ip} non-IP)",
            hint="capture the gateway's TCP traffic, e.g. `tcpdump -i any -w FILE tcp port 80 or tcp port 443`")
    result.decide()
    return result
