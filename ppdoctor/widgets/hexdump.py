"""Hexdump of the bytes a probe sent, with the PROXY header highlighted, and the header decoded."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from .safe import clean

HEADER_STYLE = "bold magenta"
MAX_DUMP = 1024


def hexdump(data: bytes, *, header_length: int = 0, limit: int = MAX_DUMP) -> Text:
    """Classic 16-bytes-a-line dump; the first ``header_length`` bytes (the PROXY header) in colour."""
    out = Text(no_wrap=True, overflow="ellipsis")
    shown = data[:limit]
    for offset in range(0, len(shown), 16):
        chunk = shown[offset:offset + 16]
        out.append(f"{offset:04x}  ", style="dim")
        for i in range(16):
            if i == 8:
                out.append(" ")
            if i < len(chunk):
                style = HEADER_STYLE if offset + i < header_length else ""
                out.append(f"{chunk[i]:02x} ", style=style)
            else:
                out.append("   ")
        out.append(" |", style="dim")
        for i, byte in enumerate(chunk):
            style = HEADER_STYLE if offset + i < header_length else ""
            out.append(chr(byte) if 0x20 <= byte < 0x7F else ".", style=style)
        out.append("|\n", style="dim")
    if len(data) > limit:
        out.append(f"… {len(data) - limit} more bytes\n", style="dim")
    out.rstrip()
    return out


def decode_proxy_header(data: bytes) -> tuple[dict[str, Any] | None, str]:
    """(decoded header, note) for bytes that may start with a PROXY v1/v2 header."""
    from .. import proxyproto

    if not data:
        return None, "nothing was sent"
    try:
        parsed = proxyproto.parse(data)
    except proxyproto.BadSignature:
        return None, "no PROXY header at the start of the bytes sent"
    except proxyproto.ProxyProtocolError as exc:
        return None, f"the bytes start like a PROXY header but do not decode: {exc}"
    return parsed.as_dict(), ""


def _endpoint(e: dict[str, Any] | None) -> str:
    if not e:
        return "—"
    address, port = str(e.get("address")), e.get("port")
    if port is None:
        return address
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def describe_header(d: dict[str, Any]) -> Text:
    """The decoded header as a few lines (values are printable ASCII or hex already; escaped again anyway)."""
    text = Text()
    text.append(f"PROXY protocol v{d.get('version')}", style=HEADER_STYLE)
    text.append(f", {d.get('header_length')} bytes\n")
    rows = [
        ("command", d.get("command")),
        ("family", d.get("family")),
        ("protocol", d.get("protocol")),
        ("source", _endpoint(d.get("src"))),
        ("destination", _endpoint(d.get("dst"))),
        ("CRC32C", d.get("crc32c")),
    ]
    if d.get("aws_vpce_id"):
        rows.append(("AWS VPC endpoint", d["aws_vpce_id"]))
    tlvs = d.get("tlvs") or []
    rows.append(("TLVs", ", ".join(f"0x{t.get('type', 0):02X} {t.get('name')}={t.get('value')}" for t in tlvs) or "none"))
    for label, value in rows:
        text.append(f"  {label:<12}", style="dim")
        text.append(clean(value))
        text.append("\n")
    text.rstrip()
    return text
