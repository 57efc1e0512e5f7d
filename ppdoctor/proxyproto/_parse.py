"""Decoding: detect v1/v2 and decode; the v2 decoder is inline because it is the hot path.

Every accepted connection behind an NLB goes through here, hence: precompiled Structs,
tuple lookups instead of Enum calls, no ipaddress module, and the frozen dataclasses
assembled through layout-identical builder classes (see ``_builder``).
"""

from __future__ import annotations

from socket import AF_INET6, inet_ntop
from struct import Struct

from crc32c import crc32c as _crc32c

from ._errors import (
    BadSignature,
    CRCMismatch,
    IncompleteHeader,
    LengthTooShort,
    TLVOverrun,
    TLVTrailing,
    V1Malformed,
)
from ._tlv import TLV
from ._types import Address, Command, Family, ParsedHeader, Protocol, ProxyHeader
from ._v1 import V1_MIN_LEN, V1_PREFIX, parse_v1
from ._v2 import ADDR_LEN, HEADER_V2_LEN, SIGNATURE_V2, check_fam, check_prefix, check_ver_cmd

__all__ = ["parse", "signature_state"]

_HEAD = Struct("!BBH")  # bytes 12..15: ver_cmd, fam_proto, len
_V4 = Struct("!8BHH")
_OCTETS = tuple(str(i) for i in range(256))
_join = ".".join
_V6 = Struct("!16s16sHH")
_UNIX = Struct("!108s108s")
_U32 = Struct("!I")
_tlv_head = Struct("!BH").unpack_from
_ZERO4 = b"\x00\x00\x00\x00"
_AF_INET6 = int(AF_INET6)

_COMMANDS = (Command.LOCAL, Command.PROXY)
_FAMILIES = (Family.UNSPEC, Family.INET, Family.INET6, Family.UNIX)
_PROTOCOLS = (Protocol.UNSPEC, Protocol.STREAM, Protocol.DGRAM)
_FAMILY_NAMES = ("UNSPEC", "INET", "INET6", "UNIX")

_new = object.__new__


def _builder(cls: type) -> type:
    """A plain class with ``cls``'s slots: filled by fast attribute stores, then re-classed.

    Setting ``obj.__class__ = cls`` on a builder instance yields a genuine frozen ``cls``
    instance (same layout, checked here once) at half the cost of the generated
    ``__init__``, which calls ``object.__setattr__`` once per field.
    """
    builder = type(f"_{cls.__name__}Builder", (), {"__slots__": cls.__slots__})
    probe = _new(builder)
    probe.__class__ = cls  # TypeError at import if the layouts ever differ
    return builder


_AddressB = _builder(Address)
_TLVB = _builder(TLV)
_ProxyHeaderB = _builder(ProxyHeader)
_ParsedHeaderB = _builder(ParsedHeader)


def parse(data: bytes, *, verify_crc: bool = True) -> ParsedHeader:
    """Decode the PROXY header (v1 or v2) at the start of ``data``.

    Bytes after the header are returned untouched in ``trailing``. Raises IncompleteHeader
    (``needed``: how many more bytes at least) when ``data`` is a valid prefix, and an
    InvalidHeader subclass when it cannot become a valid header. With ``verify_crc=False``
    a CRC32C mismatch gives ``crc32c == "invalid"`` instead of raising CRCMismatch (whose
    ``parsed`` attribute carries that same result).
    """
    if type(data) is not bytes:
        data = bytes(data)
    if data[:12] != SIGNATURE_V2:
        return _not_v2(data)

    n = len(data)
    if n < 16:
        check_prefix(data, n)
        raise IncompleteHeader(16 - n)
    b12, b13, length = _HEAD.unpack_from(data, 12)
    if b12 >> 4 != 2 or b12 & 0x0F > 1:
        check_ver_cmd(b12)
    fam = b13 >> 4
    proto = b13 & 0x0F
    if fam > 3 or proto > 2:
        check_fam(b13)
    alen = ADDR_LEN[fam]
    if length < alen:
        raise LengthTooShort(
            f"length {length} is too short for {_FAMILY_NAMES[fam]} addresses ({alen} bytes)", offset=14
        )
    total = 16 + length
    if n < total:
        raise IncompleteHeader(total - n)

    if fam == 1:
        # Dotted quads from a table of octet strings: the same text as inet_ntop, in half the time.
        s0, s1, s2, s3, d0, d1, d2, d3, sp, dp = _V4.unpack_from(data, 16)
        src = _new(_AddressB)
        src.address = _join((_OCTETS[s0], _OCTETS[s1], _OCTETS[s2], _OCTETS[s3]))
        src.port = sp
        src.__class__ = Address
        dst = _new(_AddressB)
        dst.address = _join((_OCTETS[d0], _OCTETS[d1], _OCTETS[d2], _OCTETS[d3]))
        dst.port = dp
        dst.__class__ = Address
    elif fam == 2:
        s, d, sp, dp = _V6.unpack_from(data, 16)
        src = _new(_AddressB)
        src.address = inet_ntop(_AF_INET6, s)
        src.port = sp
        src.__class__ = Address
        dst = _new(_AddressB)
        dst.address = inet_ntop(_AF_INET6, d)
        dst.port = dp
        dst.__class__ = Address
    elif fam == 3:
        # NUL-padded paths; only trailing NULs are padding (an abstract socket starts with one).
        s, d = _UNIX.unpack_from(data, 16)
        src = Address(s.rstrip(b"\x00").decode("utf-8", "surrogateescape"), None)
        dst = Address(d.rstrip(b"\x00").decode("utf-8", "surrogateescape"), None)
    else:
        src = dst = None

    pos = 16 + alen
    crc_pos = -1
    out = []
    while pos < total:
        if total - pos < 3:
            raise TLVTrailing(
                f"{total - pos} stray byte(s) after the last TLV: the TLV area does not end "
                f"at the header end (offset {total})",
                offset=pos,
            )
        t, tlen = _tlv_head(data, pos)
        start = pos + 3
        pos = start + tlen
        if pos > total:
            raise TLVOverrun(
                f"TLV 0x{t:02X} at offset {start - 3} declares {tlen} value bytes but only "
                f"{total - start} remain in the header",
                offset=start - 3,
            )
        if t == 3 and crc_pos < 0:
            crc_pos = start
            crc_len = tlen
        tlv = _new(_TLVB)
        tlv.type = t
        tlv.value = data[start:pos]
        tlv.__class__ = TLV
        out.append(tlv)
    tlvs = tuple(out)

    header = _new(_ProxyHeaderB)
    header.version = 2
    header.command = _COMMANDS[b12 & 0x0F]
    header.family = _FAMILIES[fam]
    header.protocol = _PROTOCOLS[proto]
    header.src = src
    header.dst = dst
    header.tlvs = tlvs
    header.__class__ = ProxyHeader
    if crc_pos < 0:
        crc = "absent"
    elif crc_len == 4:
        # §2.2.5: the checksum covers the whole header with the CRC value itself zeroed.
        calc = _crc32c(data[:crc_pos] + _ZERO4 + data[crc_pos + 4 : total])
        crc = "valid" if calc == _U32.unpack_from(data, crc_pos)[0] else "invalid"
    else:
        crc = "invalid"
    parsed = _new(_ParsedHeaderB)
    parsed.header = header
    parsed.length = total
    parsed.crc32c = crc
    parsed.trailing = data[total:] if n > total else b""
    parsed.__class__ = ParsedHeader
    if crc == "invalid" and verify_crc:
        raise _crc_error(data, parsed, crc_pos, crc_len)
    return parsed


def _crc_error(data: bytes, parsed: ParsedHeader, crc_pos: int, crc_len: int) -> CRCMismatch:
    if crc_len == 4:
        total = parsed.length
        calc = _crc32c(data[:crc_pos] + _ZERO4 + data[crc_pos + 4 : total])
        problem = (
            f"CRC32C TLV says 0x{_U32.unpack_from(data, crc_pos)[0]:08x} but the header's checksum is 0x{calc:08x}"
        )
    else:
        problem = f"CRC32C TLV value is {crc_len} bytes, must be 4"
    return CRCMismatch(problem, parsed=parsed, offset=crc_pos - 3)


def _not_v2(data: bytes) -> ParsedHeader:
    if data[:6] == V1_PREFIX:
        return parse_v1(data)
    state = signature_state(data)
    if state == 2:
        raise IncompleteHeader(HEADER_V2_LEN - len(data))
    if state == 1:
        raise IncompleteHeader(V1_MIN_LEN - len(data))
    if state == 3:
        raise IncompleteHeader(V1_MIN_LEN)
    if data[:5] == b"PROXY":
        raise V1Malformed(f"'PROXY' must be followed by a space, got {data[5:6]!r}", offset=5)
    raise BadSignature(f"no PROXY protocol signature: data starts with {_preview(data)}", offset=_mismatch(data))


def signature_state(data: bytes) -> int:
    """For data shorter than a signature: 2 = prefix of the v2 one, 1 = of "PROXY ", 3 = empty, 0 = neither."""
    if not data:
        return 3
    if len(data) < 12 and SIGNATURE_V2.startswith(data):
        return 2
    if len(data) < 6 and V1_PREFIX.startswith(data):
        return 1
    return 0


def _mismatch(data: bytes) -> int:
    sig = SIGNATURE_V2 if data[:1] == b"\r" else V1_PREFIX
    for i, (a, b) in enumerate(zip(data, sig, strict=False)):
        if a != b:
            return i
    return 0


def _preview(data: bytes) -> str:
    return repr(data[:16]) + ("…" if len(data) > 16 else "")
