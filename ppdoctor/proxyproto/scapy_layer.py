"""A scapy layer for PROXY protocol v2, byte-compatible with ppdoctor's codec.

Importing this module imports scapy (``scapy.packet`` and ``scapy.fields`` only, not
``scapy.all``); the codec package itself never does. Use it to craft or dissect headers
in raw probes and pcaps::

    pkt = ProxyProtocolV2(src_ip="203.0.113.7", dst_ip="10.0.0.5", src_port=51234, dst_port=443,
                          tlvs=[PPv2TLV(type=0x03), PPv2TLV(type=0xEA, value=b"\\x01vpce-1")])
    bytes(pkt)  # len and the CRC32C value (a CRC TLV left without value) are filled in

Address fields exist per family: ``src_ip``/``dst_ip`` (INET), ``src_ip6``/``dst_ip6``
(INET6), ``src_port``/``dst_port`` (both), ``src_path``/``dst_path`` (UNIX).
"""

from __future__ import annotations

import struct

from crc32c import crc32c as _crc32c
from scapy.fields import (
    BitEnumField,
    BitField,
    ByteEnumField,
    ConditionalField,
    FieldLenField,
    IP6Field,
    IPField,
    PacketListField,
    ShortField,
    StrFixedLenField,
    StrLenField,
)
from scapy.packet import Packet

from ._tlv import TLV, TLVType
from ._types import Address, Command, Family, Protocol, ProxyHeader
from ._v2 import ADDR_LEN, SIGNATURE_V2

__all__ = ["ProxyProtocolV2", "PPv2TLV", "from_header", "to_header"]

_TLV_NAMES = {int(t): t.name for t in TLVType}
_COMMAND_NAMES = {int(c): c.name for c in Command}
_FAMILY_NAMES = {int(f): f.name for f in Family}
_PROTOCOL_NAMES = {int(p): p.name for p in Protocol}


class _TLVValueField(StrLenField):
    """TLV value; a CRC32C TLV without value builds as 4 zero bytes, filled in by the header."""

    def _placeholder(self, pkt, x):
        return x is None and pkt is not None and pkt.type == TLVType.CRC32C

    def i2m(self, pkt, x):
        if self._placeholder(pkt, x):
            return b"\x00\x00\x00\x00"
        return super().i2m(pkt, x)

    def i2len(self, pkt, x):
        if self._placeholder(pkt, x):
            return 4
        return super().i2len(pkt, x)


class PPv2TLV(Packet):
    name = "PROXY v2 TLV"
    fields_desc = [
        ByteEnumField("type", TLVType.NOOP, _TLV_NAMES),
        FieldLenField("length", None, length_of="value", fmt="!H"),
        _TLVValueField("value", None, length_from=lambda p: p.length),
    ]

    def extract_padding(self, s):
        return b"", s


class _PathField(StrFixedLenField):
    """A 108-byte NUL-padded UNIX socket path; trailing NULs are padding."""

    def m2i(self, pkt, x):
        return x.rstrip(b"\x00")


def _fam(pkt) -> int:
    return pkt.fam


def _tlv_area(pkt) -> int:
    fam = pkt.fam
    alen = ADDR_LEN[fam] if 0 <= fam < len(ADDR_LEN) else 0
    return max(0, (pkt.len or 0) - alen)


class ProxyProtocolV2(Packet):
    name = "PROXY protocol v2"
    fields_desc = [
        StrFixedLenField("sig", SIGNATURE_V2, 12),
        BitField("ver", 2, 4),
        BitEnumField("cmd", Command.PROXY, 4, _COMMAND_NAMES),
        BitEnumField("fam", Family.INET, 4, _FAMILY_NAMES),
        BitEnumField("proto", Protocol.STREAM, 4, _PROTOCOL_NAMES),
        ShortField("len", None),
        ConditionalField(IPField("src_ip", "0.0.0.0"), lambda p: _fam(p) == 1),
        ConditionalField(IPField("dst_ip", "0.0.0.0"), lambda p: _fam(p) == 1),
        ConditionalField(IP6Field("src_ip6", "::"), lambda p: _fam(p) == 2),
        ConditionalField(IP6Field("dst_ip6", "::"), lambda p: _fam(p) == 2),
        ConditionalField(ShortField("src_port", 0), lambda p: _fam(p) in (1, 2)),
        ConditionalField(ShortField("dst_port", 0), lambda p: _fam(p) in (1, 2)),
        ConditionalField(_PathField("src_path", b"", 108), lambda p: _fam(p) == 3),
        ConditionalField(_PathField("dst_path", b"", 108), lambda p: _fam(p) == 3),
        PacketListField("tlvs", [], PPv2TLV, length_from=_tlv_area),
    ]

    def post_build(self, p: bytes, pay: bytes) -> bytes:
        if self.len is None:
            p = p[:14] + struct.pack("!H", len(p) - 16) + p[16:]
        if any(t.type == TLVType.CRC32C and t.value is None for t in self.tlvs):
            pos = _crc_value_offset(p, self.fam)
            if pos >= 0:
                p = p[:pos] + struct.pack("!I", _crc32c(p)) + p[pos + 4 :]
        return p + pay


def _crc_value_offset(p: bytes, fam: int) -> int:
    """Offset of the first CRC32C TLV's value in a built header (whose value is still zero)."""
    pos = 16 + (ADDR_LEN[fam] if 0 <= fam < len(ADDR_LEN) else 0)
    while pos + 3 <= len(p):
        type_, length = struct.unpack_from("!BH", p, pos)
        if type_ == TLVType.CRC32C:
            return pos + 3
        pos += 3 + length
    return -1


def from_header(header: ProxyHeader, *, crc32c: bool = False) -> ProxyProtocolV2:
    """The scapy packet for a codec header; with ``crc32c`` a CRC TLV is put first (as the codec does)."""
    fields: dict = {
        "cmd": int(header.command),
        "fam": int(header.family),
        "proto": int(header.protocol),
    }
    fam = int(header.family)
    if fam in (1, 2) and header.src is not None and header.dst is not None:
        suffix = "" if fam == 1 else "6"
        fields[f"src_ip{suffix}"] = header.src.address
        fields[f"dst_ip{suffix}"] = header.dst.address
        fields["src_port"] = header.src.port
        fields["dst_port"] = header.dst.port
    elif fam == 3 and header.src is not None and header.dst is not None:
        fields["src_path"] = header.src.address.encode("utf-8", "surrogateescape")
        fields["dst_path"] = header.dst.address.encode("utf-8", "surrogateescape")
    tlvs = [PPv2TLV(type=t.type, value=t.value) for t in header.tlvs]
    if crc32c:
        existing = next((t for t in tlvs if t.type == TLVType.CRC32C), None)
        if existing is not None:
            existing.value = None
        else:
            tlvs.insert(0, PPv2TLV(type=TLVType.CRC32C))
    return ProxyProtocolV2(tlvs=tlvs, **fields)


def to_header(pkt: ProxyProtocolV2) -> ProxyHeader:
    """The codec header for a (dissected) scapy packet."""
    fam = Family(pkt.fam)
    src = dst = None
    if fam == Family.INET:
        src, dst = Address(pkt.src_ip, pkt.src_port), Address(pkt.dst_ip, pkt.dst_port)
    elif fam == Family.INET6:
        src, dst = Address(pkt.src_ip6, pkt.src_port), Address(pkt.dst_ip6, pkt.dst_port)
    elif fam == Family.UNIX:
        src = Address(pkt.src_path.decode("utf-8", "surrogateescape"), None)
        dst = Address(pkt.dst_path.decode("utf-8", "surrogateescape"), None)
    return ProxyHeader(
        version=pkt.ver,
        command=Command(pkt.cmd),
        family=fam,
        protocol=Protocol(pkt.proto),
        src=src,
        dst=dst,
        tlvs=tuple(TLV(t.type, bytes(t.value or b"")) for t in pkt.tlvs),
    )
