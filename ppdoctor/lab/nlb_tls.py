"""TLS on the lab NLB: a TLS listener terminates the client's TLS; a TLS target group re-encrypts to the target.

What AWS documents and the lab follows ("TLS listeners for your Network Load Balancer",
"Target groups for your Network Load Balancers"): a TLS listener presents its (ACM)
certificate and hands the decrypted stream to the target group; with a TCP target group the
target gets plaintext, with a TLS target group the NLB opens TLS to the target *without SNI*
and without verifying the target's certificate. The PROXY v2 header, when on, goes first on the
TCP connection, before the NLB's ClientHello (istio/istio #22795 is what the missing SNI does to
a gateway whose TLS server has specific hosts).

The handshakes are done on the flow's transports with ``loop.start_tls``: the target side first
(a failure resets the client, as a target that closes on the NLB does), then the client side.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

HANDSHAKE_TIMEOUT_S = 5.0


def listener_context(cert: tuple[Path, Path]) -> ssl.SSLContext:
    """The listener's side: the lab's self-signed certificate (imported into moto's ACM at lab start)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # ELBSecurityPolicy-TLS13-1-2-2021-06
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    ctx.set_alpn_protocols(["http/1.1"])  # the NLB does not negotiate ALPN unless the listener sets a policy
    return ctx


def target_context() -> ssl.SSLContext:
    """The NLB's side towards a TLS target group: no certificate check, no SNI."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def _wrap(side: Any, ctx: ssl.SSLContext, *, server_side: bool) -> None:
    loop = asyncio.get_running_loop()
    # server_hostname None (with check_hostname off): Python sends no server_name extension.
    new = await loop.start_tls(side.transport, side, ctx, server_side=server_side, server_hostname=None,
                               ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S)
    if new is None:
        raise ConnectionResetError("TLS handshake: the connection closed")
    side.transport = new


async def wrap_flow(client: Any, target: Any, *, target_tls: bool, listener_cert: tuple[Path, Path] | None) -> None:
    """Do the TLS the live state asks for on one spliced flow; raises on a failed handshake."""
    if target_tls:
        await _wrap(target, target_context(), server_side=False)
    if listener_cert is not None:
        await _wrap(client, listener_context(listener_cert), server_side=True)
