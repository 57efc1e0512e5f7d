"""What a flow's first bytes are: PROXY v2/v1 header (decoded), plain HTTP, TLS ClientHello (SNI), or other."""

from __future__ import annotations

from ..proxyproto import IncompleteHeader, ProxyProtocolError, SIGNATURE_V2, parse
from ..text import clean

__all__ = ["classify_client", "classify_server", "HEALTH_CHECK_USER_AGENT"]

#: "Health checks for Network Load Balancer target groups": HTTP(S) checks send this User-Agent.
HEALTH_CHECK_USER_AGENT = b"ELB-HealthChecker/2.0"
_METHODS = (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"PATCH ", b"CONNECT ", b"TRACE ",
            b"PRI * HTTP/2")


def _inner(data: bytes) -> tuple[str, dict]:
    """Class and details of application bytes (after any PROXY header)."""
    if not data:
        return "none", {}
    if data.startswith(_METHODS):
        line = data.split(b"\r\n", 1)[0][:200]
        out = {"request": clean(line.decode("latin-1"), limit=200)}
        if HEALTH_CHECK_USER_AGENT in data[:2048]:
            out["elb_health_checker"] = True
        return "http", out
    if len(data) >= 6 and data[0] == 0x16 and data[1] == 0x03 and data[5] == 0x01:
        sni = _sni(data)
        return "tls", ({"sni": clean(sni, limit=255)} if sni else {})
    return "other", {"bytes": data[:16].hex(" ")}


def classify_client(data: bytes, complete: bool) -> tuple[str, dict]:
    """(class, details) of what the client sent first; ``complete``: the bytes are all the client sent."""
    if data[:12] == SIGNATURE_V2 or (data and len(data) < 12 and SIGNATURE_V2.startswith(data)):
        try:
            parsed = parse(data, verify_crc=False)
        except IncompleteHeader:
            return "ppv2-proxy", {"pp_error": "header cut short (capture snaplen or the client stopped)"}
        except ProxyProtocolError as exc:
            return "ppv2-invalid", {"pp_error": clean(str(exc), limit=200)}
        h = parsed.header
        details: dict = {"crc32c": parsed.crc32c}
        if h.is_local:
            cls = "ppv2-local"
        else:
            cls = "ppv2-proxy"
            details["pp_source"] = str(h.src) if h.src else None
            details["pp_destination"] = str(h.dst) if h.dst else None
        if h.tlvs:
            details["tlvs"] = [f"0x{t.type:02X}" for t in h.tlvs]
        vpce = h.aws_vpce_id
        if vpce:
            details["vpce"] = clean(vpce, limit=64)
        inner, more = _inner(parsed.trailing)
        details["after_header"] = inner
        details.update(more)
        return cls, details
    if data.startswith(b"PROXY "):
        try:
            parsed = parse(data)
        except IncompleteHeader:
            return "ppv1", {"pp_error": "header cut short"}
        except ProxyProtocolError as exc:
            return "ppv1", {"pp_error": clean(str(exc), limit=200)}
        h = parsed.header
        details = {"pp_source": str(h.src) if h.src else None}
        inner, more = _inner(parsed.trailing)
        details["after_header"] = inner
        details.update(more)
        return "ppv1", details
    return _inner(data)


def classify_server(data: bytes, rst: bool, fin: bool) -> tuple[str, dict]:
    """(class, details) of the server's answer: HTTP status class, reset, empty (FIN without a byte), none."""
    if data:
        if data.startswith(b"HTTP/") and len(data) >= 12 and data[9:12].isdigit():
            status = int(data[9:12])
            return f"http-{status // 100}xx", {"status": status}
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
