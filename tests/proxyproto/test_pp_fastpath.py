"""The INET fast path of parse() and its caches: same results as built, bounded memory, no stale values."""

from __future__ import annotations

from ppdoctor.proxyproto import parse, proxy_v2
from ppdoctor.proxyproto import _parse


def test_caches_stay_bounded_and_values_stay_right():
    for i in range(_parse._CACHE_MAX * 2 + 7):
        src = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        dst = f"172.16.{i >> 8 & 255}.{i & 255}"
        vpce = f"vpce-{i:017x}"
        h = parse(proxy_v2((src, 1000 + i % 60000), (dst, 80 + i % 7), crc32c=True, vpce_id=vpce)).header
        assert (h.src.address, h.dst.address, h.dst.port, h.aws_vpce_id) == (src, dst, 80 + i % 7, vpce)
        assert len(_parse._V4_TEXT) <= _parse._CACHE_MAX and len(_parse._DST) <= _parse._CACHE_MAX
        assert len(_parse._TLVS) <= _parse._CACHE_MAX


def test_fast_path_and_general_path_agree():
    """An INET header with a trailing byte of a longer buffer and a memoryview take the same path as bytes."""
    raw = proxy_v2(("198.51.100.7", 5), ("10.0.0.1", 443), crc32c=True, vpce_id="vpce-1", authority="a.example")
    a = parse(raw + b"GET")
    b = parse(memoryview(raw + b"GET"))
    assert a == b and a.trailing == b"GET" and a.crc32c == "valid" and a.header.authority == "a.example"
    local = parse(bytes.fromhex("0d0a0d0a000d0a515549540a2011000c") + bytes(12))
    assert local.header.is_local and local.header.src.address == "0.0.0.0"


def test_crc_first_and_one_tlv_shortcut_matches_the_header_built():
    """The NLB layout (CRC32C TLV first, one short TLV after it) decodes to the same values the TLV walk gives."""
    import pytest

    from ppdoctor.proxyproto import TLV, CRCMismatch, ProxyHeader

    raw = proxy_v2(("198.51.100.7", 40000), ("10.0.1.23", 80), crc32c=True, vpce_id="vpce-0123456789abcdef0")
    assert raw[28:31] == b"\x03\x00\x04"  # the layout the shortcut is for
    p = parse(raw + b"GET / HTTP/1.1\r\n")
    crc_value = raw[31:35]
    want = ProxyHeader(2, p.header.command, p.header.family, p.header.protocol, p.header.src, p.header.dst,
                       (TLV(3, crc_value), TLV.aws_vpce("vpce-0123456789abcdef0")))
    assert p.header == want and hash(p.header) == hash(want) and repr(p.header) == repr(want)
    assert (p.length, p.crc32c, p.trailing) == (len(raw), "valid", b"GET / HTTP/1.1\r\n")
    assert (p.header.src.address, p.header.src.port, p.header.aws_vpce_id) == ("198.51.100.7", 40000,
                                                                                "vpce-0123456789abcdef0")
    # A changed address byte breaks the checksum: raised, or reported with verify_crc=False.
    bad = raw[:16] + bytes([raw[16] ^ 1]) + raw[17:]
    with pytest.raises(CRCMismatch) as exc:
        parse(bad)
    assert exc.value.parsed.crc32c == "invalid" and exc.value.parsed.header.src.address == "199.51.100.7"
    assert parse(bad, verify_crc=False).crc32c == "invalid"
    # The same TLVs in the other order take the walk and give the same set of values.
    swapped = ProxyHeader(2, want.command, want.family, want.protocol, want.src, want.dst,
                          (TLV.aws_vpce("vpce-0123456789abcdef0"), TLV(3, bytes(4)))).encode(crc32c=True)
    q = parse(swapped)
    assert q.crc32c == "valid" and q.header.aws_vpce_id == "vpce-0123456789abcdef0" and q.header.tlvs[0].type == 0xEA
    # A cut header is still incomplete, not misread.
    from ppdoctor.proxyproto import IncompleteHeader

    with pytest.raises(IncompleteHeader):
        parse(raw[:-1])
