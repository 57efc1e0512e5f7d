"""PROXY protocol v1/v2 codec: build, parse, TLVs, CRC32C, AWS 0xEA, and an asyncio header reader.

Reference: HAProxy doc/proxy-protocol.txt; AWS "Target groups for your Network Load
Balancers" (proxy protocol, TLV 0xEA). The scapy layer lives in ``scapy_layer`` and is
not imported here, so importing the codec never loads scapy.
"""

from __future__ import annotations

from . import _describe  # noqa: F401  (registers ParsedHeader.as_dict)
from ._errors import (
    BadCommand,
    BadFamily,
    BadProtocol,
    BadSignature,
    BadVersion,
    CRCMismatch,
    EncodeError,
    HeaderTimeout,
    HeaderTooLarge,
    IncompleteHeader,
    InvalidHeader,
    LengthTooShort,
    NotPresent,
    ProxyProtocolError,
    TLVOverrun,
    TLVTrailing,
    V1Malformed,
    V1NoCRLF,
)
from ._parse import parse
from ._reader import DEFAULT_MAX_SIZE, read_header
from ._tlv import TLV, AWSSubtype, SSLClient, SSLInfo, TLVType
from ._types import Address, Command, Family, ParsedHeader, Protocol, ProxyHeader, ReadResult
from ._v1 import build_v1, proxy_v1
from ._v2 import SIGNATURE_V2, build_v2, local_v2, proxy_v2

__all__ = [
    # values
    "Command",
    "Family",
    "Protocol",
    "Address",
    "TLV",
    "TLVType",
    "SSLInfo",
    "SSLClient",
    "AWSSubtype",
    "ProxyHeader",
    "ParsedHeader",
    "ReadResult",
    "SIGNATURE_V2",
    "DEFAULT_MAX_SIZE",
    # functions
    "parse",
    "build_v1",
    "build_v2",
    "proxy_v2",
    "local_v2",
    "proxy_v1",
    "read_header",
    # errors
    "ProxyProtocolError",
    "IncompleteHeader",
    "InvalidHeader",
    "BadSignature",
    "BadVersion",
    "BadCommand",
    "BadFamily",
    "BadProtocol",
    "LengthTooShort",
    "TLVOverrun",
    "TLVTrailing",
    "CRCMismatch",
    "V1NoCRLF",
    "V1Malformed",
    "HeaderTooLarge",
    "HeaderTimeout",
    "NotPresent",
    "EncodeError",
]
