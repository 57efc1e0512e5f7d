"""What a flow's first bytes are: PROXY v2/v1 header (decoded), plain HTTP, TLS ClientHello (SNI), or other."""

from __future__ import annotations

from ..proxyproto import IncompleteHeader, ProxyProtocolError, SIGNATURE_V2, parse
from ..text import clean

__all__ = ["classify_client", "client_class", "client_details", "classify_server", "HEALTH_CHECK_USER_AGENT"]

#: "Health checks for Network Load Balancer target groups": HTTP(S) checks send this User-Agent.
HEALTH_CHECK_USER_AGENT = b"ELB-HealthChecker/2.0"
_METHODS = (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"PATCH ", b"CONNECT ", b"TRACE ",
            b"PRI * HTTP/2")


def _inner_class(data: bytes) -> str:
    if not data:
        return "none"
    if data.startswith(_METHODS):
        return "http"
    if len(data) >= 6 and data[0] == 0x16 and data[1] == 0x03 and data[5] == 0x01:
        return "tls"
    return "other"


def _inner(data: bytes) -> dict:
    """Details of application bytes (after any PROXY header), cleaned for display."""
    cls = _inner_class(data)
    if cls == "http":
        line = data.split(b"\r\n", 1)[0][:200]
        out: dict = {"request": clean(line.decode("latin-1"), limit=200)}
        if HEALTH_CHECK_USER_AGENT in data:
            out["elb_health_checker"] = True
        return out
    if cls == "tls":
        sni = _sni(data)
        return {"sni": clean(sni, limit=255)} if sni else {}
    if cls == "other":
        return {"bytes": data[:16].hex(" ")}
    return {}


def client_class(data: bytes) -> tuple[str, object, bool]:
    """(class, the parsed PROXY header or an error text or None, sent by the ELB health checker).

    The cheap part of ``classify_client``, run for every flow; the details are built only for
    flows that become examples or evidence.
    """
    if data[:12] == SIGNATURE_V2 or (data and len(data) < 12 and SIGNATURE_V2.startswith(data)):
        try:
            parsed = parse(data, verify_crc=False)
        except IncompleteHeader:
            return "ppv2-proxy", "header cut short (capture snaplen or the client stopped)", False
        except ProxyProtocolError as exc:
            return "ppv2-invalid", clean(str(exc), limit=200), False
        if parsed.header.command == 0 or parsed.header.family == 0:
            return "ppv2-local", parsed, False
        return "ppv2-proxy", parsed, HEALTH_CHECK_USER_AGENT in parsed.trailing
    if data[:6] == b"PROXY ":
        try:
            parsed = parse(data)
        except IncompleteHeader:
            return "ppv1", "header cut short", False
        except ProxyProtocolError as exc:
            return "ppv1", clean(str(exc), limit=200), False
        return "ppv1", parsed, HEALTH_CHECK_USER_AGENT in parsed.trailing
    cls = _inner_class(data)
    return cls, None, cls == "http" and HEALTH_CHECK_USER_AGENT in data


def client_details(cls: str, data: bytes, parsed: object) -> dict:
    """Display details of the client's first bytes (remote text cleaned)."""
    if isinstance(parsed, str):
        return {"pp_error": parsed}
    if parsed is None:
        return _inner(data)
    h = parsed.header
    details: dict = {}
    if h.version == 2:
        details["crc32c"] = parsed.crc32c
    if not h.is_local:
        details["pp_source"] = str(h.src) if h.src else None
        details["pp_destination"] = str(h.dst) if h.dst else None
    if h.tlvs:
        details["tlvs"] = [f"0x{t.type:02X}" for t in h.tlvs]
    vpce = h.aws_vpce_id
    if vpce:
        details["vpce"] = clean(vpce, limit=64)
    details["after_header"] = _inner_class(parsed.trailing)
    details.update(_inner(parsed.trailing))
    return details


def classify_client(data: bytes, complete: bool = True) -> tuple[str, dict]:
    """(class, details) of what the client sent first."""
    cls, parsed, _ = client_class(data)
    return cls, client_details(cls, data, parsed)


_STATUS_CLASS = {b"1": "http-1xx", b"2": "http-2xx", b"3": "http-3xx", b"4": "http-4xx", b"5": "http-5xx"}


def classify_server(data: bytes, rst: bool, fin: bool) -> tuple[str, dict]:
    """(class, details) of the server's answer: HTTP status class, reset, empty (FIN without a byte), none."""
    if data:
        if data.startswith(b"HTTP/") and len(data) >= 12 and data[9:12].isdigit():
            return _STATUS_CLASS.get(data[9:10], "http-other"), {"status": int(data[9:12])}
        if data.startswith(b"HTTP/"):
            return "http-other", {}
        return "other", {"bytes": data[:16].hex(" ")}
    if rst:
        return "reset", {}
    if fin:
        return "empty", {}
    return "none", {}


def _sni(data: bytes) -> str | None:
    """The server_name of a TLS ClientHello (RFC 8446 §4.1.2, RFC 6066 §3), as far as captured."""
    try:
        pos = 5 + 4 + 2 + 32  # record header, handshake header, legacy_version, random
        pos += 1 + data[pos]  # session id
        pos += 2 + int.from_bytes(data[pos:pos + 2], "big")  # cipher suites
        pos += 1 + data[pos]  # compression methods
        end = pos + 2 + int.from_bytes(data[pos:pos + 2], "big")
        pos += 2
        while pos + 4 <= min(end, len(data)):
            etype = int.from_bytes(data[pos:pos + 2], "big")
            elen = int.from_bytes(data[pos + 2:pos + 4], "big")
            if etype == 0:
                # server_name_list: length(2), name_type(1), name length(2), name
                nlen = int.from_bytes(data[pos + 7:pos + 9], "big")
                name = data[pos + 9:pos + 9 + nlen]
                return name.decode("ascii", "replace") if name else None
            pos += 4 + elen
    except IndexError:
        return None
    return None
