"""Decoding: detect v1/v2 and decode; the v2 decoder is inline because it is the hot path.

Every accepted connection behind an NLB goes through here, hence: precompiled Structs,
tuple lookups instead of Enum calls, no ipaddress module, the frozen dataclasses
assembled through layout-identical builder classes (see ``_builder``), one unpack for the
INET header an NLB sends, and bounded caches of immutable address values (the destination
is the NLB's listener on every connection).
"""

from __future__ import annotations

from socket import AF_INET, AF_INET6, inet_ntop
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
_HEAD_INET = Struct("!12sBBH4s4sHH").unpack_from  # signature, bytes 12..15, an INET address block
_V4 = Struct("!4s4sHH")
#: Bounded caches of immutable values: IPv4 text by packed address, destination Address by (address,
#: port), short non-CRC TLVs by their bytes. Cleared when full, so memory stays bounded whatever the traffic.
_CACHE_MAX = 4096
_V4_TEXT: dict[bytes, str] = {}
_DST: dict[tuple[bytes, int], Address] = {}
_TLVS: dict[bytes, TLV] = {}
_V6 = Struct("!16s16sHH")
_UNIX = Struct("!108s108s")
_U32 = Struct("!I")
_ZERO4 = b"\x00\x00\x00\x00"
_CRC_HEAD = b"\x03\x00\x04"  # type PP2_TYPE_CRC32C, length 4
_AF_INET6 = int(AF_INET6)

_COMMANDS = (Command.LOCAL, Command.PROXY)
_FAMILIES = (Family.UNSPEC, Family.INET, Family.INET6, Family.UNIX)
_PROTOCOLS = (Protocol.UNSPEC, Protocol.STREAM, Protocol.DGRAM)
_FAMILY_NAMES = ("UNSPEC", "INET", "INET6", "UNIX")
_LOCAL, _PROXY, _INET, _STREAM = Command.LOCAL, Command.PROXY, Family.INET, Protocol.STREAM

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
    n = len(data)
    if n >= 28:
        # Fast path for what an NLB sends: v2, PROXY or LOCAL, INET/STREAM, TLVs or not. One
        # unpack reads the signature, bytes 12..15 and the address block.
        sig, b12, b13, length, s, d, sp, dp = _HEAD_INET(data, 0)
        if sig == SIGNATURE_V2 and b13 == 0x11 and (b12 == 0x21 or b12 == 0x20) and length >= 12:
            if length != 12:
                total = 16 + length
                if n >= total:
                    if total >= 38 and data[28:31] == _CRC_HEAD and data[35] != 3:
                        # What an NLB sends with TLVs (the CRC32C TLV first, then one more such as the
                        # VPC endpoint id): decoded with no TLV walk and no call.
                        tlen = data[36] << 8 | data[37]
                        if 38 + tlen == total and tlen <= 64:
                            return _crc_and_one(data, n, total, b12, s, d, sp, dp, verify_crc)
                    return _inet(data, n, total, b12, s, d, sp, dp, verify_crc)
            else:
                # No TLVs: built inline, a call less (this is most of what an NLB sends).
                text = _V4_TEXT.get(s)
                if text is None:
                    text = _v4_text(s)
                src = _new(_AddressB)
                src.address = text
                src.port = sp
                src.__class__ = Address
                dst = _DST.get((d, dp))
                if dst is None:
                    dst = _dst(d, dp)
                header = _new(_ProxyHeaderB)
                header.version = 2
                header.command = _PROXY if b12 == 0x21 else _LOCAL
                header.family = _INET
                header.protocol = _STREAM
                header.src = src
                header.dst = dst
                header.tlvs = ()
                header.__class__ = ProxyHeader
                parsed = _new(_ParsedHeaderB)
                parsed.header = header
                parsed.length = 28
                parsed.crc32c = "absent"
                parsed.trailing = data[28:] if n > 28 else b""
                parsed.__class__ = ParsedHeader
                return parsed
    if data[:12] != SIGNATURE_V2:
        return _not_v2(data)

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
        s, d, sp, dp = _V4.unpack_from(data, 16)
        src = _new(_AddressB)
        src.address = _v4_text(s)
        src.port = sp
        src.__class__ = Address
        dst = _new(_AddressB)
        dst.address = _v4_text(d)
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

    if total > 16 + alen:
        tlvs, crc_pos, crc_len = _tlv_area(data, 16 + alen, total)
    else:
        tlvs, crc_pos, crc_len = (), -1, 0
    header = _new(_ProxyHeaderB)
    header.version = 2
    header.command = _COMMANDS[b12 & 0x0F]
    header.family = _FAMILIES[fam]
    header.protocol = _PROTOCOLS[proto]
    header.src = src
    header.dst = dst
    header.tlvs = tlvs
    header.__class__ = ProxyHeader
    return _result(data, n, total, header, crc_pos, crc_len, verify_crc)


def _v4_text(packed: bytes) -> str:
    """Dotted quad of 4 packed bytes, from a bounded cache (client addresses repeat; the NLB's always does)."""
    text = _V4_TEXT.get(packed)
    if text is None:
        if len(_V4_TEXT) >= _CACHE_MAX:
            _V4_TEXT.clear()
        text = _V4_TEXT[packed] = inet_ntop(AF_INET, packed)
    return text


def _dst(packed: bytes, port: int) -> Address:
    """The destination Address, cached: it is the NLB's listener on every connection."""
    if len(_DST) >= _CACHE_MAX:
        _DST.clear()
    dst = _new(_AddressB)
    dst.address = _v4_text(packed)
    dst.port = port
    dst.__class__ = Address
    _DST[(packed, port)] = dst
    return dst


def _inet(data: bytes, n: int, total: int, b12: int, s: bytes, d: bytes, sp: int, dp: int,
          verify_crc: bool) -> ParsedHeader:
    """parse() of a v2 INET/STREAM header already checked to be complete."""
    text = _V4_TEXT.get(s)
    if text is None:
        text = _v4_text(s)
    src = _new(_AddressB)
    src.address = text
    src.port = sp
    src.__class__ = Address
    # The destination is the NLB's listener on every connection: one immutable Address per (ip, port).
    dst = _DST.get((d, dp))
    if dst is None:
        dst = _dst(d, dp)
    header = _new(_ProxyHeaderB)
    header.version = 2
    header.src = src
    header.dst = dst
    if b12 == 0x21:
        header.command = _PROXY
    else:
        header.command = _LOCAL
    header.family = _INET
    header.protocol = _STREAM
    if total == 28:
        header.tlvs = ()
        header.__class__ = ProxyHeader
        parsed = _new(_ParsedHeaderB)
        parsed.header = header
        parsed.length = 28
        parsed.crc32c = "absent"
        parsed.trailing = data[28:] if n > 28 else b""
        parsed.__class__ = ParsedHeader
        return parsed
    header.tlvs, crc_pos, crc_len = _tlv_area(data, 28, total)
    header.__class__ = ProxyHeader
    return _result(data, n, total, header, crc_pos, crc_len, verify_crc)


def _crc_and_one(data: bytes, n: int, total: int, b12: int, s: bytes, d: bytes, sp: int, dp: int,
                 verify_crc: bool) -> ParsedHeader:
    """parse() of a complete v2 INET/STREAM header whose TLVs are a 4-byte CRC32C TLV at offset 28 and one
    short non-CRC TLV up to the header end: the same objects _inet builds, without the walk."""
    text = _V4_TEXT.get(s)
    if text is None:
        text = _v4_text(s)
    src = _new(_AddressB)
    src.address = text
    src.port = sp
    src.__class__ = Address
    dst = _DST.get((d, dp))
    if dst is None:
        dst = _dst(d, dp)
    raw = data[35:total]
    other = _TLVS.get(raw)
    if other is None:
        other = _short_tlv(raw)
    value = data[31:35]
    crc_tlv = _new(_TLVB)
    crc_tlv.type = 3
    crc_tlv.value = value
    crc_tlv.__class__ = TLV
    header = _new(_ProxyHeaderB)
    header.version = 2
    header.command = _PROXY if b12 == 0x21 else _LOCAL
    header.family = _INET
    header.protocol = _STREAM
    header.src = src
    header.dst = dst
    header.tlvs = (crc_tlv, other)
    header.__class__ = ProxyHeader
    parsed = _new(_ParsedHeaderB)
    parsed.header = header
    parsed.length = total
    parsed.trailing = data[total:] if n > total else b""
    # §2.2.5: the checksum covers the whole header with the CRC value itself zeroed.
    if _crc32c(data[:31] + _ZERO4 + raw).to_bytes(4, "big") == value:
        parsed.crc32c = "valid"
        parsed.__class__ = ParsedHeader
        return parsed
    parsed.crc32c = "invalid"
    parsed.__class__ = ParsedHeader
    if verify_crc:
        raise _crc_error(data, parsed, 31, 4)
    return parsed


def _short_tlv(raw: bytes) -> TLV:
    """The TLV of ``raw`` (type, length, value ≤ 64 bytes), put in the bounded cache of short TLVs."""
    if len(_TLVS) >= _CACHE_MAX:
        _TLVS.clear()
    tlv = _TLVS[raw] = _new(_TLVB)
    tlv.type = raw[0]
    tlv.value = raw[3:]
    tlv.__class__ = TLV
    return tlv


def _tlv_area(data: bytes, pos: int, total: int) -> tuple[tuple[TLV, ...], int, int]:
    """The TLVs in data[pos:total], and the value offset and length of the first CRC32C TLV (-1 if none)."""
    crc_pos = -1
    crc_len = 0
    out = []
    while pos < total:
        if total - pos < 3:
            raise TLVTrailing(
                f"{total - pos} stray byte(s) after the last TLV: the TLV area does not end "
                f"at the header end (offset {total})",
                offset=pos,
            )
        start = pos + 3
        t = data[pos]
        pos = start + (data[pos + 1] << 8 | data[pos + 2])  # indexing beats a Struct call for 3 bytes
        if pos > total:
            raise TLVOverrun(
                f"TLV 0x{t:02X} at offset {start - 3} declares {pos - start} value bytes but only "
                f"{total - start} remain in the header",
                offset=start - 3,
            )
        if t == 3:
            if crc_pos < 0:
                crc_pos = start
                crc_len = pos - start
        elif pos - start <= 64:
            # Short TLVs other than the CRC repeat on every connection (the VPC endpoint id of a
            # PrivateLink endpoint, the AUTHORITY of a host): one immutable TLV per raw bytes.
            raw = data[start - 3 : pos]
            tlv = _TLVS.get(raw)
            if tlv is None:
                if len(_TLVS) >= _CACHE_MAX:
                    _TLVS.clear()
                tlv = _TLVS[raw] = _new(_TLVB)
                tlv.type = t
                tlv.value = data[start:pos]
                tlv.__class__ = TLV
            out.append(tlv)
            continue
        tlv = _new(_TLVB)
        tlv.type = t
        tlv.value = data[start:pos]
        tlv.__class__ = TLV
        out.append(tlv)
    return tuple(out), crc_pos, crc_len


def _result(data: bytes, n: int, total: int, header: ProxyHeader, crc_pos: int, crc_len: int,
            verify_crc: bool) -> ParsedHeader:
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
