"""Findings a capture decides, table-driven: flows that fire each id and near-misses that must not."""

from __future__ import annotations

import struct

import pytest

from ppdoctor.pcap import analyze
from ppdoctor.proxyproto import local_v2, proxy_v2

from .capbuild import Conversation, ethernet, pcap

NLB, GW, PROBER = "10.0.1.23", "10.0.2.10", "10.0.3.3"
REQ = b"GET / HTTP/1.1\r\nHost: gw\r\n\r\n"
HC = b"GET /healthz/ready HTTP/1.1\r\nHost: gw\r\nUser-Agent: ELB-HealthChecker/2.0\r\n\r\n"
OK, BAD = b"HTTP/1.1 200 OK\r\n\r\n", b"HTTP/1.1 400 Bad Request\r\n\r\n"
_port = iter(range(30000, 60000))


def client_hello(sni: str) -> bytes:
    name = sni.encode()
    ext_sni = struct.pack("!HHHBH", 0, len(name) + 5, len(name) + 3, 0, len(name)) + name
    body = b"\x03\x03" + b"\x00" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00" + struct.pack(
        "!H", len(ext_sni)) + ext_sni
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def flow(src, first: bytes | None, answer: bytes | str, dport=8080):
    c = Conversation((src, next(_port)), (GW, dport)).handshake()
    if first:
        c.c(first)
    if answer == "reset":
        c.s(b"", 0x14)
    elif answer == "empty":
        c.s(b"", 0x11)
    elif answer:
        c.s(answer).close()
    return c.packets


def pp(src="198.51.100.7"):
    return proxy_v2((src, 40000), (NLB, 80))


CASES = {
    # id: (flows, analyze kwargs, expected ids)
    "PPD003 from the NLB": ([flow(NLB, pp() + REQ, BAD)], {"nlb_ips": [NLB]}, ["PPD003"]),
    "PPD003 NLB unknown": ([flow(NLB, pp() + REQ, BAD)], {}, ["PPD003"]),
    "PPD003 NLB inferred from LOCAL": ([flow(NLB, local_v2(), BAD), flow(NLB, pp() + REQ, BAD)], {}, ["PPD003"]),
    "near: prober's PPv2 answered 400, NLB sends plain": (
        [flow(PROBER, pp() + REQ, BAD), flow(NLB, REQ, OK)], {"nlb_ips": [NLB]}, ["PPD001"]),
    "PPD004 from the NLB": ([flow(NLB, REQ, "reset"), flow(NLB, REQ, "empty")], {"nlb_ips": [NLB]}, ["PPD004"]),
    "PPD004 NLB unknown": ([flow(NLB, REQ, "reset")], {}, ["PPD004"]),
    "near: healthy, prober's plain reset": (
        [flow(NLB, local_v2(), "empty"), flow(NLB, pp() + REQ, OK), flow(PROBER, REQ, "reset")], {}, []),
    "near: plain reset on a port that also serves plain": (
        [flow(NLB, REQ, "reset"), flow(NLB, REQ, OK)], {"nlb_ips": [NLB]}, ["PPD001"]),
    "PPD001 plain from the NLB": ([flow(NLB, REQ, OK)], {"nlb_ips": [NLB]}, ["PPD001"]),
    "PPD001 header source is the NLB": ([flow(NLB, pp(NLB) + REQ, OK)], {"nlb_ips": [NLB]}, ["PPD001"]),
    "near: NLB HTTP health check": ([flow(NLB, HC, OK, dport=15021)], {"nlb_ips": [NLB]}, []),
    "near: NLB TCP health check": ([flow(NLB, None, "empty")], {"nlb_ips": [NLB]}, []),
    "near: plain from a client, NLB unknown": ([flow(PROBER, REQ, OK)], {}, []),
    "near: healthy": ([flow(NLB, pp() + REQ, OK), flow(NLB, local_v2(), "empty")], {"nlb_ips": [NLB]}, []),
    "PPD002 SYN retransmits of a preserved client": (
        [Conversation(("198.51.100.9", 50000), (GW, 8080)).syn().synack().syn().packets], {"vpcs": ["10.0.0.0/16"]},
        ["PPD002"]),
    "near: SYN retransmits from the NLB": (
        [Conversation((NLB, 50000), (GW, 8080)).syn().syn().packets], {"nlb_ips": [NLB]}, []),
    "near: SYN retransmits, nothing known of NLB or VPC": (
        [Conversation(("198.51.100.9", 50000), (GW, 8080)).syn().syn().packets], {}, []),
    "PPD002 asymmetric SYN-ACK": (
        [Conversation(("198.51.100.9", 50001), (NLB, 80)).syn().synack(from_ip="10.0.9.9").packets], {},
        ["PPD002"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_capture_decides(tmp_path, name):
    flows, kwargs, expected = CASES[name]
    path = tmp_path / "c.pcap"
    path.write_bytes(pcap([(t, ethernet(f)) for pk in flows for t, f in pk]))
    result = analyze(str(path), **kwargs)
    assert sorted(f.id for f in result.findings) == sorted(expected)
    for f in result.findings:
        assert f.evidence and all({"client", "server", "time", "handshake"} <= set(e) for e in f.evidence)


def test_health_checks_are_counted(tmp_path):
    pk = flow(NLB, local_v2(), "empty") + flow(NLB, HC, OK, 15021) + flow(NLB, None, "empty")
    path = tmp_path / "c.pcap"
    path.write_bytes(pcap([(t, ethernet(f)) for t, f in pk]))
    assert analyze(str(path), nlb_ips=[NLB]).health_checks == 3


def test_port_filter(tmp_path):
    pk = flow(NLB, pp() + REQ, BAD, 8080) + flow(NLB, REQ, OK, 15021)
    path = tmp_path / "c.pcap"
    path.write_bytes(pcap([(t, ethernet(f)) for t, f in pk]))
    result = analyze(str(path), ports=[15021], nlb_ips=[NLB])
    assert result.flows == 1 and [f.id for f in result.findings] == ["PPD001"]
