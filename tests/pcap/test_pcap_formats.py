"""The reader on synthetic captures: every format, byte order, timestamp unit and link type; tshark agrees."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from ppdoctor.pcap import analyze, read_segments
from ppdoctor.pcap.reader import ReadStats
from ppdoctor.proxyproto import proxy_v2

from .capbuild import FRAMERS, Conversation, ethernet, pcap, pcapng

PP = proxy_v2(("198.51.100.7", 40001), ("10.0.1.23", 80), crc32c=True, vpce_id="vpce-0abc")
REQ = b"GET / HTTP/1.1\r\nHost: gw\r\n\r\n"


def _conv(client=("10.0.1.23", 40000), server=("10.0.2.10", 8080), answer=b"HTTP/1.1 200 OK\r\n\r\n"):
    c = Conversation(client, server).handshake().c(PP + REQ).s(answer).close()
    return c.packets


def _write(tmp_path, data: bytes, name="c.pcap"):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


@pytest.mark.parametrize("linktype", sorted(FRAMERS))
@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_every_linktype_order_and_unit(tmp_path, linktype, big, nano):
    packets = _conv()
    framer = FRAMERS[linktype]
    path = _write(tmp_path, pcap([(t, framer(f)) for t, f in packets], linktype, big=big, nano=nano))
    segs = list(read_segments(path))
    assert len(segs) == len(packets)
    assert segs[0][0] == pytest.approx(packets[0][0], abs=2e-6)
    a = analyze(path)
    assert a.summary["first_bytes"] == {"ppv2-proxy": 1}
    assert a.summary["answer"] == {"http-2xx": 1}
    assert a.summary["handshake"] == {"complete": 1}
    rec = a.table[0]
    assert rec["pp_source"] == "198.51.100.7:40001" and rec["vpce"] == "vpce-0abc" and rec["crc32c"] == "valid"


def test_ipv6_and_vlan_tags(tmp_path):
    v6 = _conv(("2001:db8::1", 40000), ("2001:db8::2", 8080))
    v4 = _conv(("10.0.1.24", 40001))
    frames = [(t, ethernet(f, (100,))) for t, f in v6] + [(t, ethernet(f, (10, 20))) for t, f in v4]
    a = analyze(_write(tmp_path, pcap(frames)))
    assert a.flows == 2 and a.summary["first_bytes"] == {"ppv2-proxy": 2}
    assert {r["client"] for r in a.table} == {"[2001:db8::1]:40000", "10.0.1.24:40001"}


def test_pcapng_several_interfaces_with_own_linktype_and_tsresol(tmp_path):
    a_pk = _conv(("10.0.1.23", 40000))
    b_pk = _conv(("10.0.1.23", 40001))
    frames = [(0, t, ethernet(f)) for t, f in a_pk] + [(1, t + 100, FRAMERS[276](f)) for t, f in b_pk]
    for big in (False, True):
        path = _write(tmp_path, pcapng(frames, [(1, None), (276, 9)], big=big), "c.pcapng")
        segs = list(read_segments(path))
        assert len(segs) == len(frames)
        assert segs[-1][0] == pytest.approx(b_pk[-1][0] + 100, abs=1e-6)
        a = analyze(path)
        assert a.flows == 2 and a.summary["answer"] == {"http-2xx": 2}


def test_pcapng_binary_tsresol(tmp_path):
    pk = _conv()
    path = _write(tmp_path, pcapng([(0, t, ethernet(f)) for t, f in pk], [(1, 0x80 | 20)]), "c.pcapng")
    assert next(iter(read_segments(path)))[0] == pytest.approx(pk[0][0], abs=1e-5)


def test_reassembly_across_segments_and_out_of_order(tmp_path):
    c = Conversation(("10.0.1.23", 40000), ("10.0.2.10", 8080)).handshake()
    data = PP + REQ
    # three pieces sent as 2, 3, 1 (the first arrives last), one retransmitted overlapping
    c.c(data[10:30], offset=10).c(data[30:], offset=30).c(data[5:20], offset=5).c(data[:10], offset=0)
    c.cseq += len(data)
    c.s(b"HTTP/1.1 400 Bad Request\r\n\r\n").close()
    a = analyze(_write(tmp_path, pcap([(t, ethernet(f)) for t, f in c.packets])))
    rec = a.table[0]
    assert rec["first_bytes"] == "ppv2-proxy" and rec["crc32c"] == "valid" and rec["request"] == "GET / HTTP/1.1"
    assert rec["reordered"] is True and rec["answer"] == "http-4xx"


def test_five_tuple_reuse_starts_a_new_flow(tmp_path):
    first = Conversation(("10.0.1.23", 40000), ("10.0.2.10", 8080)).handshake().c(PP + REQ).s(
        b"HTTP/1.1 200 OK\r\n\r\n").close()
    second = Conversation(("10.0.1.23", 40000), ("10.0.2.10", 8080), t=first.t + 1, cseq=77777).handshake().c(
        REQ).s(b"", 0x14)
    a = analyze(_write(tmp_path, pcap([(t, ethernet(f)) for t, f in first.packets + second.packets])))
    assert a.flows == 2
    assert a.summary["first_bytes"] == {"ppv2-proxy": 1, "http": 1}
    assert a.summary["answer"] == {"http-2xx": 1, "reset": 1}


def test_syn_retransmits_asymmetric_and_refused(tmp_path):
    lost = Conversation(("198.51.100.9", 50000), ("10.0.2.10", 8080)).syn().syn().syn()
    asym = Conversation(("198.51.100.9", 50001), ("10.0.1.23", 80)).syn().synack(from_ip="10.0.9.9").syn()
    refused = Conversation(("10.0.1.23", 50002), ("10.0.2.10", 9999)).syn().s(b"", 0x14)
    half = Conversation(("198.51.100.9", 50003), ("10.0.2.10", 8080)).syn().synack().syn()
    pk = lost.packets + asym.packets + refused.packets + half.packets
    a = analyze(_write(tmp_path, pcap([(t, ethernet(f)) for t, f in pk])), vpcs=["10.0.0.0/16"])
    by_client = {r["client"]: r for r in a.table}
    assert by_client["198.51.100.9:50000"]["handshake"] == "syn-unanswered"
    assert by_client["198.51.100.9:50000"]["syn_retransmits"] == 2
    assert by_client["198.51.100.9:50001"]["handshake"] == "asymmetric"
    assert by_client["198.51.100.9:50001"]["synack_from"] == "10.0.9.9"
    assert by_client["10.0.1.23:50002"]["handshake"] == "reset"
    assert by_client["198.51.100.9:50003"]["handshake"] == "synack-unanswered"
    assert [f.id for f in a.findings] == ["PPD002"]


def test_first_bytes_classes(tmp_path):
    from tests.pcap.test_pcap_findings import client_hello

    from ppdoctor.proxyproto import local_v2, proxy_v1

    firsts = {
        "ppv2-local": local_v2(),
        "ppv1": proxy_v1(("198.51.100.7", 1), ("10.0.1.23", 80)) + REQ,
        "http": REQ,
        "tls": client_hello("gw.example.com"),
        "other": b"\x00\x01garbage",
        "ppv2-invalid": PP[:12] + b"\x99" + PP[13:],
    }
    pk = []
    for i, data in enumerate(firsts.values()):
        pk += Conversation(("10.0.1.23", 41000 + i), ("10.0.2.10", 8080)).handshake().c(data).close().packets
    pk += Conversation(("10.0.1.23", 41100), ("10.0.2.10", 8080)).handshake().close().packets
    a = analyze(_write(tmp_path, pcap([(t, ethernet(f)) for t, f in pk])))
    got = {r["client"]: r for r in a.table}
    for i, cls in enumerate(firsts):
        assert got[f"10.0.1.23:{41000 + i}"]["first_bytes"] == cls
    assert got["10.0.1.23:41003"]["sni"] == "gw.example.com"
    assert got["10.0.1.23:41100"]["first_bytes"] == "none"
    assert got["10.0.1.23:41100"]["answer"] == "empty"


def test_crc_invalid_is_reported(tmp_path):
    bad = bytearray(PP)
    bad[-1] ^= 0xFF  # inside the VPCE TLV, covered by the CRC
    pk = Conversation(("10.0.1.23", 40000), ("10.0.2.10", 8080)).handshake().c(bytes(bad) + REQ).close().packets
    a = analyze(_write(tmp_path, pcap([(t, ethernet(f)) for t, f in pk])))
    assert a.table[0]["crc32c"] == "invalid" and a.table[0]["first_bytes"] == "ppv2-proxy"


def test_snaplen_and_cut_last_packet_are_read_to_the_end_with_notes(tmp_path):
    pk = _conv() + _conv(("10.0.1.23", 40001))
    data = pcap([(t, ethernet(f)) for t, f in pk], snaplen=80)
    path = _write(tmp_path, data[:-7])
    stats = ReadStats()
    assert len(list(read_segments(path, stats))) == len(pk) - 1
    a = analyze(path)
    notes = " ".join(a.notes())
    assert "snaplen" in notes and "ends inside the last packet" in notes
    assert a.flows == 2


def _tshark_fields(path: str) -> list[tuple[str, ...]]:
    out = subprocess.run(
        ["tshark", "-n", "-r", path, "-T", "fields", "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport",
         "-e", "tcp.seq_raw", "-e", "tcp.len"], capture_output=True, text=True, check=True).stdout
    return [tuple(line.split("\t")) for line in out.splitlines()]


@pytest.mark.parametrize("linktype", [1, 113, 276, 101])
def test_tshark_reads_the_same_segments(tmp_path, linktype):
    """The builder and the reader could share a mistake; tshark is the independent reader."""
    assert shutil.which("tshark"), "tshark is a system dependency: scripts/install-system-deps"
    pk = _conv() + _conv(("2001:db8::1", 40001), ("2001:db8::2", 8080))
    path = _write(tmp_path, pcap([(t, FRAMERS[linktype](f)) for t, f in pk], linktype))
    ours = [(ip, str(sp), str(seq), str(len(payload))) for _, srcb, _, sp, _, seq, _, _, payload, _ in
            read_segments(path) for ip in [__import__("ipaddress").ip_address(srcb).compressed]]
    theirs = [((v4 or v6), sp, seq, ln) for v4, v6, sp, seq, ln in _tshark_fields(path)]
    assert ours == theirs
