"""``ppdoctor pp decode`` / ``ppdoctor pp encode``: the codec for people pasting bytes from tcpdump.

Imports only the standard library and the codec (no textual, boto3, kubernetes, scapy).
Exit codes: 0 ok; 1 decoded, but the CRC32C does not match; 2 bad input or arguments.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from ._describe import parsed_to_dict, parsed_to_text
from ._errors import EncodeError, ProxyProtocolError
from ._parse import parse
from ._tlv import TLV, TLVType
from ._types import Address, Command, Family, Protocol, ProxyHeader
from ._v1 import build_v1
from ._v2 import build_v2, local_v2, pack_ip

__all__ = ["run_decode", "run_encode", "read_hex", "parse_endpoint"]

EXIT_OK = 0
EXIT_CRC_MISMATCH = 1
EXIT_BAD_INPUT = 2

_SEPARATORS = re.compile(r"[\s:]+")


class BadInput(ProxyProtocolError):
    kind = "bad-input"


def read_hex(items: list[str], stdin=None) -> bytes:
    """Bytes from hex words; '-' stands for standard input. Whitespace, ':' and 0x prefixes are ignored."""
    parts = []
    for item in items:
        if item == "-":
            parts.append((stdin or sys.stdin).read())
        else:
            parts.append(item)
    words = [w for w in _SEPARATORS.split(" ".join(parts)) if w]
    text = "".join(w[2:] if w[:2].lower() == "0x" else w for w in words)
    if not text:
        raise BadInput("no hex bytes given", hint="pass the header as hex, e.g. 0d0a0d0a000d0a515549540a…")
    if len(text) % 2:
        raise BadInput(f"odd number of hex digits ({len(text)})", hint="each byte is two hex digits")
    try:
        return bytes.fromhex(text)
    except ValueError:
        bad = next((c for c in text if c not in "0123456789abcdefABCDEF"), "?")
        raise BadInput(f"not hex: {bad!r}", hint="only 0-9 a-f, whitespace and ':' are accepted") from None


def _print_error(exc: ProxyProtocolError, as_json: bool, prefix: str) -> None:
    if as_json:
        print(json.dumps({"error": exc.as_dict()}))
    else:
        print(f"{prefix}: {exc}", file=sys.stderr)


def run_decode(args: argparse.Namespace) -> int:
    as_json = bool(getattr(args, "json", False))
    try:
        data = read_hex(list(args.hex))
        parsed = parse(data, verify_crc=False)
    except ProxyProtocolError as exc:
        _print_error(exc, as_json, "ppdoctor pp decode")
        return EXIT_BAD_INPUT
    if as_json:
        print(json.dumps(parsed_to_dict(parsed)))
    else:
        print(parsed_to_text(parsed))
    return EXIT_CRC_MISMATCH if parsed.crc32c == "invalid" else EXIT_OK


_ENDPOINT = re.compile(r"^\[(?P<v6>[^\]]+)\]:(?P<port6>[^:]+)$|^(?P<host>[^:\[\]]+):(?P<port>[^:]+)$")


def parse_endpoint(text: str, what: str) -> tuple[str, int]:
    """``IP:PORT`` or ``[IPv6]:PORT`` → (ip, port)."""
    m = _ENDPOINT.match(text.strip())
    if not m:
        raise EncodeError(
            f"{what} {text!r} is not IP:PORT",
            hint="write IPv4 as 203.0.113.7:51234 and IPv6 in brackets, e.g. [2001:db8::7]:51234",
        )
    host = m.group("v6") or m.group("host")
    port_text = m.group("port6") or m.group("port")
    if not port_text.isdigit() or int(port_text) > 0xFFFF:
        raise EncodeError(f"{what} port {port_text!r} is not a number 0..65535")
    pack_ip(host, what)  # raises EncodeError with a clear message
    return host, int(port_text)


def _tlv_arg(text: str) -> TLV:
    type_text, sep, value_text = text.partition("=")
    if not sep:
        raise EncodeError(f"--tlv {text!r} is not TYPE=HEX", hint="e.g. --tlv 0xE1=6869 or --tlv ALPN=6832")
    type_text = type_text.strip()
    try:
        type_ = int(type_text, 0)
    except ValueError:
        member = TLVType.__members__.get(type_text.upper())
        if member is None:
            raise EncodeError(
                f"--tlv type {type_text!r} is neither a number nor one of {', '.join(TLVType.__members__)}"
            ) from None
        type_ = int(member)
    if not 0 <= type_ <= 0xFF:
        raise EncodeError(f"--tlv type {type_} is out of range 0..255")
    try:
        value = read_hex([value_text]) if value_text.strip() else b""
    except ProxyProtocolError as exc:
        raise EncodeError(f"--tlv {text!r}: value is not hex ({exc.message})") from None
    return TLV(type_, value)


def _family_of(host: str) -> Family:
    return Family.INET if pack_ip(host, "address")[0] == 1 else Family.INET6


def _encode(args: argparse.Namespace) -> bytes:
    src = parse_endpoint(args.src, "--src") if args.src else None
    dst = parse_endpoint(args.dst, "--dst") if args.dst else None
    if (src is None) != (dst is None):
        raise EncodeError("give both --src and --dst, or neither (LOCAL / v1 UNKNOWN)")
    tlvs = [_tlv_arg(t) for t in args.tlv or ()]
    if args.authority is not None:
        tlvs.append(TLV.authority(args.authority))
    if args.vpce is not None:
        tlvs.append(TLV.aws_vpce(args.vpce))

    if args.v1:
        if args.local:
            raise EncodeError("PROXY v1 has no LOCAL command", hint="drop --v1, or drop --local")
        if tlvs or args.crc32c:
            raise EncodeError("PROXY v1 carries no TLVs (--crc32c, --vpce, --authority, --tlv need v2)")
        if src is None:
            return b"PROXY UNKNOWN\r\n"
    elif src is None:
        if not args.local:
            raise EncodeError("--src and --dst are required for a PROXY header", hint="or pass --local")
        return local_v2(tlvs=tlvs, crc32c=args.crc32c)

    assert src is not None and dst is not None
    fam_s, fam_d = _family_of(src[0]), _family_of(dst[0])
    if fam_s != fam_d:
        raise EncodeError("--src and --dst must both be IPv4 or both IPv6")
    header = ProxyHeader(
        version=1 if args.v1 else 2,
        command=Command.LOCAL if args.local else Command.PROXY,
        family=fam_s,
        protocol=Protocol.STREAM,
        src=Address(*src),
        dst=Address(*dst),
        tlvs=tuple(tlvs),
    )
    return build_v1(header) if args.v1 else build_v2(header, crc32c=args.crc32c)


def run_encode(args: argparse.Namespace) -> int:
    try:
        data = _encode(args)
    except ProxyProtocolError as exc:
        print(f"ppdoctor pp encode: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(data.hex())
    return EXIT_OK
