"""PROXY protocol v1 (text line): decoder and encoders, per HAProxy doc/proxy-protocol.txt §2.1."""

from __future__ import annotations

from socket import AF_INET, AF_INET6, inet_ntop, inet_pton

from ._errors import EncodeError, IncompleteHeader, V1Malformed, V1NoCRLF
from ._types import Address, Command, Family, ParsedHeader, Protocol, ProxyHeader, register
from ._v2 import _host, _pack_pair, _port

__all__ = ["V1_PREFIX", "V1_MAX_LEN", "parse_v1", "build_v1", "proxy_v1"]

V1_PREFIX = b"PROXY "
#: The longest v1 line, CRLF included ("PROXY UNKNOWN" + two full IPv6 endpoints, §2.1).
V1_MAX_LEN = 107
#: The shortest v1 line: "PROXY UNKNOWN\r\n".
V1_MIN_LEN = 15

_UNKNOWN = ProxyHeader(1, Command.PROXY, Family.UNSPEC, Protocol.UNSPEC, None, None, ())


def parse_v1(data: bytes) -> ParsedHeader:
    """Decode a v1 line; ``data`` starts with "PROXY " (checked by the caller)."""
    end = data.find(b"\n", 0, V1_MAX_LEN)
    if end < 0:
        n = len(data)
        if n >= V1_MAX_LEN:
            raise V1NoCRLF(f"no CRLF within the first {V1_MAX_LEN} bytes of a v1 header", offset=V1_MAX_LEN)
        cr = data.find(b"\r")
        if 0 <= cr < n - 1:
            raise V1Malformed("CR not followed by LF inside a v1 header", offset=cr)
        raise IncompleteHeader(max(1, V1_MIN_LEN - n))
    if data[end - 1] != 0x0D:
        raise V1Malformed("v1 line ends with LF without CR", offset=end)
    length = end + 1
    trailing = data[length:]
    raw = data[6 : end - 1]
    if raw == b"UNKNOWN" or raw.startswith(b"UNKNOWN "):
        # §2.1: the receiver ignores anything after UNKNOWN and uses the socket addresses.
        return ParsedHeader(_UNKNOWN, length, "absent", trailing)
    try:
        line = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise V1Malformed("non-ASCII byte in a v1 header", offset=6 + exc.start) from None
    parts = line.split(" ")
    if len(parts) != 5 or "" in parts:
        if "" in parts:
            raise V1Malformed(f"empty field (double or trailing space) in v1 line {_show(data, end)}")
        raise V1Malformed(f"v1 line needs 'PROXY TCP4|TCP6 SRC DST SPORT DPORT', got {_show(data, end)}")
    proto, s, d, sp, dp = parts
    if proto == "TCP4":
        af, fam = AF_INET, Family.INET
    elif proto == "TCP6":
        af, fam = AF_INET6, Family.INET6
    else:
        raise V1Malformed(f"v1 protocol must be TCP4, TCP6 or UNKNOWN, not {proto!r}")
    src = Address(_address(af, s, proto, "source"), _v1_port(sp, "source"))
    dst = Address(_address(af, d, proto, "destination"), _v1_port(dp, "destination"))
    return ParsedHeader(ProxyHeader(1, Command.PROXY, fam, Protocol.STREAM, src, dst, ()), length, "absent", trailing)


def _show(data: bytes, end: int) -> str:
    return repr(data[: end + 1].decode("ascii", "backslashreplace"))


def _address(af: int, text: str, proto: str, what: str) -> str:
    try:
        # glibc's inet_pton accepts only dotted quads without leading zeros for AF_INET.
        return inet_ntop(af, inet_pton(af, text))
    except (OSError, ValueError):
        other = AF_INET6 if af == AF_INET else AF_INET
        try:
            inet_pton(other, text)
        except (OSError, ValueError):
            raise V1Malformed(f"{what} address {text!r} is not a valid address") from None
        raise V1Malformed(f"{what} address {text!r} does not belong to family {proto}") from None


def _v1_port(text: str, what: str) -> int:
    if not text.isdigit() or not text.isascii() or len(text) > 5 or (len(text) > 1 and text[0] == "0"):
        raise V1Malformed(f"{what} port {text!r} is not a decimal number without leading zeros")
    port = int(text)
    if port > 0xFFFF:
        raise V1Malformed(f"{what} port {port} is out of range 0..65535")
    return port


def build_v1(header: ProxyHeader) -> bytes:
    """Encode a ProxyHeader as a v1 line (``header.version`` is not consulted).

    Only PROXY over TCP4/TCP6 or UNSPEC ("PROXY UNKNOWN") exist in v1; no TLVs.
    """
    if header.command != Command.PROXY:
        raise EncodeError("PROXY v1 has no LOCAL command (use family UNSPEC for 'PROXY UNKNOWN')")
    if header.tlvs:
        raise EncodeError("PROXY v1 carries no TLVs")
    fam = header.family
    if fam == Family.UNSPEC:
        return b"PROXY UNKNOWN\r\n"
    if fam not in (Family.INET, Family.INET6):
        raise EncodeError(f"PROXY v1 cannot carry family {fam!r} (only INET, INET6, UNSPEC)")
    if header.protocol != Protocol.STREAM:
        raise EncodeError(f"PROXY v1 carries TCP only (protocol STREAM), not {header.protocol!r}")
    if header.src is None or header.dst is None:
        raise EncodeError("PROXY v1 TCP4/TCP6 needs both src and dst")
    af = AF_INET if fam == Family.INET else AF_INET6
    texts = []
    for addr, what in ((header.src, "source"), (header.dst, "destination")):
        try:
            texts.append(inet_ntop(af, inet_pton(af, _host(addr.address))))
        except (OSError, ValueError, TypeError):
            raise EncodeError(f"{what} address {addr.address!r} is not a valid {fam.name} address") from None
    sp = _port(header.src.port, "source")
    dp = _port(header.dst.port, "destination")
    proto = "TCP4" if af == AF_INET else "TCP6"
    return f"PROXY {proto} {texts[0]} {texts[1]} {sp} {dp}\r\n".encode("ascii")


def proxy_v1(src, dst) -> bytes:
    """A v1 line for ``src`` → ``dst`` (``(host, port)`` tuples). An IPv4/IPv6 mix becomes TCP6."""
    fam, packed = _pack_pair(src, dst)
    if fam == 1:
        af, size, proto = AF_INET, 4, "TCP4"
    elif fam == 2:
        af, size, proto = AF_INET6, 16, "TCP6"
    else:
        raise EncodeError("PROXY v1 cannot carry UNIX socket addresses")
    s = inet_ntop(af, packed[:size])
    d = inet_ntop(af, packed[size : 2 * size])
    sp = int.from_bytes(packed[2 * size : 2 * size + 2], "big")
    dp = int.from_bytes(packed[2 * size + 2 :], "big")
    return f"PROXY {proto} {s} {d} {sp} {dp}\r\n".encode("ascii")

register(version=1, encoder=build_v1)
