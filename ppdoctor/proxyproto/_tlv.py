"""PROXY v2 TLVs: types from HAProxy doc/proxy-protocol.txt §2.2, the SSL block and AWS 0xEA."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from struct import Struct

from ._errors import EncodeError, LengthTooShort, TLVOverrun, TLVTrailing

__all__ = ["TLVType", "SSLClient", "AWSSubtype", "TLV", "SSLInfo", "parse_tlvs", "encode_tlvs"]

_TLV_HEAD = Struct("!BH")
_SSL_HEAD = Struct("!BI")


class TLVType(IntEnum):
    """PP2_TYPE_* values (HAProxy doc/proxy-protocol.txt §2.2) plus AWS's 0xEA (ELB docs)."""

    ALPN = 0x01
    AUTHORITY = 0x02
    CRC32C = 0x03
    NOOP = 0x04
    UNIQUE_ID = 0x05
    SSL = 0x20
    SSL_VERSION = 0x21
    SSL_CN = 0x22
    SSL_CIPHER = 0x23
    SSL_SIG_ALG = 0x24
    SSL_KEY_ALG = 0x25
    NETNS = 0x30
    AWS = 0xEA


class SSLClient(IntFlag):
    """PP2_CLIENT_* bits of the SSL TLV's ``client`` byte."""

    SSL = 0x01
    CERT_CONN = 0x02
    CERT_SESS = 0x04


class AWSSubtype(IntEnum):
    """Subtypes of AWS's 0xEA TLV ("Target groups for your Network Load Balancers", proxy protocol)."""

    VPCE_ID = 0x01


_NAMES: dict[int, str] = {int(t): t.name for t in TLVType}


def tlv_name(type_: int) -> str:
    """A readable name: the PP2_TYPE name, or the spec's range name with the number."""
    name = _NAMES.get(type_)
    if name is not None:
        return name
    if 0xE0 <= type_ <= 0xEF:
        return f"custom 0x{type_:02X}"
    if 0xF0 <= type_ <= 0xF7:
        return f"experimental 0x{type_:02X}"
    if 0xF8 <= type_ <= 0xFF:
        return f"future 0x{type_:02X}"
    return f"unassigned 0x{type_:02X}"


@dataclass(frozen=True)
class SSLInfo:
    """The decoded PP2_TYPE_SSL value: client flags, verify result (0 = verified) and sub-TLVs."""

    client: int
    verify: int
    tlvs: tuple[TLV, ...] = ()

    @property
    def client_flags(self) -> SSLClient:
        return SSLClient(self.client & 0x07)

    def _text(self, type_: int) -> str | None:
        for tlv in self.tlvs:
            if tlv.type == type_:
                return tlv.value.decode("utf-8", "replace")
        return None

    @property
    def version(self) -> str | None:
        return self._text(TLVType.SSL_VERSION)

    @property
    def cn(self) -> str | None:
        return self._text(TLVType.SSL_CN)

    @property
    def cipher(self) -> str | None:
        return self._text(TLVType.SSL_CIPHER)

    @property
    def sig_alg(self) -> str | None:
        return self._text(TLVType.SSL_SIG_ALG)

    @property
    def key_alg(self) -> str | None:
        return self._text(TLVType.SSL_KEY_ALG)

    def encode(self) -> bytes:
        """The TLV value bytes (client, verify, sub-TLVs)."""
        try:
            head = _SSL_HEAD.pack(self.client, self.verify)
        except struct.error:
            raise EncodeError(
                f"SSL client must be 0..255 and verify 0..2**32-1, not {self.client!r}, {self.verify!r}"
            ) from None
        return head + encode_tlvs(self.tlvs)


@dataclass(frozen=True, slots=True)
class TLV:
    """One type-length-value entry; unknown types are kept as raw bytes."""

    type: int
    value: bytes

    @property
    def name(self) -> str:
        return tlv_name(self.type)

    @property
    def ssl(self) -> SSLInfo | None:
        """The parsed SSL block for a PP2_TYPE_SSL TLV, None for other types.

        Raises LengthTooShort / TLVOverrun / TLVTrailing when the SSL value is malformed
        (receivers do not reject such headers, so parse() does not either).
        """
        if self.type != 0x20:
            return None
        value = self.value
        if len(value) < 5:
            raise LengthTooShort(f"SSL TLV value is {len(value)} bytes, needs at least 5 (client + verify)")
        client, verify = _SSL_HEAD.unpack_from(value, 0)
        return SSLInfo(client, verify, parse_tlvs(value, 5, len(value), what="SSL sub-TLV"))

    @property
    def aws_subtype(self) -> int | None:
        """The first value byte of AWS's 0xEA TLV (1 = VPC endpoint id), None otherwise."""
        if self.type != 0xEA or not self.value:
            return None
        return self.value[0]

    @property
    def aws_vpce_id(self) -> str | None:
        """The VPC endpoint id carried by an AWS 0xEA TLV with subtype 0x01, else None."""
        value = self.value
        if self.type != 0xEA or not value or value[0] != 0x01:
            return None
        return value[1:].decode("ascii", "backslashreplace")

    @classmethod
    def aws_vpce(cls, vpce_id: str) -> TLV:
        """AWS's 0xEA TLV with subtype 0x01 carrying a VPC endpoint id (ASCII)."""
        return cls(0xEA, b"\x01" + _text_bytes(vpce_id, "ascii", "VPC endpoint id"))

    @classmethod
    def authority(cls, host: str) -> TLV:
        """PP2_TYPE_AUTHORITY: the host name (SNI) the client asked for, UTF-8."""
        return cls(0x02, _text_bytes(host, "utf-8", "authority"))

    @classmethod
    def ssl_block(cls, info: SSLInfo) -> TLV:
        return cls(0x20, info.encode())


def _text_bytes(text: str, encoding: str, what: str) -> bytes:
    if not isinstance(text, str):
        raise EncodeError(f"{what} must be a string, not {type(text).__name__}")
    try:
        return text.encode(encoding)
    except UnicodeEncodeError:
        raise EncodeError(f"{what} must be {encoding.upper()} text: {text!r}") from None


def parse_tlvs(data: bytes, pos: int, end: int, *, what: str = "TLV") -> tuple[TLV, ...]:
    """Decode the TLVs in ``data[pos:end]``; the area must be made of whole TLVs."""
    out = []
    unpack = _TLV_HEAD.unpack_from
    while pos < end:
        if end - pos < 3:
            raise TLVTrailing(
                f"{end - pos} stray byte(s) at the end of the {what} area (a TLV needs 3 header bytes)",
                offset=pos,
            )
        type_, length = unpack(data, pos)
        start = pos + 3
        pos = start + length
        if pos > end:
            raise TLVOverrun(
                f"{what} 0x{type_:02X} declares {length} value bytes but only {end - start} remain",
                offset=start - 3,
            )
        out.append(TLV(type_, data[start:pos]))
    return tuple(out)


def encode_tlvs(tlvs) -> bytes:
    """Encode TLV objects (or ``(type, bytes)`` pairs) back to back."""
    parts = []
    pack = _TLV_HEAD.pack
    for tlv in tlvs:
        if isinstance(tlv, TLV):
            type_, value = tlv.type, tlv.value
        else:
            try:
                type_, value = tlv
            except (TypeError, ValueError):
                raise EncodeError(f"a TLV must be TLV(type, value) or a (type, bytes) pair, not {tlv!r}") from None
        if not isinstance(type_, int) or not 0 <= type_ <= 0xFF:
            raise EncodeError(f"TLV type must be an integer 0..255, not {type_!r}")
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise EncodeError(f"TLV 0x{type_:02X} value must be bytes, not {type(value).__name__}")
        if len(value) > 0xFFFF:
            raise EncodeError(f"TLV 0x{type_:02X} value is {len(value)} bytes; at most 65535 fit")
        parts.append(pack(type_, len(value)))
        parts.append(bytes(value))
    return b"".join(parts)
