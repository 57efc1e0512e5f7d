"""Tiny asyncio HTTP/1.1 servers with one behaviour each, for the bench tests (loopback only)."""

from __future__ import annotations

import asyncio
import select
import socket
import struct
import time

OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
RESPONSES = {
    "ok": OK_RESPONSE,
    "500": b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom",
    "404": b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    "garbage": b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
}


class _Handler(asyncio.Protocol):
    def __init__(self, server: "BehaviourServer") -> None:
        self.server = server
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, _, self.buf = self.buf.partition(b"\r\n\r\n")
            # a PROXY v2 header may prefix the first request; the tests only count requests
            self.server.arrivals.append(time.monotonic_ns())
            self.respond()

    def respond(self) -> None:
        b = self.server.behaviour
        tr = self.transport
        assert tr is not None
        if b in RESPONSES:
            tr.write(RESPONSES[b])
        elif b == "reset":
            sock = tr.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            tr.abort()
        elif b == "close":
            tr.close()  # FIN without a byte of response: curl's "Empty reply from server"
        elif b == "hang":
            pass  # read the request, never answer


class BehaviourServer:
    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.arrivals: list[int] = []
        self.connections = 0
        self.server: asyncio.base_events.Server | None = None

    async def start(self, host: str = "127.0.0.1") -> "BehaviourServer":
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Handler(self), host, 0, backlog=1024)
        return self

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def closed_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (bound and released just now)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def full_backlog_listener(host: str = "127.0.0.1") -> tuple[socket.socket, list[socket.socket]]:
    """A listener that never accepts, with its accept queue filled: further SYNs are dropped (connect hangs)."""
    lst = socket.socket()
    lst.bind((host, 0))
    lst.listen(0)
    fillers: list[socket.socket] = []
    for _ in range(8):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(lst.getsockname())
        fillers.append(c)
    # wait (bounded) until the kernel has completed the fillers' handshakes into the queue
    select.select([], fillers, [], 2.0)
    return lst, fillers
