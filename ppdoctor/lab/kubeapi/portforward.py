"""``pods/portforward`` over WebSocket, the way the kubelet streams it.

Protocol (``v4.channel.k8s.io``; ``channel.k8s.io`` and the ``base64`` variants too): every
frame starts with a channel byte. For the i-th requested port, channel ``2*i`` carries data
and ``2*i+1`` errors. The server first sends on both channels a frame with the port number
(2 bytes, little endian); after that, bytes the client sends on the data channel go to a TCP
connection to the pod's port and bytes from the pod come back on it. A failure to connect
is reported as text on the error channel. When the pod side closes, the stream ends: with
one port the WebSocket is closed (the client's socket sees EOF); with several ports an empty
error frame closes that port on the client (the official client closes its socket on any
error-channel frame) and the WebSocket is closed once every port is done.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

log = logging.getLogger("ppdoctor.lab.kubeapi.portforward")

PROTOCOLS = (
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
    "portforward.k8s.io",
    "v4.channel",
)

Resolver = Callable[[str, str, int], tuple[str, int] | None | Awaitable[tuple[str, int] | None]]

CONNECT_TIMEOUT = 5.0
READ_CHUNK = 64 * 1024


def parse_ports(values: list[str]) -> list[int]:
    ports: list[int] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                port = int(part)
            except ValueError:
                raise ValueError(f"unable to parse {part!r} as a port: invalid syntax") from None
            if not 0 < port < 65536:
                raise ValueError(f"port {port} must be > 0 and < 65536")
            ports.append(port)
    if not ports:
        raise ValueError("at least one port must be specified")
    return ports


@dataclass
class _Port:
    index: int
    port: int
    writer: asyncio.StreamWriter | None = None
    pump: asyncio.Task[Any] | None = None
    done: bool = False

    @property
    def data_ch(self) -> int:
        return 2 * self.index

    @property
    def error_ch(self) -> int:
        return 2 * self.index + 1


@dataclass(eq=False)
class PortForwardSession:
    namespace: str
    pod: str
    uid: str
    ws: web.WebSocketResponse
    ports: list[_Port]
    b64: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    closed: bool = False

    async def send(self, channel: int, payload: bytes) -> None:
        if self.ws.closed:
            return
        async with self.lock:
            if self.ws.closed:
                return
            try:
                if self.b64:
                    await self.ws.send_str(chr(ord("0") + channel) + base64.b64encode(payload).decode())
                else:
                    await self.ws.send_bytes(bytes((channel,)) + payload)
            except (ConnectionError, RuntimeError):
                pass

    def error_text(self, port: int, why: str, *, dial: bool = True) -> str:
        sandbox = (self.uid.replace("-", "") * 2)[:64]
        if not dial:  # the resolver refused: no dial happened
            return f"error forwarding port {port} to pod {sandbox}, uid : {why}"
        return (
            f"error forwarding port {port} to pod {sandbox}, uid : failed to execute portforward in "
            f'network namespace "/var/run/netns/cni-{self.uid}": failed to connect to localhost:{port} '
            f'inside namespace "{sandbox}", IPv4: dial tcp4 127.0.0.1:{port}: {why} '
            f"IPv6 dial tcp6 [::1]:{port}: {why}"
        )

    async def port_finished(self, p: _Port) -> None:
        if p.done:
            return
        p.done = True
        if p.writer is not None:
            _close_writer(p.writer)
        if all(x.done for x in self.ports):
            await self.close()
        else:
            await self.send(p.error_ch, b"")

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for p in self.ports:
            p.done = True
            if p.writer is not None:
                _close_writer(p.writer)
        if not self.ws.closed:
            try:
                await self.ws.close()
            except (ConnectionError, RuntimeError, OSError) as exc:  # pragma: no cover - peer gone
                log.debug("portforward: closing the WebSocket failed: %s", exc)


def _close_writer(writer: asyncio.StreamWriter) -> None:
    try:
        writer.close()
    except (ConnectionError, RuntimeError, OSError) as exc:  # pragma: no cover
        log.debug("portforward: closing the pod connection failed: %s", exc)


async def _resolve(resolver: Resolver, namespace: str, pod: str, port: int) -> tuple[str, int] | None:
    res = resolver(namespace, pod, port)
    if inspect.isawaitable(res):
        res = await res
    return res  # type: ignore[return-value]


def _why(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connect: connection refused"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "i/o timeout"
    if isinstance(exc, OSError) and exc.strerror:
        return f"connect: {exc.strerror.lower()}"
    return str(exc) or type(exc).__name__


async def serve_portforward(
    request: web.Request,
    *,
    namespace: str,
    pod: dict[str, Any],
    ports: list[int],
    resolver: Resolver,
    sessions: set[PortForwardSession],
) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(
        protocols=PROTOCOLS, autoping=True, compress=False, timeout=3.0, max_msg_size=16 * 1024 * 1024
    )
    await ws.prepare(request)
    meta = pod.get("metadata") or {}
    session = PortForwardSession(
        namespace=namespace,
        pod=meta.get("name", ""),
        uid=meta.get("uid", ""),
        ws=ws,
        ports=[_Port(i, p) for i, p in enumerate(ports)],
        b64="base64" in (ws.ws_protocol or ""),
    )
    sessions.add(session)
    try:
        for p in session.ports:
            prefix = p.port.to_bytes(2, "little")
            await session.send(p.data_ch, prefix)
            await session.send(p.error_ch, prefix)
        for p in session.ports:
            await _connect(session, p, resolver)
        if not session.closed:
            await _client_loop(session)
    except Exception:  # the upgrade is done: no HTTP error can be sent any more
        log.exception("portforward %s/%s failed", namespace, session.pod)
    finally:
        for p in session.ports:
            # a pump that finished its port may be closing the WebSocket: let it finish
            if p.pump is not None and not p.pump.done() and not p.done:
                p.pump.cancel()
        await session.close()
        pumps = [p.pump for p in session.ports if p.pump is not None]
        if pumps:
            await asyncio.gather(*pumps, return_exceptions=True)
        sessions.discard(session)
    return ws


async def _connect(session: PortForwardSession, p: _Port, resolver: Resolver) -> None:
    try:
        target = await _resolve(resolver, session.namespace, session.pod, p.port)
        if target is None:
            raise ConnectionRefusedError("connection refused")
        host, tport = target
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, tport), CONNECT_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - any resolver/connect failure goes to the error channel
        dialled = isinstance(exc, (OSError, asyncio.TimeoutError, TimeoutError))
        msg = session.error_text(p.port, _why(exc), dial=dialled)
        log.debug("portforward %s/%s:%s failed: %s", session.namespace, session.pod, p.port, msg)
        await session.send(p.error_ch, msg.encode())
        p.done = True
        if all(x.done for x in session.ports):
            await session.close()
        return
    p.writer = writer
    p.pump = asyncio.get_running_loop().create_task(_pump(session, p, reader))


async def _pump(session: PortForwardSession, p: _Port, reader: asyncio.StreamReader) -> None:
    """Pod → client."""
    try:
        while True:
            data = await reader.read(READ_CHUNK)
            if not data:
                break
            await session.send(p.data_ch, data)
    except (ConnectionError, OSError):
        pass
    await session.port_finished(p)


async def _client_loop(session: PortForwardSession) -> None:
    """Client → pod."""
    ws = session.ws
    by_channel = {p.data_ch: p for p in session.ports}
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            data: bytes = msg.data
        elif msg.type == WSMsgType.TEXT and session.b64:
            text: str = msg.data
            if not text:
                continue
            data = bytes((ord(text[0]) - ord("0"),)) + base64.b64decode(text[1:])
        else:
            if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                break
            continue
        if not data:
            continue
        p = by_channel.get(data[0])
        if p is None or p.done or p.writer is None:
            continue
        payload = data[1:]
        if not payload:
            continue
        try:
            p.writer.write(payload)
            await p.writer.drain()
        except (ConnectionError, OSError):
            await session.port_finished(p)
