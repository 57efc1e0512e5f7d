"""A server-first backend for the lab: it greets right after accept, like SMTP (``220 …``) or MySQL's handshake.

The lab gateway routes a plain TCP port to it (an Istio Gateway server with protocol TCP and a
VirtualService ``tcp:`` route), so a client that connects and waits sees whether the greeting makes
it through the NLB and the gateway's listener filters (PPD018). After the greeting it answers each
line with ``250 ok`` and ``QUIT`` with ``221`` and a close, enough for a client to show it talks.
"""

from __future__ import annotations

import asyncio
import contextlib

GREETING = b"220 greeter.lab.example ESMTP ppdoctor-lab\r\n"
GREETER_SERVICE = "greeter"
GREETER_NS = "default"
GREETER_SERVICE_PORT = 25  # the Service port the VirtualService's tcp route names
MAX_LINE = 1024


class Greeter:
    def __init__(self) -> None:
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self.accepted = 0

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[:2]

    async def listen(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port, limit=MAX_LINE)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._conns.add(writer)
        try:
            writer.write(GREETING)
            await writer.drain()
            while line := await reader.readline():
                if line.strip().upper() == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    await writer.drain()
                    break
                writer.write(b"250 ok\r\n")
                await writer.drain()
        except (OSError, ValueError, asyncio.LimitOverrunError):
            pass  # the peer went away or sent a line longer than MAX_LINE
        finally:
            self._conns.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._conns):
            writer.transport.abort()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()
        self._server = None


async def start_greeter(host: str, port: int = 0) -> Greeter:
    """Start the greeter (``port`` 0 picks a free one; see ``greeter.address``)."""
    greeter = Greeter()
    await greeter.listen(host, port)
    return greeter
