"""The client path in front of the NLB: headers a CDN (or any proxy) there adds to each request.

A proxy in front of the NLB connects from its own address and appends its peer's address to
X-Forwarded-For (and adds headers of its own, e.g. CloudFront-Viewer-Address). The target
config's ``nlb.client_headers`` says what that hop adds; probes that go through the NLB send
the request as it leaves that hop: their own headers first, the hop's X-Forwarded-For entry
appended after any the request already carries, exactly as an appending proxy does.
"""

from __future__ import annotations

from ..config import TargetConfig

XFF = "x-forwarded-for"


def configured_headers(config: TargetConfig) -> list[tuple[str, str]]:
    """``nlb.client_headers`` as (name, value) pairs; lines without a colon are skipped."""
    out = []
    for line in config.nlb.client_headers:
        name, sep, value = line.partition(":")
        if sep and name.strip():
            out.append((name.strip(), value.strip()))
    return out


def client_path_headers(config: TargetConfig, own: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """The headers of a request that went through the client path: ``own`` plus what the path adds."""
    own = list(own or [])
    added = configured_headers(config)
    hop_xff = [v for k, v in added if k.lower() == XFF]
    out = [(k, v) for k, v in own if k.lower() != XFF]
    out += [(k, v) for k, v in added if k.lower() != XFF]
    entries = [v for k, v in own if k.lower() == XFF] + hop_xff
    if entries:
        out.append(("X-Forwarded-For", ", ".join(entries)))
    return out


def hops_in_front(config: TargetConfig) -> int:
    """How many X-Forwarded-For entries the client path appends: one per proxy in front of the NLB."""
    return sum(len([e for e in v.split(",") if e.strip()]) for k, v in configured_headers(config) if k.lower() == XFF)


def end_client(config: TargetConfig) -> str | None:
    """The address the first proxy in front saw as its client (the left-most entry it appends)."""
    for k, v in configured_headers(config):
        if k.lower() == XFF:
            first = v.split(",")[0].strip()
            if first:
                return first
    return None


def client_tls(config: TargetConfig) -> dict:
    """``http_exchange`` arguments for a TLS listener (``nlb.tls``): a client context and the SNI to send.

    The certificate is not verified: the probe judges what the path does with a request, and the
    lab's listener certificate is self-signed (the operator's CA is not ppdoctor's to know).
    """
    if not config.nlb.tls:
        return {}
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return {"tls": ctx, "server_hostname": config.nlb.tls_server_name or config.echo.host or None}
