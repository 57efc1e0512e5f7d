"""Reading an echo backend's answer: which client IP it saw, and whether it shows X-Forwarded-For at all.

Understands go-httpbin (headers as lists), postmanlabs/httpbin (headers as strings, XFF
dropped) and ppdoctor's own echo (headers as ordered pairs, plus the PROXY header it got).
Everything here is untrusted input: malformed JSON yields an empty view, never an exception.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class EchoView:
    parsed: bool = False
    origin: str | None = None  # what the backend reports as the client ("origin" / "client_ip")
    xff: str | None = None  # X-Forwarded-For as the backend received it (None = absent)
    external_address: str | None = None  # X-Envoy-External-Address
    headers: dict[str, str] = field(default_factory=dict)
    proxy_header_src: str | None = None  # ppdoctor echo: PROXY source it received itself

    @property
    def client_ip(self) -> str | None:
        """Envoy's verdict on the client: X-Envoy-External-Address, else XFF's first entry, else origin.

        X-Envoy-External-Address honours xff_num_trusted_hops; XFF's first entry can be forged
        by the client, and for a loopback peer Envoy appends the host's own address to XFF
        instead of the peer's (measured, docs/measured-envoy.md).
        """
        if self.external_address and self.external_address.strip():
            return self.external_address.strip()
        if self.xff:
            first = self.xff.split(",")[0].strip()
            if first:
                return first
        return self.origin.split(",")[0].strip() if self.origin else None


def _text(value: Any) -> str:
    """``str(value)`` as valid UTF-8: JSON escapes can smuggle lone surrogates that no terminal or file takes."""
    return str(value).encode("utf-8", errors="replace").decode("utf-8")


def _flatten(value: Any) -> str | None:
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    if value is None:
        return None
    return _text(value)


def parse_echo(body: bytes) -> EchoView:
    try:
        data = json.loads(body.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):  # not JSON, an int beyond the digit limit, or nested too deep
        return EchoView()
    try:
        return _view(data)
    except RecursionError:  # str() of a value nested just under json's limit
        return EchoView()


def _view(data: Any) -> EchoView:
    view = EchoView()
    if not isinstance(data, dict):
        return view
    view.parsed = True
    headers: dict[str, str] = {}
    raw_headers = data.get("headers")
    if isinstance(raw_headers, dict):
        for k, v in raw_headers.items():
            flat = _flatten(v)
            if flat is not None:
                headers[_text(k).lower()] = flat
    elif isinstance(raw_headers, list):
        for item in raw_headers:
            if isinstance(item, (list, tuple)) and len(item) == 2:
                k, v = _text(item[0]).lower(), _text(item[1])
                headers[k] = f"{headers[k]}, {v}" if k in headers else v
    view.headers = headers
    view.xff = headers.get("x-forwarded-for")
    view.external_address = headers.get("x-envoy-external-address")
    origin = data.get("client_ip") or data.get("origin")
    view.origin = _text(origin) if origin is not None else None
    ph = data.get("proxy_header")
    if isinstance(ph, dict) and isinstance(ph.get("src"), dict):
        view.proxy_header_src = _text(ph["src"].get("address"))
    return view


def classify_ip(
    ip: str | None,
    *,
    nlb_ips: set[str] | None = None,
    vpc_cidrs: list[str] | None = None,
    spoofed: str | None = None,
    prober: set[str] | None = None,
) -> str:
    """Who an address belongs to: nlb, vpc-internal, probe-spoofed, prober, external, or unknown."""
    if not ip:
        return "unknown"
    try:
        addr = ipaddress.ip_address(ip.strip().strip("[]"))
    except ValueError:
        return "unknown"
    text = str(addr)
    if spoofed and text == spoofed:
        return "probe-spoofed"
    if nlb_ips and text in nlb_ips:
        return "nlb"
    if prober and text in prober:
        return "prober"
    for cidr in vpc_cidrs or []:
        try:
            if addr in ipaddress.ip_network(cidr, strict=False):
                return "vpc-internal"
        except ValueError:
            continue
    return "external"
