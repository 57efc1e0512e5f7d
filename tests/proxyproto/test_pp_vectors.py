"""Every vector in ../shared/vectors/ppv2-public.tsv decodes as its public test suite says.

Where the file is looked for, and the failure when it is missing: ``pp_vectors``.
"""

from __future__ import annotations

import pytest
from pp_vectors import load_vectors

from ppdoctor.proxyproto import (
    Address,
    Command,
    Family,
    InvalidHeader,
    Protocol,
    parse,
)


def A(address: str, port: int | None) -> Address:
    return Address(address, port)


# What each "ok" vector decodes to: (version, command, family, protocol, src, dst, tlvs, crc32c, trailing)
OK = {
    "tcp4-crc": (2, Command.PROXY, Family.INET, Protocol.STREAM, A("0.0.0.0", 0), A("127.0.0.1", 25),
                 [(0x03, bytes.fromhex("25c91172"))], "valid", b""),
    "local-crc": (2, Command.LOCAL, Family.UNSPEC, Protocol.UNSPEC, None, None,
                  [(0x03, bytes.fromhex("a9b87e8f"))], "valid", b""),
    "proxy-unspec-crc": (2, Command.PROXY, Family.UNSPEC, Protocol.UNSPEC, None, None,
                         [(0x03, bytes.fromhex("3ec9894e"))], "valid", b""),
    "authority": (2, Command.PROXY, Family.INET, Protocol.STREAM, A("127.0.0.1", 42), A("127.0.0.1", 1337),
                  [(0x02, b"12345")], "absent", b""),
    "embedded-nul-tlvs": (2, Command.PROXY, Family.INET, Protocol.STREAM, A("127.0.0.1", 42), A("127.0.0.1", 1337),
                          [(0x02, b"public"), (0x05, b"public"), (0xE1, b"public"), (0x20, b"\x00" * 5)],
                          "absent", b""),
    "envoy-basic": (2, Command.PROXY, Family.INET, Protocol.STREAM, A("1.2.3.4", 773), A("0.1.1.2", 2),
                    [], "absent", b"more data"),
    "v1-tcp4": (1, Command.PROXY, Family.INET, Protocol.STREAM, A("1.2.3.4", 65535), A("253.253.253.253", 1234),
                [], "absent", b""),
    "v1-unknown": (1, Command.PROXY, Family.UNSPEC, Protocol.UNSPEC, None, None, [], "absent", b""),
}  # fmt: skip

ERRORS = {
    "local-bad-crc": "crc-mismatch",
    "tlv-overrun": "tlv-overrun",
    "tlv-stray-byte": "tlv-trailing",
    "envoy-short-addr": "length-too-short",
    "envoy-bad-family": "bad-family",
    "envoy-bad-command": "bad-command",
    "v1-bad-port": "v1-malformed",
}

VECTOR_ROWS = load_vectors()


def test_vector_file_is_found_and_fully_covered() -> None:
    names = [row[0] for row in VECTOR_ROWS]
    assert len(names) >= 15
    missing = set(names) - set(OK) - set(ERRORS)
    assert not missing, f"add expectations for new vectors: {sorted(missing)}"
    for name, _, expected, _ in VECTOR_ROWS:
        assert expected.startswith("ok:" if name in OK else "error:"), (name, expected)


@pytest.mark.parametrize("name,data,expected,source", VECTOR_ROWS, ids=[r[0] for r in VECTOR_ROWS])
def test_vector(name: str, data: bytes, expected: str, source: str) -> None:
    if name in ERRORS:
        with pytest.raises(InvalidHeader) as info:
            parse(data)
        assert info.value.kind == ERRORS[name], f"{name} ({source}): {info.value}"
        return
    version, command, family, protocol, src, dst, tlvs, crc, trailing = OK[name]
    parsed = parse(data)
    h = parsed.header
    assert (h.version, h.command, h.family, h.protocol) == (version, command, family, protocol)
    assert (h.src, h.dst) == (src, dst)
    assert [(t.type, t.value) for t in h.tlvs] == tlvs
    assert parsed.crc32c == crc
    assert parsed.trailing == trailing
    assert parsed.length == len(data) - len(trailing)
    # Re-encoding what was decoded gives back the very same bytes.
    assert h.encode() == data[: parsed.length]


def test_vector_details() -> None:
    rows = {r[0]: r[1] for r in VECTOR_ROWS}
    tlvs = parse(rows["embedded-nul-tlvs"]).header.tlvs
    assert [t.name for t in tlvs] == ["AUTHORITY", "UNIQUE_ID", "custom 0xE1", "SSL"]
    ssl = tlvs[3].ssl
    assert ssl is not None and (ssl.client, ssl.verify, ssl.tlvs) == (0, 0, ())
    assert parse(rows["authority"]).header.authority == "12345"
    # A receiver can still look at a header whose CRC does not match.
    bad = parse(rows["local-bad-crc"], verify_crc=False)
    assert bad.crc32c == "invalid" and bad.header.command == Command.LOCAL
