"""Readable forms of a decoded header: the JSON object of ``ppdoctor pp decode --json`` and a text summary.

Everything shown comes from the network, so values are rendered as printable ASCII or hex,
never as raw text that a terminal or a markup renderer could interpret.
"""

from __future__ import annotations

from typing import Any

from ._errors import ProxyProtocolError
from ._tlv import TLV, TLVType
from ._types import Address, Command, Family, ParsedHeader, Protocol, register

__all__ = ["parsed_to_dict", "parsed_to_text", "printable", "tlv_to_dict"]

_FAMILY_TEXT = {
    Family.UNSPEC: "UNSPEC (no addresses: the receiver uses the socket's)",
    Family.INET: "INET (IPv4)",
    Family.INET6: "INET6 (IPv6)",
    Family.UNIX: "UNIX (socket paths)",
}


def printable(value: bytes) -> str | None:
    """The value as text if every byte is printable ASCII (0x20..0x7E), else None."""
    if all(0x20 <= b < 0x7F for b in value):
        return value.decode("ascii")
    return None


def _address(addr: Address | None) -> dict[str, Any] | None:
    if addr is None:
        return None
    raw = addr.address.encode("utf-8", "surrogateescape")
    text = printable(raw)
    return {"address": text if text is not None else raw.hex(), "port": addr.port}


def tlv_to_dict(tlv: TLV) -> dict[str, Any]:
    text = printable(tlv.value)
    out: dict[str, Any] = {
        "type": tlv.type,
        "name": tlv.name,
        "value": text if text is not None else tlv.value.hex(),
        "hex": tlv.value.hex(),
    }
    if tlv.type == TLVType.AWS:
        out["aws"] = {"subtype": tlv.aws_subtype, "vpce_id": _safe_text(tlv.aws_vpce_id)}
    elif tlv.type == TLVType.SSL:
        try:
            ssl = tlv.ssl
        except ProxyProtocolError as exc:
            out["ssl"] = {"error": exc.as_dict()}
        else:
            assert ssl is not None
            out["ssl"] = {
                "client": ssl.client,
                "client_flags": [f.name for f in type(ssl.client_flags) if f & ssl.client_flags],
                "verify": ssl.verify,
                "verified": ssl.verify == 0,
                "tlvs": [tlv_to_dict(sub) for sub in ssl.tlvs],
            }
    return out


def _safe_text(text: str | None) -> str | None:
    if text is None:
        return None
    raw = text.encode("utf-8", "backslashreplace")
    shown = printable(raw)
    return shown if shown is not None else raw.hex()


def parsed_to_dict(parsed: ParsedHeader) -> dict[str, Any]:
    """The stable JSON shape: version, command, family, protocol, src, dst, tlvs, crc32c, ..."""
    h = parsed.header
    return {
        "version": h.version,
        "command": Command(h.command).name,
        "family": Family(h.family).name,
        "protocol": Protocol(h.protocol).name,
        "src": _address(h.src),
        "dst": _address(h.dst),
        "tlvs": [tlv_to_dict(t) for t in h.tlvs],
        "crc32c": parsed.crc32c,
        "aws_vpce_id": _safe_text(h.aws_vpce_id),
        "header_length": parsed.length,
        "trailing_bytes": len(parsed.trailing),
    }


def _tlv_line(d: dict[str, Any], indent: str) -> list[str]:
    lines = [f"{indent}0x{d['type']:02X} {d['name']:<14} {d['value']}"]
    if "aws" in d:
        sub = d["aws"]["subtype"]
        vpce = d["aws"]["vpce_id"]
        what = f"VPC endpoint id {vpce}" if vpce is not None else f"subtype {sub}"
        lines[0] = f"{indent}0x{d['type']:02X} {d['name']:<14} {what}"
    if "ssl" in d:
        ssl = d["ssl"]
        if "error" in ssl:
            lines.append(f"{indent}   malformed SSL block: {ssl['error']['message']}")
        else:
            flags = ",".join(ssl["client_flags"]) or "none"
            verdict = "verified" if ssl["verified"] else f"NOT verified ({ssl['verify']})"
            lines.append(f"{indent}   client flags {flags}; client certificate {verdict}")
            for sub in ssl["tlvs"]:
                lines.extend(_tlv_line(sub, indent + "   "))
    return lines


def parsed_to_text(parsed: ParsedHeader) -> str:
    """A multi-line summary for people reading a tcpdump."""
    d = parsed_to_dict(parsed)
    h = parsed.header
    lines = [f"PROXY protocol v{d['version']} header, {d['header_length']} bytes"]
    lines.append(f"  command   {d['command']}")
    lines.append(f"  family    {_FAMILY_TEXT[Family(h.family)]}")
    lines.append(f"  protocol  {d['protocol']}")

    def endpoint(e: dict[str, Any] | None) -> str:
        if e is None:
            return "-"
        if e["port"] is None:
            return e["address"]
        return f"[{e['address']}]:{e['port']}" if ":" in e["address"] else f"{e['address']}:{e['port']}"

    lines.append(f"  source    {endpoint(d['src'])}")
    lines.append(f"  dest      {endpoint(d['dst'])}")
    if d["tlvs"]:
        lines.append(f"  TLVs      {len(d['tlvs'])}")
        for t in d["tlvs"]:
            lines.extend(_tlv_line(t, "    "))
    else:
        lines.append("  TLVs      none")
    crc = {
        "valid": "valid",
        "absent": "absent",
        "invalid": "INVALID: receivers that check it (HAProxy) drop this connection",
    }[parsed.crc32c]
    lines.append(f"  crc32c    {crc}")
    if d["aws_vpce_id"] is not None:
        lines.append(f"  AWS VPC endpoint  {d['aws_vpce_id']}")
    if d["trailing_bytes"]:
        lines.append(f"  trailing  {d['trailing_bytes']} byte(s) after the header (application data)")
    if h.is_local:
        lines.append(
            "  meaning   the receiver keeps the connection's own addresses"
            + (" (LOCAL: e.g. an NLB health check)" if h.command == Command.LOCAL else "")
        )
    else:
        lines.append(f"  meaning   the receiver sees the client as {endpoint(d['src'])}")
    return "\n".join(lines)

register(describer=parsed_to_dict)
