"""One HTTP exchange over a raw TCP connection, with an optional PROXY header first.

Everything is bounded: connect, first byte and total deadlines; response headers are
parsed by h11 with a size cap (endless headers end as ``protocol-error``); only the first
4 KiB received are kept as evidence and at most ``max_body`` bytes of the body are read
(a 10 MB body costs no more memory than that). The way the exchange ends is classified
into the closed set of failure classes.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import h11

from .model import FailureClass, failure_for_status
from .tcpinfo import METHOD_CLOCK, METHOD_KERNEL, METHOD_RX_STAMP, enable_rx_timestamps, kernel_rtt_ms, peek_rx_time_ns

KEEP_BYTES = 4096


@dataclass
class Exchange:
    sent: bytes = b""
    received: bytes = b""  # the first KEEP_BYTES bytes received
    received_total: int = 0
    failure_class: FailureClass = FailureClass.OK
    status: int | None = None
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    body_truncated: bool = False
    detail: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)
    local: tuple[str, int] | None = None
    timing_method: str = ""  # how "connect" was measured (tcpinfo.METHOD_KERNEL / METHOD_CLOCK)
    response_method: str = ""  # how "response" (request sent → first byte back) was measured

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return None

    def evidence(self) -> dict[str, Any]:
        ev: dict[str, Any] = {
            "sent_hex": self.sent.hex(),
            "received_first_bytes": self.received.decode("latin-1"),
            "received_total_bytes": self.received_total,
        }
        if self.local:
            ev["local_address"] = f"{self.local[0]}:{self.local[1]}"
        if self.timing_method:
            ev["connect_timing_method"] = self.timing_method
        if self.response_method:
            ev["response_timing_method"] = self.response_method
        if self.status is not None:
            ev["response"] = {"status": self.status, "reason": self.reason, "headers": [list(h) for h in self.headers]}
            if self.body_truncated:
                ev["response"]["body_truncated"] = True
        if self.detail:
            ev["detail"] = self.detail
        return ev


def build_request(host: str, path: str, headers: list[tuple[str, str]] | None = None) -> bytes:
    conn = h11.Connection(our_role=h11.CLIENT)
    hdrs = [("Host", host), ("User-Agent", "ppdoctor"), ("Accept", "*/*"), ("Connection", "close")]
    hdrs += headers or []
    data = conn.send(h11.Request(method="GET", target=path, headers=hdrs))
    data += conn.send(h11.EndOfMessage())
    return data


async def http_exchange(
    host: str,
    port: int,
    *,
    path: str = "/",
    host_header: str | None = None,
    prefix: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
    send_request: bool = True,
    source: str | None = None,
    connect_timeout: float = 3.0,
    total_timeout: float = 5.0,
    max_header_bytes: int = 64 * 1024,
    max_body: int = 256 * 1024,
    tls: "ssl.SSLContext | None" = None,
    server_hostname: str | None = None,
) -> Exchange:
    """Connect (from ``source``), send ``prefix`` + a GET, read one response; never raises for network trouble."""
    ex = Exchange()
    request = build_request(host_header or f"{host}:{port}", path, headers) if send_request else b""
    ex.sent = prefix + request
    t0 = time.perf_counter()

    def ms() -> float:
        return (time.perf_counter() - t0) * 1000

    try:
        tls_args = {"ssl": tls, "server_hostname": server_hostname or ""} if tls is not None else {}
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=(source, 0) if source else None, limit=65536, **tls_args),
            connect_timeout,
        )
    except asyncio.TimeoutError:
        ex.failure_class, ex.detail = FailureClass.TIMEOUT_CONNECT, f"no TCP handshake within {connect_timeout:g} s"
        ex.timings_ms["total"] = ms()
        return ex
    except socket.gaierror as exc:
        ex.failure_class, ex.detail = FailureClass.DNS_ERROR, f"cannot resolve {host}: {exc.strerror}"
        ex.timings_ms["total"] = ms()
        return ex
    except ConnectionRefusedError:
        ex.failure_class, ex.detail = FailureClass.REFUSED, "connection refused (RST to SYN)"
        ex.timings_ms["total"] = ms()
        return ex
    except ssl.SSLError as exc:
        ex.failure_class, ex.detail = FailureClass.TLS_ERROR, f"TLS handshake failed: {exc.reason or exc}"
        ex.timings_ms["total"] = ms()
        return ex
    except ConnectionResetError:
        # The handshake completed and the peer reset at once (an NLB whose target refused it), before
        # the connect call returned: a reset, not a timeout.
        ex.failure_class, ex.detail = FailureClass.RESET, "connection reset right after the handshake"
        ex.timings_ms["total"] = ms()
        return ex
    except OSError as exc:
        ex.failure_class = FailureClass.REFUSED if exc.errno in (errno.ECONNREFUSED,) else FailureClass.TIMEOUT_CONNECT
        ex.detail = f"connect failed: {exc.strerror or exc}"
        ex.timings_ms["total"] = ms()
        return ex
    ex.timings_ms["connect_clock"] = ms()
    # The handshake as the kernel measured it (TCP_INFO rtt), not inflated by other probes on the loop.
    kernel = kernel_rtt_ms(writer.get_extra_info("socket"))
    ex.timings_ms["connect"] = kernel if kernel is not None else ex.timings_ms["connect_clock"]
    ex.timing_method = METHOD_KERNEL if kernel is not None else METHOD_CLOCK
    sockname = writer.get_extra_info("sockname")
    if sockname:
        ex.local = (sockname[0], sockname[1])
    parser = h11.Connection(our_role=h11.CLIENT, max_incomplete_event_size=max_header_bytes)
    # h11 reads a response only after a request; prime it even when none is sent.
    parser.send(h11.Request(method="GET", target=path, headers=[("Host", host_header or f"{host}:{port}")]))
    parser.send(h11.EndOfMessage())
    body = bytearray()
    deadline = time.monotonic() + total_timeout
    # Plain TCP only: over TLS the first record back may be a session ticket, not the response.
    sock = writer.get_extra_info("socket")
    stamped = tls is None and ex.sent != b"" and enable_rx_timestamps(sock)
    try:
        if stamped:
            writer.transport.pause_reading()  # the first byte stays queued for the kernel-stamped peek
        sent_ns, sent_clock = time.time_ns(), ms()
        writer.write(ex.sent)
        await asyncio.wait_for(writer.drain(), max(0.01, deadline - time.monotonic()))
        if stamped:
            received_ns = await _kernel_first_byte(sock.fileno(), deadline)
            writer.transport.resume_reading()
            if received_ns is not None and received_ns >= sent_ns:
                ex.timings_ms["response"] = (received_ns - sent_ns) / 1e6
                ex.response_method = METHOD_RX_STAMP
        done = False
        while not done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise asyncio.TimeoutError
            chunk = await asyncio.wait_for(reader.read(65536), remaining)
            if chunk:
                if ex.received_total == 0:
                    ex.timings_ms["first_byte"] = ms()
                    if "response" not in ex.timings_ms:
                        ex.timings_ms["response"] = ex.timings_ms["first_byte"] - sent_clock
                        ex.response_method = METHOD_CLOCK
                if len(ex.received) < KEEP_BYTES:
                    ex.received += chunk[: KEEP_BYTES - len(ex.received)]
                ex.received_total += len(chunk)
            elif ex.status is None:
                # EOF before a status line: nothing (empty reply) or a fragment (not HTTP)
                ex.failure_class = FailureClass.EMPTY_REPLY if ex.received_total == 0 else FailureClass.PROTOCOL_ERROR
                ex.detail = ("connection closed without a byte" if ex.received_total == 0
                             else "connection closed before a complete status line and headers")
                break
            parser.receive_data(chunk)
            while True:
                event = parser.next_event()
                if event is h11.NEED_DATA:
                    if not chunk:
                        # EOF before a complete response
                        if ex.status is None:
                            ex.failure_class = (
                                FailureClass.EMPTY_REPLY if ex.received_total == 0 else FailureClass.PROTOCOL_ERROR
                            )
                            ex.detail = "connection closed without a byte" if ex.received_total == 0 else "connection closed mid-response"
                        done = True
                    break
                if isinstance(event, h11.Response):
                    ex.status, ex.reason = event.status_code, event.reason.decode("latin-1")
                    ex.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers]
                    ex.failure_class = failure_for_status(event.status_code)
                elif isinstance(event, h11.InformationalResponse):
                    continue
                elif isinstance(event, h11.Data):
                    room = max_body - len(body)
                    body += event.data[:room]
                    if len(event.data) > room:
                        ex.body_truncated = True
                        ex.detail = f"body larger than {max_body} bytes: stopped reading"
                        done = True
                        break
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    done = True
                    break
    except asyncio.TimeoutError:
        if ex.status is None:
            ex.failure_class = FailureClass.TIMEOUT_RESPONSE
            got = f"{ex.received_total} bytes" if ex.received_total else "nothing"
            ex.detail = f"no complete response within {total_timeout:g} s (received {got})"
        else:
            ex.body_truncated = True
            ex.detail = f"body still arriving after {total_timeout:g} s: stopped reading"
    except h11.RemoteProtocolError as exc:
        ex.failure_class = FailureClass.PROTOCOL_ERROR
        ex.detail = f"not a valid HTTP response: {exc}"
    except (ConnectionResetError, BrokenPipeError) as exc:
        if ex.status is None:
            ex.failure_class = FailureClass.RESET if ex.received_total == 0 else FailureClass.PROTOCOL_ERROR
            ex.detail = f"connection reset by peer ({type(exc).__name__})"
    except OSError as exc:
        if ex.status is None:
            ex.failure_class = FailureClass.RESET
            ex.detail = f"connection failed: {exc.strerror or exc}"
    finally:
        ex.body = bytes(body)
        ex.timings_ms["total"] = ms()
        writer.transport.abort()
    if ex.failure_class == FailureClass.PROTOCOL_ERROR and looks_like_tls(ex.received):
        ex.failure_class = FailureClass.TLS_ERROR
        ex.detail = (f"the peer answered with a TLS record (content type 0x{ex.received[0]:02x}), not HTTP: "
                     "this port expects TLS")
    return ex


async def _kernel_first_byte(fd: int, deadline: float) -> int | None:
    """The kernel's receive stamp of the first byte on the paused transport's socket ``fd``: a duplicate
    of the descriptor (the transport owns ``fd`` in the loop's selector) waits for readability on the
    same loop, then tcpinfo.peek_rx_time_ns reads the stamp without taking the byte."""
    import os

    loop = asyncio.get_running_loop()
    try:
        dup = socket.socket(fileno=os.dup(fd))
    except OSError:
        return None
    try:
        dup.setblocking(False)
        ready = loop.create_future()
        loop.add_reader(dup.fileno(), lambda: ready.done() or ready.set_result(None))
        try:
            await asyncio.wait_for(ready, max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            return None
        finally:
            loop.remove_reader(dup.fileno())
        return peek_rx_time_ns(dup)
    except (OSError, NotImplementedError):
        return None
    finally:
        dup.close()


def looks_like_tls(data: bytes) -> bool:
    """A TLS record header: content type change_cipher_spec/alert/handshake/application_data, version 3.x."""
    return len(data) >= 3 and data[0] in (0x14, 0x15, 0x16, 0x17) and data[1] == 0x03 and data[2] <= 0x04
