"""Reading a PROXY header off an asyncio stream, the way a receiving proxy does it."""

from __future__ import annotations

import asyncio

from ._errors import HeaderTimeout, HeaderTooLarge, IncompleteHeader, InvalidHeader, NotPresent
from ._parse import parse
from ._types import ReadResult
from ._v1 import V1_MAX_LEN, V1_PREFIX
from ._v2 import SIGNATURE_V2

__all__ = ["read_header", "DEFAULT_MAX_SIZE"]

#: HAProxy's receive buffer for a header (232 bytes covers v1 and v2 without TLVs) plus the
#: largest v2 body: a v2 header is at most 16 + 65535 bytes.
DEFAULT_MAX_SIZE = 232 + 16 + 65535


def _has_signature(buf: bytes) -> bool:
    return buf[:12] == SIGNATURE_V2 or buf[:6] == V1_PREFIX


async def read_header(
    reader: asyncio.StreamReader,
    *,
    optional: bool = False,
    timeout: float | None = 5.0,
    max_size: int = DEFAULT_MAX_SIZE,
) -> ReadResult:
    """Read and decode the PROXY header at the start of ``reader``.

    v2 headers are read exactly (never a byte past the header); a v1 line is read in
    chunks of at most 107 bytes, so a few application bytes may be read with it: they are
    in ``leftover`` and must be handed to the application first.

    ``optional``: a stream that does not start with a signature yields ``header=None``
    and everything read so far as ``leftover``; otherwise that raises NotPresent.
    Raises HeaderTimeout when no complete header arrived within ``timeout`` seconds
    (both modes), HeaderTooLarge past ``max_size``, IncompleteHeader when the peer
    closes mid-header, and the decoder's InvalidHeader subclasses.
    """
    buf = b""
    try:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    parsed = parse(buf)
                except IncompleteHeader as exc:
                    needed = exc.needed
                except InvalidHeader as exc:
                    if _has_signature(buf):
                        raise
                    if optional:
                        return ReadResult(None, b"", buf)
                    raise NotPresent(f"expected a PROXY header, the peer sent {buf[:24]!r} ({exc.message})") from exc
                else:
                    return ReadResult(parsed.header, buf[: parsed.length], parsed.trailing)

                if len(buf) + needed > max_size:
                    raise HeaderTooLarge(
                        f"PROXY header needs at least {len(buf) + needed} bytes, the limit is {max_size}"
                    )
                closed_by = None
                try:
                    if buf[:12] == SIGNATURE_V2:
                        # v2: ``needed`` is exact, so read exactly that (one await, no re-parsing).
                        chunk = await reader.readexactly(needed)
                    else:
                        # Not yet known to be a header, or v1 (whose end is unknown): read what
                        # is there, so that a short plain request is not waited on.
                        size = needed
                        if buf[:1] == b"P":
                            size = max(needed, min(V1_MAX_LEN, max_size) - len(buf))
                        chunk = await reader.read(size)
                        if not chunk:
                            closed_by = "closed the connection"
                except asyncio.IncompleteReadError as exc:
                    buf += exc.partial
                    chunk, closed_by = b"", "closed the connection"
                except ConnectionError as exc:
                    chunk, closed_by = b"", f"reset the connection ({exc.__class__.__name__})"
                if closed_by:
                    if optional and not _has_signature(buf):
                        return ReadResult(None, b"", buf)
                    if not buf:
                        raise NotPresent(f"the peer {closed_by} without sending a PROXY header")
                    try:
                        parse(buf)
                    except IncompleteHeader as exc:
                        needed = exc.needed
                    raise IncompleteHeader(
                        needed,
                        f"the peer {closed_by} after {len(buf)} bytes of a PROXY header "
                        f"(at least {needed} more were needed)",
                    )
                buf += chunk
    except TimeoutError:
        raise HeaderTimeout(
            f"no complete PROXY header within {timeout} s (received {len(buf)} byte(s): {buf[:24]!r})"
        ) from None
