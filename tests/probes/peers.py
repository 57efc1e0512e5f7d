"""Hostile peers for the probe engine: asyncio servers on 127.0.0.1 (dynamic ports) in a thread of their own.

The peers run on their own event loop in a background thread, so the probe under test runs
in ``asyncio.run`` exactly as the CLI runs it (wall time includes loop teardown), and a peer
busy pushing megabytes does not share the probe's loop. Peer allocations stay small (one
pre-built chunk, written with ``drain``) so that tracemalloc measures the probe, not the peer.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import threading
import time
from collections.abc import Awaitable, Callable

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

CHUNK = b"a" * 65536
HEADER_LINE = b"X-Filler: " + b"f" * 1014 + b"\r\n"  # 1 KiB
HEADER_CHUNK = HEADER_LINE * 64  # 64 KiB of valid-looking header lines
TEN_MB = 10 * 1024 * 1024


class PeerThread:
    """An event loop in a daemon thread serving hostile handlers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._servers: list[asyncio.base_events.Server] = []
        self._thread = threading.Thread(target=self.loop.run_forever, name="hostile-peers", daemon=True)
        self._thread.start()
        self.connections = 0

    def _call(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def serve(self, handler: Handler, *, tls: ssl.SSLContext | None = None) -> int:
        """Start a server on 127.0.0.1:0 running ``handler`` per connection; returns the port."""

        async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await handler(reader, writer)
            except (ConnectionError, OSError, asyncio.CancelledError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.transport.abort()

        async def start() -> int:
            server = await asyncio.start_server(guarded, "127.0.0.1", 0, ssl=tls, backlog=64)
            self._servers.append(server)
            return server.sockets[0].getsockname()[1]

        return self._call(start())

    def stop(self) -> None:
        async def close_all() -> None:
            for server in self._servers:
                server.close()
            for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                task.cancel()
            await asyncio.sleep(0)

        try:
            self._call(close_all())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)


# --- handlers ----------------------------------------------------------------------------


async def garbage(reader, writer):
    """Answers with binary noise that is not HTTP, then keeps the connection open."""
    await reader.read(65536)
    writer.write(b"\x00\xff\x13\x37 SSH-2.0-notHTTP \x7f\x80\r\n\r\n" * 4)
    await writer.drain()
    await asyncio.sleep(30)


async def slowloris(reader, writer):
    """A status line, then one header byte every 100 ms, forever."""
    await reader.read(65536)
    writer.write(b"HTTP/1.1 200 OK\r\n")
    while True:
        writer.write(b"X")
        await writer.drain()
        await asyncio.sleep(0.1)


async def endless_headers(reader, writer):
    """A status line, then megabytes of header lines as fast as the socket takes them (never a blank line)."""
    await reader.read(65536)
    writer.write(b"HTTP/1.1 200 OK\r\n")
    sent = 0
    while sent < 64 * 1024 * 1024:
        writer.write(HEADER_CHUNK)
        await writer.drain()
        sent += len(HEADER_CHUNK)


async def ten_mb_body(reader, writer):
    """200 OK with a 10 MB body, streamed from one reused 64 KiB chunk."""
    await reader.read(65536)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                 b"Content-Length: %d\r\n\r\n" % TEN_MB)
    for _ in range(TEN_MB // len(CHUNK)):
        writer.write(CHUNK)
        await writer.drain()


async def trickle_body(reader, writer):
    """200 OK, then a body that never finishes (one byte every 100 ms)."""
    await reader.read(65536)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    while True:
        writer.write(b"b")
        await writer.drain()
        await asyncio.sleep(0.1)


async def silence(reader, writer):
    """Accept, read the request, never answer."""
    await reader.read(65536)
    await asyncio.sleep(60)


async def reset(reader, writer):
    """Accept, read the request, then RST (SO_LINGER 0)."""
    await reader.read(65536)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def close_silently(reader, writer):
    """Accept, read the request, close with a FIN and not a byte."""
    await reader.read(65536)
    writer.close()


async def tls_alert(reader, writer):
    """What a TLS-only peer that answers plaintext with a fatal alert sends (protocol_version)."""
    await reader.read(65536)
    writer.write(bytes.fromhex("150301000202" "46"))
    await writer.drain()
    writer.close()


def json_reply(body: bytes, status: bytes = b"200 OK") -> Handler:
    async def handler(reader, writer):
        await reader.read(65536)
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        await asyncio.sleep(0.5)

    return handler


def refused_port() -> int:
    """A loopback port nobody listens on (bound then closed, never listened)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Blackhole:
    """A listener whose accept queue is full: further SYNs are dropped, connects hang (Linux).

    Loopback cannot drop SYNs by routing; a listen(0) socket that never accepts, with its
    queue filled by a completed connection, makes the kernel drop new SYNs instead.
    """

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.fillers: list[socket.socket] = []
        import select

        for _ in range(8):
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fillers.append(c)
            _, writable, _ = select.select([], [c], [], 0.3)
            if not writable:
                return  # this SYN was dropped: the queue is full
        raise RuntimeError("could not fill the accept queue of a listen(0) socket")

    def close(self) -> None:
        for c in self.fillers:
            c.close()
        self.listener.close()


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - t0
