"""Following a redirect the way a browser would, a bounded number of times, to tell a loop from a move.

A gateway that redirects plaintext to https (``tls.httpsRedirect``) behind an NLB that already
terminated TLS sees every request arrive as plaintext — ``x-forwarded-proto: http`` is what
Envoy sets from the downstream connection — so it redirects the https request again: the
client gets 301 → the same https URL → 301 … (istio/istio #16778, envoyproxy/envoy #43031).
"""

from __future__ import annotations

from urllib.parse import urlsplit

MAX_REDIRECTS = 5
REDIRECT_CODES = (301, 302, 303, 307, 308)


async def follow(first_location: str, fetch) -> dict:
    """``fetch(scheme, path)`` → (status, location); returns the chain and whether it loops."""
    chain = [first_location]
    seen = {first_location}
    loop = False
    status = None
    location = first_location
    for _ in range(MAX_REDIRECTS):
        parts = urlsplit(location)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        status, location = await fetch(parts.scheme or "https", path)
        if status not in REDIRECT_CODES or not location:
            break
        if location in seen:
            loop = True
            chain.append(location)
            break
        seen.add(location)
        chain.append(location)
    else:
        loop = True  # still redirecting after MAX_REDIRECTS
    return {"chain": chain, "loop": loop, "final_status": status}
