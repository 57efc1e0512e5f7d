"""The scapy layer builds and dissects the same bytes as the codec."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from pp_strategies import v2_headers

from ppdoctor.proxyproto import (
    TLV,
    Address,
    Command,
    Family,
    Protocol,
    ProxyHeader,
    build_v2,
    local_v2,
    parse,
    proxy_v2,
)
from ppdoctor.proxyproto.scapy_layer import PPv2TLV, ProxyProtocolV2, from_header, to_header

HEADERS = [
    ProxyHeader(2, Command.PROXY, Family.INET, Protocol.STREAM, Address("203.0.113.7", 51234),
                Address("10.0.0.5", 443), (TLV.aws_vpce("vpce-0123456789abcdef0"),)),
    ProxyHeader(2, Command.PROXY, Family.INET6, Protocol.DGRAM, Address("2001:db8::7", 1),
                Address("::1", 2), (TLV(0x02, b"example.com"), TLV(0xE1, b""))),
    ProxyHeader(2, Command.LOCAL, Family.UNSPEC, Protocol.UNSPEC, None, None, ()),
    ProxyHeader(2, Command.PROXY, Family.UNSPEC, Protocol.STREAM, None, None, (TLV(0x04, b"\x00" * 8),)),
    ProxyHeader(2, Command.PROXY, Family.UNIX, Protocol.STREAM, Address("/run/envoy.sock", None),
                Address("\x00abstract", None), (TLV(0x20, b"\x01\x00\x00\x00\x00\x21\x00\x07TLSv1.3"),)),
]  # fmt: skip


@pytest.mark.parametrize("header", HEADERS, ids=lambda h: f"{h.command.name}-{h.family.name}")
@pytest.mark.parametrize("crc32c", [False, True], ids=["nocrc", "crc"])
def test_scapy_build_equals_codec_build(header: ProxyHeader, crc32c: bool) -> None:
    assert bytes(from_header(header, crc32c=crc32c)) == build_v2(header, crc32c=crc32c)


@pytest.mark.parametrize("header", HEADERS, ids=lambda h: f"{h.command.name}-{h.family.name}")
def test_dissecting_codec_bytes(header: ProxyHeader) -> None:
    data = build_v2(header, crc32c=True)
    pkt = ProxyProtocolV2(data + b"GET / HTTP/1.1\r\n\r\n")
    parsed = parse(data)
    assert pkt.sig == b"\r\n\r\n\x00\r\nQUIT\n"
    assert (pkt.ver, pkt.cmd, pkt.fam, pkt.proto) == (2, header.command, header.family, header.protocol)
    assert pkt.len == parsed.length - 16
    if header.family == Family.INET:
        assert (pkt.src_ip, pkt.src_port, pkt.dst_ip, pkt.dst_port) == ("203.0.113.7", 51234, "10.0.0.5", 443)
    if header.family == Family.INET6:
        assert (pkt.src_ip6, pkt.src_port, pkt.dst_ip6, pkt.dst_port) == ("2001:db8::7", 1, "::1", 2)
    if header.family == Family.UNIX:
        assert (pkt.src_path, pkt.dst_path) == (b"/run/envoy.sock", b"\x00abstract")
    assert [(t.type, t.length, t.value) for t in pkt.tlvs] == [
        (t.type, len(t.value), t.value) for t in parsed.header.tlvs
    ]
    assert bytes(pkt.payload) == b"GET / HTTP/1.1\r\n\r\n"
    assert to_header(pkt) == parsed.header
    assert bytes(pkt) == data + b"GET / HTTP/1.1\r\n\r\n"


def test_hand_built_packet_fills_len_and_crc() -> None:
    pkt = ProxyProtocolV2(
        src_ip="203.0.113.7", dst_ip="10.0.0.5", src_port=51234, dst_port=443,
        tlvs=[PPv2TLV(type=0x03), PPv2TLV(type=0xEA, value=b"\x01vpce-0123456789abcdef0")],
    )  # fmt: skip
    assert bytes(pkt) == proxy_v2(("203.0.113.7", 51234), ("10.0.0.5", 443), crc32c=True,
                                  vpce_id="vpce-0123456789abcdef0")  # fmt: skip
    assert parse(bytes(pkt)).crc32c == "valid"
    assert bytes(ProxyProtocolV2(cmd=0, fam=0, proto=0, tlvs=[PPv2TLV(type=3)])) == local_v2(crc32c=True)


@settings(max_examples=60, deadline=None)
@given(v2_headers())
def test_scapy_matches_codec_for_generated_headers(header: ProxyHeader) -> None:
    data = build_v2(header)
    assert bytes(from_header(header)) == data
    assert to_header(ProxyProtocolV2(data)) == header
