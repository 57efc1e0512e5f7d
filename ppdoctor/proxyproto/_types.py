"""Value types of the PROXY protocol codec: what a header says, independent of v1/v2 bytes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from ._errors import EncodeError
from ._tlv import TLV

__all__ = ["Command", "Family", "Protocol", "Address", "ProxyHeader", "ParsedHeader", "ReadResult", "register"]

# The v1/v2 encoders and the JSON describer import this module; they register themselves here when
# they load (the package's __init__ imports all three), so this module imports none of them and
# the codec has no import cycle.
_ENCODERS: dict[int, Callable[..., bytes]] = {}
_DESCRIBERS: list[Callable[[Any], dict]] = []


def register(*, version: int | None = None, encoder: Callable[..., bytes] | None = None,
             describer: Callable[[Any], dict] | None = None) -> None:
    """Called once by ``_v1``/``_v2`` (encoder for their version) and ``_describe`` (``as_dict``)."""
    if encoder is not None and version is not None:
        _ENCODERS[version] = encoder
    if describer is not None:
        _DESCRIBERS[:] = [describer]


class Command(IntEnum):
    """Low nibble of byte 13 (HAProxy doc/proxy-protocol.txt §2.2)."""

    LOCAL = 0
    PROXY = 1


class Family(IntEnum):
    """High nibble of byte 14 (address family)."""

    UNSPEC = 0
    INET = 1
    INET6 = 2
    UNIX = 3


class Protocol(IntEnum):
    """Low nibble of byte 14 (transport protocol)."""

    UNSPEC = 0
    STREAM = 1
    DGRAM = 2


@dataclass(frozen=True, slots=True)
class Address:
    """An endpoint from the header: IP text (as socket.inet_ntop writes it) and port; UNIX: path, port None."""

    address: str
    port: int | None

    def __str__(self) -> str:
        if self.port is None:
            return self.address
        if ":" in self.address:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A PROXY protocol header. For LOCAL and UNSPEC the receiver uses the real socket addresses."""

    version: int
    command: Command
    family: Family
    protocol: Protocol
    src: Address | None
    dst: Address | None
    tlvs: tuple[TLV, ...] = ()

    def encode(self, *, crc32c: bool = False) -> bytes:
        """The header as bytes in its own version (v1 text or v2 binary)."""
        if self.version == 1:
            if crc32c:
                raise EncodeError("PROXY v1 has no TLVs, so no CRC32C")
            return _ENCODERS[1](self)
        return _ENCODERS[2](self, crc32c=crc32c)

    def tlv(self, type_: int) -> TLV | None:
        """The first TLV of this type, or None."""
        for tlv in self.tlvs:
            if tlv.type == type_:
                return tlv
        return None

    @property
    def aws_vpce_id(self) -> str | None:
        """The VPC endpoint id from AWS's 0xEA TLV (PrivateLink traffic), or None."""
        for tlv in self.tlvs:
            if tlv.type == 0xEA:
                vpce = tlv.aws_vpce_id
                if vpce is not None:
                    return vpce
        return None

    @property
    def authority(self) -> str | None:
        """The AUTHORITY TLV (the SNI host name the client sent), or None."""
        for tlv in self.tlvs:
            if tlv.type == 0x02:
                return tlv.value.decode("utf-8", "replace")
        return None

    @property
    def is_local(self) -> bool:
        """True when the receiver must use the real connection endpoints (LOCAL, UNSPEC, v1 UNKNOWN)."""
        return self.command == Command.LOCAL or self.family == Family.UNSPEC


@dataclass(frozen=True, slots=True)
class ParsedHeader:
    """parse()'s result: the header, its length in bytes, the CRC32C verdict and the bytes after it."""

    header: ProxyHeader
    length: int
    crc32c: str  # "valid" | "invalid" | "absent"
    trailing: bytes = b""

    def as_dict(self) -> dict:
        """The JSON shape of ``ppdoctor pp decode --json`` (untrusted values as printable ASCII or hex)."""
        return _DESCRIBERS[0](self)


@dataclass
class ReadResult:
    """read_header()'s result. ``header`` None: no header was present (optional mode).

    ``raw`` is the header's bytes; ``leftover`` the bytes read past it, which belong to the
    application protocol and must be handed to it before reading the stream any further.
    """

    header: ProxyHeader | None
    raw: bytes
    leftover: bytes
