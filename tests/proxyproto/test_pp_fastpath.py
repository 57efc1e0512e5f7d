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
