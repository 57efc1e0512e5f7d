"""PROXY protocol v2 (binary): constants, header checks and encoders, per HAProxy doc/proxy-protocol.txt §2.2."""

from __future__ import annotations

from operator import index
from socket import AF_INET, AF_INET6, inet_pton
from struct import Struct

from crc32c import crc32c as _crc32c

from ._errors import BadCommand, BadFamily, BadProtocol, BadVersion, EncodeError
from ._tlv import TLV, encode_tlvs
from ._types import Address, Command, Family, Protocol, ProxyHeader, register

__all__ = ["SIGNATURE_V2", "build_v2", "proxy_v2", "local_v2"]

#: The 12-byte v2 signature (doc/proxy-protocol.txt §2.2).
SIGNATURE_V2 = b"\r\n\r\n\x00\r\nQUIT\n"
HEADER_V2_LEN = 16

_FULL_HEAD = Struct("!12sBBH")
_V4 = Struct("!4s4sHH")
_V6 = Struct("!16s16sHH")
_UNIX = Struct("!108s108s")
_U32 = Struct("!I")
_ZERO4 = b"\x00\x00\x00\x00"
_CRC_TLV_ZERO = b"\x03\x00\x04" + _ZERO4

#: Address block length per family (INET 2×4+2×2, INET6 2×16+2×2, UNIX 2×108).
ADDR_LEN = (0, 12, 36, 216)


def check_prefix(data: bytes, n: int) -> None:
    """Validate bytes 12 and 13 of a v2 header that is not yet 16 bytes long."""
    if n > 12:
        check_ver_cmd(data[12])
    if n > 13:
        check_fam(data[13])


def check_ver_cmd(b12: int) -> None:
    if b12 >> 4 != 2:
        raise BadVersion(f"version nibble is {b12 >> 4}, PROXY v2 requires 2 (byte 12 = 0x{b12:02X})", offset=12)
    if b12 & 0x0F > 1:
        raise BadCommand(f"command {b12 & 0x0F} is neither LOCAL (0) nor PROXY (1) (byte 12 = 0x{b12:02X})", offset=12)


def check_fam(b13: int) -> None:
    if b13 >> 4 > 3:
        raise BadFamily(f"address family {b13 >> 4} is not UNSPEC/INET/INET6/UNIX (byte 13 = 0x{b13:02X})", offset=13)
    if b13 & 0x0F > 2:
        raise BadProtocol(
            f"transport protocol {b13 & 0x0F} is not UNSPEC/STREAM/DGRAM (byte 13 = 0x{b13:02X})", offset=13
        )


# --- encoding ------------------------------------------------------------------------------


def _port(value, what: str) -> int:
    if type(value) is not int:
        if isinstance(value, bool):
            raise EncodeError(f"{what} port must be an integer 0..65535, not {value!r}")
        try:
            value = index(value)
        except TypeError:
            raise EncodeError(f"{what} port must be an integer 0..65535, not {value!r}") from None
    if not 0 <= value <= 0xFFFF:
        raise EncodeError(f"{what} port {value} is out of range 0..65535")
    return value


def _host(value) -> str:
    if not isinstance(value, str):
        value = str(value)
    if "%" in value:  # IPv6 zone id (fe80::1%eth0): not representable, drop it
        value = value.split("%", 1)[0]
    return value


def pack_ip(host: str, what: str) -> tuple[int, bytes]:
    """(Family, packed address) for IPv4 or IPv6 text."""
    try:
        return 1, inet_pton(AF_INET, host)
    except (OSError, ValueError, TypeError):
        pass
    try:
        return 2, inet_pton(AF_INET6, host)
    except (OSError, ValueError, TypeError):
        raise EncodeError(f"{what} address {host!r} is neither IPv4 nor IPv6") from None


def _endpoint(value, what: str):
    """(family, packed address, port) from a (host, port[, ...]) tuple, or (3, path, None) from a path."""
    if isinstance(value, (str, bytes)):
        return 3, _unix_path(value, what), None
    try:
        host, port = value[0], value[1]
    except (TypeError, IndexError, KeyError):
        raise EncodeError(f"{what} must be a (host, port) tuple or a UNIX socket path, not {value!r}") from None
    fam, packed = pack_ip(_host(host), what)
    return fam, packed, _port(port, what)


def _unix_path(path, what: str) -> bytes:
    raw = path.encode("utf-8", "surrogateescape") if isinstance(path, str) else bytes(path)
    if len(raw) > 108:
        raise EncodeError(f"{what} UNIX path is {len(raw)} bytes; at most 108 fit")
    return raw


def _v4_mapped(packed: bytes) -> bytes:
    return b"\x00" * 10 + b"\xff\xff" + packed


def _pack_pair(src, dst) -> tuple[int, bytes]:
    sf, sa, sp = _endpoint(src, "source")
    df, da, dp = _endpoint(dst, "destination")
    if sf != df:
        if sf == 3 or df == 3:
            raise EncodeError("source and destination must both be IP endpoints or both UNIX paths")
        # HAProxy does the same: mixed families are sent as IPv6 with IPv4-mapped addresses.
        if sf == 1:
            sa = _v4_mapped(sa)
        else:
            da = _v4_mapped(da)
        sf = 2
    if sf == 1:
        return 1, _V4.pack(sa, da, sp, dp)
    if sf == 2:
        return 2, _V6.pack(sa, da, sp, dp)
    return 3, _UNIX.pack(sa, da)


def _assemble(cmd: int, fam: int, proto: int, addrs: bytes, tlvs: bytes, crc32c: bool, crc_at: int = -1) -> bytes:
    """Header bytes; with ``crc32c`` a CRC TLV is put first (or, at ``crc_at``, is already present, zeroed)."""
    add_crc = crc32c and crc_at < 0
    length = len(addrs) + len(tlvs) + (7 if add_crc else 0)
    if length > 0xFFFF:
        raise EncodeError(f"header body is {length} bytes; a v2 header holds at most 65535")
    head = _FULL_HEAD.pack(SIGNATURE_V2, 0x20 | cmd, fam << 4 | proto, length)
    if not crc32c:
        return head + addrs + tlvs
    if add_crc:
        # First, as HAProxy sends it; receivers that re-serialise TLVs sorted by type
        # (the proxy-protocol package) only verify a CRC placed before higher types.
        head += addrs
        return head + b"\x03\x00\x04" + _U32.pack(_crc32c(tlvs, _crc32c(_CRC_TLV_ZERO, _crc32c(head)))) + tlvs
    data = head + addrs + tlvs
    pos = 16 + len(addrs) + crc_at
    return data[:pos] + _U32.pack(_crc32c(data)) + data[pos + 4 :]


def _encode_tlvs_with_crc(tlvs, crc32c: bool) -> tuple[bytes, int]:
    """Encode TLVs; with ``crc32c`` an existing CRC32C TLV is zeroed and its value offset returned."""
    if not crc32c:
        return encode_tlvs(tlvs), -1
    parts = []
    offset = 0
    crc_at = -1
    for tlv in tlvs:
        raw = encode_tlvs((tlv,))
        if crc_at < 0 and raw[0] == 3:
            if len(raw) != 7:
                raise EncodeError(f"the CRC32C TLV must carry 4 bytes, not {len(raw) - 3}")
            crc_at = offset + 3
            raw = _CRC_TLV_ZERO
        parts.append(raw)
        offset += len(raw)
    return b"".join(parts), crc_at


def _enum(enum_cls, value, what: str):
    try:
        return enum_cls(value)
    except (ValueError, TypeError):
        raise EncodeError(f"{what} {value!r} is not one of {[m.name for m in enum_cls]}") from None


def _address_block(fam: Family, src: Address | None, dst: Address | None) -> bytes:
    if fam == Family.UNSPEC:
        if src is not None or dst is not None:
            raise EncodeError("family UNSPEC carries no addresses: set src and dst to None, or pick a family")
        return b""
    if src is None or dst is None:
        raise EncodeError(f"family {fam.name} needs both src and dst addresses")
    if fam == Family.UNIX:
        return _UNIX.pack(_unix_path(src.address, "source"), _unix_path(dst.address, "destination"))
    af = AF_INET if fam == Family.INET else AF_INET6
    packed = []
    for addr, what in ((src, "source"), (dst, "destination")):
        try:
            packed.append(inet_pton(af, _host(addr.address)))
        except (OSError, ValueError, TypeError):
            raise EncodeError(f"{what} address {addr.address!r} is not a valid {fam.name} address") from None
    sp, dp = _port(src.port, "source"), _port(dst.port, "destination")
    return (_V4 if fam == Family.INET else _V6).pack(packed[0], packed[1], sp, dp)


def build_v2(header: ProxyHeader, *, crc32c: bool = False) -> bytes:
    """Encode any ProxyHeader as v2 (``header.version`` is not consulted).

    With ``crc32c`` a CRC32C TLV is filled in: an existing one is recomputed in place,
    otherwise one is inserted before the other TLVs.
    """
    cmd = _enum(Command, header.command, "command")
    fam = _enum(Family, header.family, "family")
    proto = _enum(Protocol, header.protocol, "protocol")
    addrs = _address_block(fam, header.src, header.dst)
    tlvs, crc_at = _encode_tlvs_with_crc(header.tlvs, crc32c)
    return _assemble(cmd, fam, proto, addrs, tlvs, crc32c, crc_at)


def _extra_tlvs(tlvs, authority: str | None, vpce_id: str | None) -> bytes:
    out = encode_tlvs(tlvs) if tlvs else b""
    if authority is not None:
        out += encode_tlvs((TLV.authority(authority),))
    if vpce_id is not None:
        out += encode_tlvs((TLV.aws_vpce(vpce_id),))
    return out


def proxy_v2(
    src,
    dst,
    *,
    tlvs=(),
    crc32c: bool = False,
    vpce_id: str | None = None,
    authority: str | None = None,
    protocol: Protocol = Protocol.STREAM,
) -> bytes:
    """A v2 PROXY header for ``src`` → ``dst`` (``(host, port)`` tuples; UNIX: path strings).

    The family follows the addresses; an IPv4/IPv6 mix is sent as INET6 with an IPv4-mapped
    address. TLVs come in order: CRC32C, ``tlvs``, AUTHORITY, AWS 0xEA VPCE id.
    """
    fam, addrs = _pack_pair(src, dst)
    if protocol is not Protocol.STREAM:
        protocol = _enum(Protocol, protocol, "protocol")
    if tlvs or authority is not None or vpce_id is not None:
        tlvs = tuple(tlvs)
        extra = _extra_tlvs(tlvs, authority, vpce_id)
        if crc32c and any((t.type if isinstance(t, TLV) else t[0]) == 3 for t in tlvs):
            raise EncodeError("pass either crc32c=True or a CRC32C TLV, not both")
    else:
        extra = b""
    return _assemble(1, fam, protocol, addrs, extra, crc32c)


def local_v2(*, tlvs=(), crc32c: bool = False) -> bytes:
    """A v2 LOCAL header (what an NLB sends on health-check connections): no addresses."""
    extra, crc_at = _encode_tlvs_with_crc(tlvs, crc32c)
    return _assemble(0, 0, 0, b"", extra, crc32c, crc_at)

register(version=2, encoder=build_v2)
