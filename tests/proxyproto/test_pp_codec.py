"""Codec behaviour beyond the public vectors: builders, v1 strictness, TLVs, errors, API surface."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys

import pytest

import ppdoctor.proxyproto as pp
from ppdoctor.errors import PPDoctorError
from ppdoctor.proxyproto import (
    SIGNATURE_V2,
    TLV,
    Address,
    Command,
    EncodeError,
    Family,
    IncompleteHeader,
    InvalidHeader,
    Protocol,
    ProxyHeader,
    ProxyProtocolError,
    TLVType,
    build_v1,
    build_v2,
    local_v2,
    parse,
    proxy_v1,
    proxy_v2,
)

REQUIRED_API = """Command Family Protocol Address TLV ProxyHeader ParsedHeader ReadResult parse build_v1
build_v2 proxy_v2 local_v2 proxy_v1 read_header ProxyProtocolError IncompleteHeader InvalidHeader
SIGNATURE_V2 TLVType""".split()


def kind_of(data: bytes) -> str:
    with pytest.raises(ProxyProtocolError) as info:
        parse(data)
    return info.value.kind


# --- API surface --------------------------------------------------------------------------


def test_public_api_names() -> None:
    for name in REQUIRED_API:
        assert name in pp.__all__, name
        assert hasattr(pp, name), name
    for name in pp.__all__:
        assert hasattr(pp, name), name


def test_enum_values() -> None:
    assert [(m.name, m.value) for m in Command] == [("LOCAL", 0), ("PROXY", 1)]
    assert [(m.name, m.value) for m in Family] == [("UNSPEC", 0), ("INET", 1), ("INET6", 2), ("UNIX", 3)]
    assert [(m.name, m.value) for m in Protocol] == [("UNSPEC", 0), ("STREAM", 1), ("DGRAM", 2)]
    assert {m.name: m.value for m in TLVType} == {
        "ALPN": 0x01, "AUTHORITY": 0x02, "CRC32C": 0x03, "NOOP": 0x04, "UNIQUE_ID": 0x05, "SSL": 0x20,
        "SSL_VERSION": 0x21, "SSL_CN": 0x22, "SSL_CIPHER": 0x23, "SSL_SIG_ALG": 0x24, "SSL_KEY_ALG": 0x25,
        "NETNS": 0x30, "AWS": 0xEA,
    }  # fmt: skip
    assert SIGNATURE_V2 == b"\r\n\r\n\x00\r\nQUIT\n"


def test_value_types_are_frozen_dataclasses() -> None:
    parsed = parse(proxy_v2(("203.0.113.7", 1), ("10.0.0.1", 2), vpce_id="vpce-1"))
    for obj in (parsed, parsed.header, parsed.header.src, parsed.header.tlvs[0]):
        assert dataclasses.is_dataclass(obj)
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, dataclasses.fields(obj)[0].name, None)
        hash(obj)
    # Decoded objects are ordinary instances: equal to ones built the normal way.
    assert parsed.header.src == Address("203.0.113.7", 1)
    assert type(parsed.header.src) is Address and type(parsed.header.tlvs[0]) is TLV
    assert dataclasses.replace(parsed.header, version=1).version == 1


def test_error_tree() -> None:
    assert issubclass(ProxyProtocolError, PPDoctorError)
    assert issubclass(IncompleteHeader, ProxyProtocolError)
    assert issubclass(InvalidHeader, ProxyProtocolError)
    kinds = {
        cls.kind
        for cls in vars(pp).values()
        if isinstance(cls, type) and issubclass(cls, InvalidHeader) and cls is not InvalidHeader
    }
    assert kinds == {
        "bad-signature", "bad-version", "bad-command", "bad-family", "bad-protocol", "length-too-short",
        "tlv-overrun", "tlv-trailing", "crc-mismatch", "v1-no-crlf", "v1-malformed", "header-too-large",
        "timeout", "not-present",
    }  # fmt: skip
    exc = IncompleteHeader(5)
    assert exc.needed == 5 and exc.as_dict()["needed"] == 5 and exc.as_dict()["kind"] == "incomplete"
    assert issubclass(EncodeError, ValueError) and issubclass(EncodeError, ProxyProtocolError)


def test_import_does_not_load_scapy() -> None:
    code = "import sys, ppdoctor.proxyproto; print(any(m.split('.')[0] == 'scapy' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- v2 building --------------------------------------------------------------------------


def test_proxy_v2_layout() -> None:
    data = proxy_v2(("203.0.113.7", 51234), ("10.0.0.5", 443))
    assert data == SIGNATURE_V2 + bytes.fromhex("2111000c") + socket.inet_aton("203.0.113.7") + socket.inet_aton(
        "10.0.0.5"
    ) + (51234).to_bytes(2, "big") + (443).to_bytes(2, "big")


def test_local_v2_matches_haproxy_health_check() -> None:
    # Byte for byte what HAProxy 2.6 sends on a check with proxy-v2-options crc32c (seen in interop).
    assert local_v2(crc32c=True).hex() == "0d0a0d0a000d0a515549540a20000007030004a9b87e8f"
    assert local_v2() == SIGNATURE_V2 + b"\x20\x00\x00\x00"


def test_proxy_v2_tlv_order_and_values() -> None:
    data = proxy_v2(
        ("203.0.113.7", 1), ("10.0.0.5", 2), tlvs=[TLV(0xE1, b"x"), (0xE2, b"y")], crc32c=True,
        vpce_id="vpce-0abc", authority="example.com",
    )  # fmt: skip
    parsed = parse(data)
    assert [t.type for t in parsed.header.tlvs] == [0x03, 0xE1, 0xE2, 0x02, 0xEA]
    assert parsed.crc32c == "valid"
    assert parsed.header.aws_vpce_id == "vpce-0abc"
    assert parsed.header.authority == "example.com"
    aws = parsed.header.tlv(0xEA)
    assert aws is not None and aws.aws_subtype == 1 and aws.name == "AWS"


def test_proxy_v2_families() -> None:
    h6 = parse(proxy_v2(("2001:db8::7", 1), ("::1", 2), protocol=Protocol.DGRAM)).header
    assert (h6.family, h6.protocol, h6.src, h6.dst) == (
        Family.INET6, Protocol.DGRAM, Address("2001:db8::7", 1), Address("::1", 2))  # fmt: skip
    # Mixed families become INET6 with an IPv4-mapped address (as HAProxy does).
    mixed = parse(proxy_v2(("203.0.113.7", 1), ("2001:db8::1", 2))).header
    assert mixed.family == Family.INET6 and mixed.src == Address("::ffff:203.0.113.7", 1)
    # asyncio's 4-tuples for IPv6 peers are accepted; zone ids are dropped.
    assert parse(proxy_v2(("fe80::1%lo", 1, 0, 1), ("fe80::2", 2, 0, 0))).header.src == Address("fe80::1", 1)
    unix = parse(proxy_v2("/run/app.sock", "\x00abstract")).header
    assert (unix.family, unix.src, unix.dst) == (
        Family.UNIX, Address("/run/app.sock", None), Address("\x00abstract", None))  # fmt: skip


def test_build_v2_recomputes_existing_crc_in_place() -> None:
    header = ProxyHeader(2, Command.PROXY, Family.INET, Protocol.STREAM, Address("1.2.3.4", 5),
                         Address("5.6.7.8", 9), (TLV(0xE1, b"a"), TLV(0x03, b"\xff" * 4), TLV(0xE2, b"b")))  # fmt: skip
    parsed = parse(build_v2(header, crc32c=True))
    assert [t.type for t in parsed.header.tlvs] == [0xE1, 0x03, 0xE2]
    assert parsed.crc32c == "valid"
    with pytest.raises(ProxyProtocolError, match="crc-mismatch|CRC32C"):
        parse(build_v2(header))  # the stale value is kept as given


def test_parse_accepts_bytearray_and_memoryview() -> None:
    data = proxy_v2(("1.2.3.4", 5), ("5.6.7.8", 9))
    assert parse(bytearray(data)) == parse(memoryview(data)) == parse(data)


def _h(command, family, src, dst, tlvs=()) -> ProxyHeader:
    return ProxyHeader(2, command, family, Protocol.STREAM, src, dst, tlvs)


@pytest.mark.parametrize(
    "call",
    [
        lambda: proxy_v2(("1.2.3.4", 70000), ("1.2.3.4", 1)),
        lambda: proxy_v2(("1.2.3.4", -1), ("1.2.3.4", 1)),
        lambda: proxy_v2(("1.2.3.4", True), ("1.2.3.4", 1)),
        lambda: proxy_v2(("1.2.3.4", "80"), ("1.2.3.4", 1)),
        lambda: proxy_v2(("not-an-ip", 1), ("1.2.3.4", 1)),
        lambda: proxy_v2("x" * 109, "/y"),
        lambda: proxy_v2("/x", ("1.2.3.4", 1)),
        lambda: proxy_v2(None, ("1.2.3.4", 1)),
        lambda: proxy_v2(("1.2.3.4", 1), ("1.2.3.4", 1), tlvs=[(0x100, b"")]),
        lambda: proxy_v2(("1.2.3.4", 1), ("1.2.3.4", 1), tlvs=[(1, "text")]),
        lambda: proxy_v2(("1.2.3.4", 1), ("1.2.3.4", 1), tlvs=[(1, b"x" * 65536)]),
        lambda: proxy_v2(("1.2.3.4", 1), ("1.2.3.4", 1), tlvs=[(0xE0, b"x" * 65000)] * 2),
        lambda: proxy_v2(("1.2.3.4", 1), ("1.2.3.4", 1), tlvs=[(3, b"1234")], crc32c=True),
        lambda: proxy_v2(("1.2.3.4", 1), ("1.2.3.4", 1), vpce_id="vpcé"),
        lambda: proxy_v2(("1.2.3.4", 1), ("1.2.3.4", 1), protocol=7),
        lambda: build_v2(_h(Command.PROXY, Family.INET, None, None)),
        lambda: build_v2(_h(Command.PROXY, Family.UNSPEC, Address("1.2.3.4", 1), None)),
        lambda: build_v2(_h(5, Family.INET, Address("1.2.3.4", 1), Address("1.2.3.4", 1))),
        lambda: build_v2(_h(Command.PROXY, Family.INET, Address("::1", 1), Address("1.2.3.4", 1))),
        lambda: build_v2(_h(Command.PROXY, Family.INET6, Address("::1", None), Address("::1", 1))),
        lambda: build_v2(_h(Command.PROXY, Family.UNSPEC, None, None, (TLV(3, b"12"),)), crc32c=True),
    ],
)  # fmt: skip
def test_encode_errors(call) -> None:
    with pytest.raises(EncodeError) as info:
        call()
    assert info.value.kind == "bad-argument"
    assert isinstance(info.value, ValueError)


# --- v1 -----------------------------------------------------------------------------------


def test_proxy_v1_forms() -> None:
    assert proxy_v1(("203.0.113.7", 51234), ("10.0.0.5", 443)) == b"PROXY TCP4 203.0.113.7 10.0.0.5 51234 443\r\n"
    assert proxy_v1(("2001:DB8:0:0::7", 1), ("::1", 2)) == b"PROXY TCP6 2001:db8::7 ::1 1 2\r\n"
    assert proxy_v1(("1.2.3.4", 1), ("::1", 2)) == b"PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n"
    unknown = ProxyHeader(1, Command.PROXY, Family.UNSPEC, Protocol.UNSPEC, None, None)
    assert build_v1(unknown) == b"PROXY UNKNOWN\r\n" == unknown.encode()
    with pytest.raises(EncodeError):
        proxy_v1("/a", "/b")


@pytest.mark.parametrize(
    "header",
    [
        ProxyHeader(1, Command.LOCAL, Family.UNSPEC, Protocol.UNSPEC, None, None),
        ProxyHeader(1, Command.PROXY, Family.UNIX, Protocol.STREAM, Address("/a", None), Address("/b", None)),
        ProxyHeader(1, Command.PROXY, Family.INET, Protocol.DGRAM, Address("1.2.3.4", 1), Address("1.2.3.4", 2)),
        ProxyHeader(1, Command.PROXY, Family.INET, Protocol.STREAM, Address("1.2.3.4", 1), None),
        ProxyHeader(1, Command.PROXY, Family.INET, Protocol.STREAM, Address("::1", 1), Address("1.2.3.4", 2)),
        ProxyHeader(1, Command.PROXY, Family.INET, Protocol.STREAM, Address("1.2.3.4", 1), Address("1.2.3.4", 2),
                    (TLV(1, b"h2"),)),
    ],
)  # fmt: skip
def test_build_v1_rejects_what_v1_cannot_say(header: ProxyHeader) -> None:
    with pytest.raises(EncodeError):
        build_v1(header)


def test_v1_encode_with_crc_is_refused() -> None:
    header = parse(proxy_v1(("1.2.3.4", 1), ("1.2.3.4", 2))).header
    with pytest.raises(EncodeError):
        header.encode(crc32c=True)


@pytest.mark.parametrize(
    "line,kind",
    [
        (b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "v1-malformed"),  # leading zero in an octet
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "v1-malformed"),  # leading zero in a port
        (b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "v1-malformed"),  # double space
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "v1-malformed"),  # trailing space
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "v1-malformed"),  # missing field
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "v1-malformed"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "v1-malformed"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", "v1-malformed"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 \xd9\xa1 2\r\n", "v1-malformed"),  # non-ASCII digit
        (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "v1-malformed"),  # IPv6 in a TCP4 line
        (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "v1-malformed"),  # IPv4 in a TCP6 line
        (b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "v1-malformed"),
        (b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "v1-malformed"),
        (b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", "v1-malformed"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "v1-malformed"),  # LF without CR
        (b"PROXY TCP4 1.2.3.4\r5.6.7.8 1 2", "v1-malformed"),  # CR inside the line
        (b"PROXYTCP4", "v1-malformed"),
        (b"PROXY " + b"A" * 101, "v1-no-crlf"),
        (b"PROXY UNKNOWN " + b"x" * 93 + b"\r\n", "v1-no-crlf"),  # 109 bytes: CRLF past 107
        (b"GET / HTTP/1.1\r\n", "bad-signature"),
        (b"\r\n\r\n\x00\r\nQUIX\n" + b"\x21\x11\x00\x00", "bad-signature"),
        (SIGNATURE_V2 + b"\x11\x11\x00\x0c" + b"\x00" * 12, "bad-version"),
        (SIGNATURE_V2 + b"\x21\x13\x00\x0c" + b"\x00" * 12, "bad-protocol"),
        (SIGNATURE_V2 + b"\x21", "incomplete"),
        (SIGNATURE_V2 + b"\x31", "bad-version"),  # detected before the 16 bytes are in
        (SIGNATURE_V2 + b"\x21\x51", "bad-family"),
        (SIGNATURE_V2 + b"\x21\x21\x00\x23" + b"\x00" * 40, "length-too-short"),  # 35 < 36 for INET6
        (SIGNATURE_V2 + b"\x21\x31\x00\x10" + b"\x00" * 20, "length-too-short"),
        (SIGNATURE_V2 + b"\x20\x00\x00\x06\x03\x00\x03abc", "crc-mismatch"),  # CRC TLV of 3 bytes
    ],
)
def test_decode_errors(line: bytes, kind: str) -> None:
    assert kind_of(line) == kind


def test_v1_accepts_and_normalises() -> None:
    full = "ffff:" * 7 + "ffff"
    longest = f"PROXY TCP6 {full} {full} 65535 65535\r\n".encode()
    assert len(longest) == 104
    assert parse(longest).header.src == Address(full, 65535)
    assert parse(b"PROXY TCP6 2001:DB8::0:7 ::1 0 0\r\n").header.src == Address("2001:db8::7", 0)
    unknown = b"PROXY UNKNOWN " + b"x" * 90 + b"\r\n"  # 107 bytes, anything after UNKNOWN is ignored
    assert len(unknown) == 106 and parse(unknown + b"rest").trailing == b"rest"
    assert parse(b"PROXY UNKNOWN \xff\xfe\r\n").header.family == Family.UNSPEC


# --- TLV views ----------------------------------------------------------------------------


def test_tlv_names() -> None:
    assert TLV(0x01, b"").name == "ALPN"
    assert TLV(0xEA, b"").name == "AWS"
    assert TLV(0xE1, b"").name == "custom 0xE1"
    assert TLV(0xF3, b"").name == "experimental 0xF3"
    assert TLV(0xFA, b"").name == "future 0xFA"
    assert TLV(0x06, b"").name == "unassigned 0x06"
    assert TLV(0x21, b"").name == "SSL_VERSION"


def test_ssl_tlv_view() -> None:
    sub = pp.SSLInfo(client=0x07, verify=0, tlvs=(TLV(0x21, b"TLSv1.3"), TLV(0x22, b"client.example"),
                                                  TLV(0x23, b"TLS_AES_128_GCM_SHA256"), TLV(0x24, b"SHA256"),
                                                  TLV(0x25, b"RSA2048")))  # fmt: skip
    data = proxy_v2(("1.2.3.4", 1), ("5.6.7.8", 2), tlvs=[TLV.ssl_block(sub)])
    ssl = parse(data).header.tlvs[0].ssl
    assert ssl == sub
    assert (ssl.version, ssl.cn, ssl.cipher, ssl.sig_alg, ssl.key_alg) == (
        "TLSv1.3", "client.example", "TLS_AES_128_GCM_SHA256", "SHA256", "RSA2048")  # fmt: skip
    assert ssl.client_flags == pp.SSLClient.SSL | pp.SSLClient.CERT_CONN | pp.SSLClient.CERT_SESS
    assert TLV(0x01, b"h2").ssl is None
    # A malformed SSL block does not fail parse() (receivers accept it) but its view says why.
    with pytest.raises(InvalidHeader) as info:
        _ = TLV(0x20, b"\x01\x00").ssl
    assert info.value.kind == "length-too-short"
    with pytest.raises(InvalidHeader) as info:
        _ = TLV(0x20, b"\x01\x00\x00\x00\x00\x21\x00\x09abc").ssl
    assert info.value.kind == "tlv-overrun"


def test_aws_tlv_view() -> None:
    assert TLV.aws_vpce("vpce-08d2bf15fac5001c9").value == b"\x01vpce-08d2bf15fac5001c9"
    assert TLV(0xEA, b"\x02other").aws_vpce_id is None and TLV(0xEA, b"\x02other").aws_subtype == 2
    assert TLV(0xEA, b"").aws_subtype is None
    assert TLV(0xEA, b"\x01\xff").aws_vpce_id == "\\xff"  # never raises on garbage
    assert TLV(0x02, b"x").aws_vpce_id is None


def test_incomplete_reports_needed() -> None:
    data = proxy_v2(("1.2.3.4", 1), ("5.6.7.8", 2), vpce_id="vpce-1")
    with pytest.raises(IncompleteHeader) as info:
        parse(data[:20])
    assert info.value.needed == len(data) - 20
    with pytest.raises(IncompleteHeader) as info:
        parse(b"")
    assert 1 <= info.value.needed <= 15
