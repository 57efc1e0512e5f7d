"""Hypothesis: round trips for every family/command/protocol/TLV mix, fuzzing, truncation."""

from __future__ import annotations

import json
import socket

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from pp_strategies import v1_headers, v2_headers

from ppdoctor.proxyproto import (
    SIGNATURE_V2,
    IncompleteHeader,
    ProxyHeader,
    ProxyProtocolError,
    build_v1,
    build_v2,
    parse,
    proxy_v2,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(v2_headers(), st.booleans(), st.binary(max_size=16))
def test_v2_round_trip(header: ProxyHeader, crc32c: bool, trailing: bytes) -> None:
    data = build_v2(header, crc32c=crc32c)
    parsed = parse(data + trailing)
    assert parsed.length == len(data)
    assert parsed.trailing == trailing
    if crc32c:
        assert parsed.crc32c == "valid"
        assert parsed.header.tlvs[0].type == 0x03
        assert parsed.header.tlvs[1:] == header.tlvs
        assert parsed.header == ProxyHeader(**{**vars_of(header), "tlvs": parsed.header.tlvs})
    else:
        assert parsed.crc32c == "absent"
        assert parsed.header == header
    assert parsed.header.encode() == data
    json.dumps(parsed.as_dict())


@SETTINGS
@given(v1_headers(), st.binary(max_size=16))
def test_v1_round_trip(header: ProxyHeader, trailing: bytes) -> None:
    data = build_v1(header)
    assert len(data) <= 107
    parsed = parse(data + trailing)
    assert parsed.header == header
    assert (parsed.length, parsed.trailing, parsed.crc32c) == (len(data), trailing, "absent")
    assert header.encode() == data


def vars_of(header: ProxyHeader) -> dict:
    return {f: getattr(header, f) for f in ("version", "command", "family", "protocol", "src", "dst", "tlvs")}


def check_decoding_never_crashes(data: bytes) -> None:
    try:
        parsed = parse(data, verify_crc=False)
    except ProxyProtocolError:
        return
    # Whatever decodes is consistent with the input and renders without raising.
    assert parsed.length + len(parsed.trailing) == len(data)
    json.dumps(parsed.as_dict())
    for t in parsed.header.tlvs:
        assert t.name
        try:
            _ = t.ssl
        except ProxyProtocolError:
            pass
        _ = t.aws_vpce_id
    _ = (parsed.header.aws_vpce_id, parsed.header.authority, parsed.header.is_local)
    if parsed.header.version == 2:
        # The decoded header re-encodes to exactly the bytes it came from.
        assert parsed.header.encode() == data[: parsed.length]


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_codec_errors(data: bytes) -> None:
    check_decoding_never_crashes(data)


@settings(max_examples=1500, deadline=None)
@given(
    st.binary(min_size=2, max_size=2),
    st.integers(0, 300),
    st.binary(max_size=300),
)
@example(b"\x21\x11", 12, b"\x00" * 12)
@example(b"\x20\x00", 7, b"\x03\x00\x04\x00\x00\x00\x00")
def test_bytes_after_v2_signature_raise_only_codec_errors(b12_13: bytes, length: int, body: bytes) -> None:
    check_decoding_never_crashes(SIGNATURE_V2 + b12_13 + length.to_bytes(2, "big") + body)
    check_decoding_never_crashes(SIGNATURE_V2 + b12_13 + body)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=120))
def test_bytes_after_v1_prefix_raise_only_codec_errors(rest: bytes) -> None:
    check_decoding_never_crashes(b"PROXY " + rest)
    check_decoding_never_crashes(b"PROXY TCP4 " + rest)
    check_decoding_never_crashes(b"PROXY TCP6 " + rest)


@settings(max_examples=500, deadline=None)
@given(v2_headers(), st.booleans(), st.data())
def test_mutated_valid_headers_raise_only_codec_errors(header: ProxyHeader, crc32c: bool, data) -> None:
    raw = bytearray(build_v2(header, crc32c=crc32c))
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(12, len(raw) - 1))] = data.draw(st.integers(0, 255))
    check_decoding_never_crashes(bytes(raw))


@settings(max_examples=150, deadline=None)
@given(st.one_of(v2_headers().map(lambda h: build_v2(h)), v1_headers().map(build_v1)))
def test_truncation_reports_needed(data: bytes) -> None:
    v2 = data.startswith(SIGNATURE_V2)
    for k in range(len(data)):
        try:
            parse(data[:k])
        except IncompleteHeader as exc:
            needed = exc.needed
        else:
            raise AssertionError(f"a {k}-byte prefix of a {len(data)}-byte header decoded")
        assert 1 <= needed <= len(data) - k or (k == 0 and needed <= 16)
        if v2 and k >= 1:
            assert needed == (16 - k if k < 16 else len(data) - k)
        # Feeding exactly `needed` more bytes never overshoots the header.
        assert k + needed <= max(len(data), 15)


@SETTINGS
@given(st.binary(min_size=4, max_size=4), st.binary(min_size=4, max_size=4))
def test_ipv4_text_matches_inet_ntop(s: bytes, d: bytes) -> None:
    src = socket.inet_ntop(socket.AF_INET, s)
    dst = socket.inet_ntop(socket.AF_INET, d)
    header = parse(proxy_v2((src, 1), (dst, 2))).header
    assert (header.src.address, header.dst.address) == (src, dst)


@SETTINGS
@given(v2_headers())
def test_decoded_objects_equal_and_hash_like_constructed_ones(header: ProxyHeader) -> None:
    assume(header.tlvs or header.src is not None)
    parsed = parse(build_v2(header)).header
    assert hash(parsed) == hash(header)
    assert {parsed: 1}[header] == 1
