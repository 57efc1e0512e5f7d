"""Helpers for the lab AWS tests: scenario specs, loopback targets that record who connected
and what PROXY header came, and a whole lab (moto world + targets + NLB emulator)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ppdoctor.lab import addresses
from ppdoctor.lab.aws import AwsWorld, MotoServer
from ppdoctor.lab.nlb import NlbEmulator
from ppdoctor.lab.scenario import AwsSpec, HealthCheckSpec, TargetGroupSpec
from ppdoctor.proxyproto import ProxyHeader, ProxyProtocolError, parse, read_header

LBC_TAGS = {
    "elbv2.k8s.aws/cluster": "lab",
    "service.k8s.aws/stack": "istio-system/istio-ingressgateway",
    "service.k8s.aws/resource": "istio-system/istio-ingressgateway:80",
}


def make_spec(
    *,
    attributes: dict[str, str] | None = None,
    hc_protocol: str = "TCP",
    hc_port: str = "traffic-port",
    hc_path: str | None = None,
    route: str = "nat",
    target_type: str = "ip",
    tags: dict[str, str] | None = None,
    thresholds: int = 2,
) -> AwsSpec:
    return AwsSpec(
        private_default_route=route,
        target_group=TargetGroupSpec(
            target_type=target_type,
            attributes=dict(attributes or {}),
            tags=dict(LBC_TAGS if tags is None else tags),
            health_check=HealthCheckSpec(
                protocol=hc_protocol,
                port=hc_port,
                path=hc_path if hc_path is not None else (None if hc_protocol == "TCP" else "/healthz/ready"),
                healthy_threshold=thresholds,
                unhealthy_threshold=thresholds,
            ),
        ),
    )


# --- loopback targets -------------------------------------------------------------------

@dataclass
class Seen:
    peer: tuple[str, int]
    header: ProxyHeader | None = None
    raw_header: bytes = b""
    payload: bytes = b""


Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter, Seen], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader, leftover: bytes) -> bytes:
    data = leftover
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, TimeoutError):
        async with asyncio.timeout(2):
            while b"\r\n\r\n" not in data:
                chunk = await reader.read(4096)
                if not chunk:
                    break
                data += chunk
    return data


def http_response(status: str, body: str) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n\r\n{body}"
    ).encode()


async def echo_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
    """A PP-tolerant echo: answers 200 with the address it believes is the client's."""
    seen.payload = await read_request(reader, seen.payload)
    if not seen.payload:
        return  # a TCP health check: connect, maybe a LOCAL header, close
    client = seen.header.src if seen.header is not None and not seen.header.is_local else None
    shown = f"{client.address}:{client.port}" if client else f"{seen.peer[0]}:{seen.peer[1]}"
    writer.write(http_response("200 OK", shown))
    await writer.drain()


async def no_pp_listener(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
    """Like Envoy's :15021 (no PP filter): a PROXY header makes the request a 400."""
    seen.payload = await read_request(reader, seen.payload)
    if seen.header is not None:
        writer.write(http_response("400 Bad Request", "PROXY header on a plain HTTP listener"))
    else:
        writer.write(http_response("200 OK", "ready"))
    await writer.drain()


class LoopbackTarget:
    """A TCP server on a lab address that records each connection's peer and PROXY header."""

    def __init__(self, host: str, behaviour: Behaviour = echo_http) -> None:
        self.host = host
        self.behaviour = behaviour
        self.seen: list[Seen] = []
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> "LoopbackTarget":
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def requests(self) -> list[Seen]:
        """Connections that carried application bytes (not health checks)."""
        return [s for s in self.seen if s.payload]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        seen = Seen(peer=writer.get_extra_info("peername")[:2])
        self.seen.append(seen)
        try:
            result = await read_header(reader, optional=True, timeout=2)
            seen.header, seen.raw_header, seen.payload = result.header, result.raw, result.leftover
            await self.behaviour(reader, writer, seen)
        except Exception:
            pass  # a peer that resets or goes silent is part of what these tests do
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._tasks.discard(task)


class TlsTarget:
    """A TLS server behind a PROXY header, like Envoy's HTTPS listener with the PP filter.

    The header is read straight off the socket, exactly, so that no byte of the ClientHello
    ends up in a stream buffer where the TLS layer would never see it.
    """

    def __init__(self, host: str, ctx: ssl.SSLContext) -> None:
        self.host = host
        self.ctx = ctx
        self.seen: list[Seen] = []
        self.errors: list[BaseException] = []
        self._sock: socket.socket | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> "TlsTarget":
        sock = socket.socket()
        sock.bind((self.host, 0))
        sock.listen()
        sock.setblocking(False)
        self._sock = sock
        self._spawn(self._accept_loop())
        return self

    @property
    def port(self) -> int:
        assert self._sock is not None
        return self._sock.getsockname()[1]

    def requests(self) -> list[Seen]:
        return [s for s in self.seen if s.payload]

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._sock is not None:
            self._sock.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._sock is not None
        while True:
            conn, peer = await loop.sock_accept(self._sock)
            self._spawn(self._handle(conn, peer[:2]))

    async def _handle(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        seen = Seen(peer=peer)
        self.seen.append(seen)
        writer: asyncio.StreamWriter | None = None
        try:
            head = await _recv_exact(conn, 16)
            body = await _recv_exact(conn, int.from_bytes(head[14:16], "big"))
            seen.raw_header = head + body
            seen.header = parse(seen.raw_header).header
            reader = asyncio.StreamReader()
            protocol = asyncio.StreamReaderProtocol(reader)
            transport, _ = await loop.connect_accepted_socket(lambda: protocol, conn, ssl=self.ctx)
            writer = asyncio.StreamWriter(transport, protocol, reader, loop)
            seen.payload = await read_request(reader, b"")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except (OSError, ssl.SSLError, ProxyProtocolError) as exc:
            self.errors.append(exc)
        finally:
            if writer is not None:
                writer.close()
            else:
                conn.close()


async def _recv_exact(conn: socket.socket, n: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < n:
        chunk = await loop.sock_recv(conn, n - len(data))
        if not chunk:
            raise ConnectionError(f"peer closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def reset_socket(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# --- a whole lab: moto world + targets + emulator ---------------------------------------------

@dataclass
class Lab:
    moto: MotoServer
    world: AwsWorld
    nlb: NlbEmulator
    gateway: LoopbackTarget | TlsTarget
    status: LoopbackTarget
    elbv2: Any = field(repr=False)
    ec2: Any = field(repr=False)

    async def elb(self, method: str, **kwargs: Any) -> Any:
        """A boto3 elbv2 call off the event loop (the emulator shares this loop)."""
        return await asyncio.to_thread(getattr(self.elbv2, method), **kwargs)

    async def health(self) -> dict[str, Any]:
        descriptions = (await self.elb("describe_target_health", TargetGroupArn=self.world.tg_arn))[
            "TargetHealthDescriptions"
        ]
        assert len(descriptions) == 1
        return descriptions[0]["TargetHealth"]

    async def wait_health(self, state: str, timeout: float = 5.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            health = await self.health()
            if health["State"] == state:
                return health
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"target health stayed {health}, expected {state}")
            await asyncio.sleep(0.05)


async def http_get(
    address: tuple[str, int], *, source: str = addresses.CLIENT_IP, timeout: float = 3.0
) -> tuple[bytes, tuple[str, int]]:
    """GET / through the NLB from ``source``; returns (everything read until EOF, own address)."""
    reader, writer = await asyncio.open_connection(*address, local_addr=(source, 0))
    own = writer.get_extra_info("sockname")[:2]
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(timeout):
            return await reader.read(-1), own
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
