"""Echo backends: the ``ppdoctor echo`` command users deploy behind an NLB, and the pods behind the lab's gateway.

Three variants answer like the images people deploy behind an Istio gateway:

* ``go-httpbin`` — like mccutchen/go-httpbin (``httpbin/handlers.go``, ``helpers.go``):
  headers as ``{Canonical-Name: [values]}``, ``origin`` = first X-Forwarded-For entry,
  else the peer address.
* ``postman-httpbin`` — like postmanlabs/httpbin (``httpbin/helpers.py``): headers as
  plain strings with X-Forwarded-For (and the other ``ENV_HEADERS``) dropped unless
  ``?show_env`` is given; ``origin`` = the whole X-Forwarded-For value, else the peer.
  Evidence read through it is inconclusive about XFF (PPD011).
* ``ppdoctor`` — PROXY-protocol aware: reads an optional/required PROXY header (v1 or v2)
  and reports the socket peer, the decoded header with its raw bytes, the client IP it
  would use and the request headers in order.

HTTP/1.1 with keep-alive is parsed by h11; header blocks are limited to 64 KiB (431) and
bodies to 1 MiB (413). The servers only report what they received: nothing in a request
changes what they do beyond choosing the endpoint.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import json
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11

from ..errors import ConfigError, LabError

VARIANTS = ("go-httpbin", "postman-httpbin", "ppdoctor")
PP_MODES = ("optional", "required", "off")
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024
PP_HEADER_TIMEOUT_S = 5.0
IDLE_TIMEOUT_S = 75.0
_READ_SIZE = 65536

# postmanlabs/httpbin httpbin/helpers.py ENV_HEADERS: removed from "headers" unless ?show_env.
POSTMAN_ENV_HEADERS = frozenset(
    h.lower()
    for h in (
        "X-Varnish", "X-Request-Start", "X-Heroku-Queue-Depth", "X-Real-Ip", "X-Forwarded-Proto",
        "X-Forwarded-Protocol", "X-Forwarded-Ssl", "X-Heroku-Queue-Wait-Time", "X-Forwarded-For",
        "X-Heroku-Dynos-In-Use", "X-Forwarded-Port", "X-Request-Id", "Via", "Total-Route-Time",
        "Connect-Time",
    )
)
# go-httpbin helpers.go getClientIP: headers some hosting platforms set, checked before XFF.
GO_HTTPBIN_CLIENT_IP_HEADERS = ("fly-client-ip", "cf-connecting-ip", "fastly-client-ip", "true-client-ip")


def variant_for_image(image: str) -> str:
    """Which echo variant behaves like a container image."""
    name = image.lower()
    if "mccutchen/go-httpbin" in name:
        return "go-httpbin"
    if "httpbin" in name:  # kennethreitz/httpbin, postmanlabs/httpbin and their forks
        return "postman-httpbin"
    if "ppdoctor" in name:
        return "ppdoctor"
    return "go-httpbin"


# --- what a request looked like ----------------------------------------------------------------

@dataclass
class Exchange:
    """One request as the echo received it, with the connection it came on."""

    peer: tuple[str, int]
    local: tuple[str, int]
    method: str
    target: str
    headers: list[tuple[str, str]]  # original names and order
    body: bytes = b""
    proxy_header: Any = None  # ppdoctor.proxyproto.ProxyHeader | None
    proxy_raw: bytes = b""

    def values(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def first(self, name: str) -> str | None:
        found = self.values(name)
        return found[0] if found else None

    @property
    def path(self) -> str:
        return urlsplit(self.target).path or "/"

    @property
    def query(self) -> str:
        return urlsplit(self.target).query

    @property
    def host(self) -> str:
        parts = urlsplit(self.target)
        return parts.netloc or self.first("host") or ""


def go_canonical_header(name: str) -> str:
    """Go's textproto.CanonicalMIMEHeaderKey for a token: ``x-forwarded-for`` → ``X-Forwarded-For``."""
    out = []
    upper = True
    for ch in name:
        out.append(ch.upper() if upper else ch.lower())
        upper = ch == "-"
    return "".join(out)


def werkzeug_header(name: str) -> str:
    """The name Flask shows for a header (WSGI ``HTTP_X_FOO`` → ``X-Foo``)."""
    return name.replace("_", "-").title()


def _args(query: str) -> dict[str, list[str]]:
    return parse_qs(query, keep_blank_values=True, separator="&")


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None


def _body_text(body: bytes, content_type: str) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return f"data:{content_type or 'application/octet-stream'};base64,{base64.b64encode(body).decode()}"


# --- variants ---------------------------------------------------------------------------------

Reply = tuple[int, list[tuple[str, str]], bytes]


def _json_reply(status: int, payload: Any, *, indent: int | None = 2, extra=()) -> Reply:
    body = json.dumps(payload, indent=indent, sort_keys=indent is not None, ensure_ascii=False) + "\n"
    headers = [("Content-Type", "application/json; charset=utf-8"), *extra]
    return status, headers, body.encode("utf-8")


def _text_reply(status: int, text: str) -> Reply:
    return status, [("Content-Type", "text/plain; charset=utf-8")], text.encode("utf-8")


def go_httpbin_origin(ex: Exchange) -> str:
    for name in GO_HTTPBIN_CLIENT_IP_HEADERS:
        value = ex.first(name)
        if value:
            return value
    xff = ex.first("x-forwarded-for")
    if xff:
        return xff.split(",", 1)[0].strip()
    return ex.peer[0]


def _go_headers(ex: Exchange) -> dict[str, list[str]]:
    # Go's server moves Host and Transfer-Encoding out of r.Header; go-httpbin puts them back.
    headers: dict[str, list[str]] = {}
    for name, value in ex.headers:
        if name.lower() in ("host", "transfer-encoding"):
            continue
        headers.setdefault(go_canonical_header(name), []).append(value)
    headers["Host"] = [ex.host]
    te = ex.values("transfer-encoding")
    if te:
        headers["Transfer-Encoding"] = [",".join(te)]
    return headers


def _go_url(ex: Exchange) -> str:
    scheme = ex.first("x-forwarded-proto") or ex.first("x-forwarded-protocol")
    if not scheme and ex.first("x-forwarded-ssl") == "on":
        scheme = "https"
    scheme = scheme or "http"  # the lab's echo pods speak plain HTTP
    query = f"?{ex.query}" if ex.query else ""
    return f"{scheme}://{ex.host}{ex.path}{query}"


def go_httpbin_reply(ex: Exchange) -> Reply:
    path = ex.path
    common = {
        "args": _args(ex.query),
        "headers": _go_headers(ex),
        "method": ex.method,
        "origin": go_httpbin_origin(ex),
        "url": _go_url(ex),
    }
    cors = [("Access-Control-Allow-Origin", "*")]
    if path == "/get":
        if ex.method not in ("GET", "HEAD"):
            return _text_reply(405, "Method Not Allowed\n")
        return _json_reply(200, common, extra=cors)
    if path == "/headers":
        return _json_reply(200, {"headers": common["headers"]}, extra=cors)
    if path == "/ip":
        if _args(ex.query).get("format") == ["text"]:
            return _text_reply(200, common["origin"] + "\n")
        return _json_reply(200, {"origin": common["origin"]}, extra=cors)
    if path == "/user-agent":
        return _json_reply(200, {"user-agent": ex.first("user-agent") or ""}, extra=cors)
    if path == "/anything" or path.startswith("/anything/"):
        if ex.method == "HEAD":
            return _json_reply(200, common, extra=cors)
        content_type = ex.first("content-type") or ""
        form: dict[str, list[str]] = {}
        if content_type.startswith("application/x-www-form-urlencoded"):
            form = _args(ex.body.decode("utf-8", "replace"))
        payload = dict(common, data=_body_text(ex.body, content_type), files={}, form=form,
                       json=_json_or_none(ex.body))
        return _json_reply(200, payload, extra=cors)
    if path == "/":
        return 200, [("Content-Type", "text/html; charset=utf-8")], b"<!DOCTYPE html><title>go-httpbin</title>\n"
    return _text_reply(404, "404 page not found\n")


def _postman_headers(ex: Exchange, show_env: bool) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in ex.headers:
        if not show_env and name.lower() in POSTMAN_ENV_HEADERS:
            continue
        key = werkzeug_header(name)
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    return headers


def postman_httpbin_origin(ex: Exchange) -> str:
    # httpbin: request.headers.get("X-Forwarded-For", request.remote_addr) — the whole value.
    values = ex.values("x-forwarded-for")
    return ",".join(values) if values else ex.peer[0]


def _semiflatten(values: dict[str, list[str]]) -> dict[str, Any]:
    return {k: v[0] if len(v) == 1 else v for k, v in values.items()}


def postman_httpbin_reply(ex: Exchange) -> Reply:
    path = ex.path
    args = _args(ex.query)
    scheme = ex.first("x-forwarded-proto") or ex.first("x-forwarded-protocol")
    if scheme is None and ex.first("x-forwarded-ssl") == "on":
        scheme = "https"
    query = f"?{ex.query}" if ex.query else ""
    base = {
        "args": _semiflatten(args),
        "headers": _postman_headers(ex, "show_env" in args),
        "origin": postman_httpbin_origin(ex),
        "url": f"{scheme or 'http'}://{ex.host}{ex.path}{query}",
    }
    extra = [("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Credentials", "true"),
             ("Server", "gunicorn/19.9.0")]
    if path == "/get":
        if ex.method not in ("GET", "HEAD", "OPTIONS"):
            return _text_reply(405, "Method Not Allowed")
        return _json_reply(200, base, extra=extra)
    if path == "/headers":
        return _json_reply(200, {"headers": base["headers"]}, extra=extra)
    if path == "/ip":
        return _json_reply(200, {"origin": base["origin"]}, extra=extra)
    if path == "/user-agent":
        return _json_reply(200, {"user-agent": ex.first("user-agent")}, extra=extra)
    if path == "/anything" or path.startswith("/anything/"):
        content_type = ex.first("content-type") or ""
        form: dict[str, Any] = {}
        if content_type.startswith("application/x-www-form-urlencoded"):
            form = _semiflatten(_args(ex.body.decode("utf-8", "replace")))
        payload = dict(base, method=ex.method, form=form, data=_body_text(ex.body, content_type),
                       files={}, json=_json_or_none(ex.body))
        return _json_reply(200, payload, extra=extra)
    if path == "/":
        return 200, [("Content-Type", "text/html; charset=utf-8")] + extra, b"<!DOCTYPE html><title>httpbin.org</title>\n"
    return 404, [("Content-Type", "text/html")] + extra, b"<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n<title>404 Not Found</title>\n"


def describe_proxy_header(header: Any, raw: bytes) -> dict[str, Any] | None:
    """A PROXY header as JSON, as the ppdoctor echo reports it."""
    if header is None:
        return None

    def addr(a: Any) -> dict[str, Any] | None:
        return None if a is None else {"address": a.address, "port": a.port}

    return {
        "version": header.version,
        "command": header.command.name,
        "family": header.family.name,
        "protocol": header.protocol.name,
        "src": addr(header.src),
        "dst": addr(header.dst),
        "tlvs": [{"type": t.type, "value_hex": bytes(t.value).hex()} for t in header.tlvs],
        "aws_vpce_id": header.aws_vpce_id,
        "raw_hex": raw.hex(),
    }


def ppdoctor_client_ip(ex: Exchange) -> tuple[str, str]:
    """(client IP, where it came from): PROXY source, else first XFF entry, else the peer."""
    header = ex.proxy_header
    if header is not None and not header.is_local and header.src is not None:
        return header.src.address, "proxy-protocol"
    xff = ex.first("x-forwarded-for")
    if xff:
        return xff.split(",", 1)[0].strip(), "x-forwarded-for"
    return ex.peer[0], "peer"


def ppdoctor_reply(ex: Exchange) -> Reply:
    client_ip, source = ppdoctor_client_ip(ex)
    payload = {
        "peer": {"address": ex.peer[0], "port": ex.peer[1]},
        "local": {"address": ex.local[0], "port": ex.local[1]},
        "proxy_header": describe_proxy_header(ex.proxy_header, ex.proxy_raw),
        "client_ip": client_ip,
        "client_ip_source": source,
        "method": ex.method,
        "path": ex.target,
        "headers": [[k, v] for k, v in ex.headers],
        "body_bytes": len(ex.body),
    }
    return _json_reply(200, payload, indent=None, extra=[("Cache-Control", "no-store")])


_REPLIES: dict[str, Callable[[Exchange], Reply]] = {
    "go-httpbin": go_httpbin_reply,
    "postman-httpbin": postman_httpbin_reply,
    "ppdoctor": ppdoctor_reply,
}


# --- the server ----------------------------------------------------------------------------------

def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


class _Reject(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class EchoServer:
    """A running echo server; ``stop()`` stops listening and ends open connections."""

    def __init__(self, variant: str, proxy_protocol: str, log: Callable[[str], None] | None) -> None:
        if variant not in VARIANTS:
            raise ConfigError(f"unknown echo variant {variant!r}", hint=f"one of: {', '.join(VARIANTS)}")
        if proxy_protocol not in PP_MODES:
            raise ConfigError(f"unknown PROXY protocol mode {proxy_protocol!r}", hint=f"one of: {', '.join(PP_MODES)}")
        self.variant = variant
        # Only ppdoctor's own echo reads PROXY headers; the httpbin images never do.
        self.proxy_protocol = proxy_protocol if variant == "ppdoctor" else "off"
        self._log = log
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.requests = 0

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[:2]

    @property
    def host(self) -> str:
        return self.address[0]

    @property
    def port(self) -> int:
        return self.address[1]

    async def listen(self, host: str, port: int) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, host, port, reuse_address=True)
        except OSError as exc:
            raise LabError(f"echo server cannot listen on {host}:{port}: {exc.strerror}",
                           hint="choose another --listen address or port") from exc

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # --- one connection --------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)
        peer = writer.get_extra_info("peername")[:2]
        local = writer.get_extra_info("sockname")[:2]
        try:
            received = await self._read_proxy_header(reader, peer)
            if received is None:
                return
            header, raw, leftover = received
            conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
            if leftover:
                conn.receive_data(leftover)
            while await self._one_request(conn, reader, writer, peer, local, header, raw):
                conn.start_next_cycle()
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_proxy_header(
        self, reader: asyncio.StreamReader, peer: tuple[str, int]
    ) -> tuple[Any, bytes, bytes] | None:
        """(header or None, its raw bytes, bytes read past it); None: close the connection."""
        if self.proxy_protocol == "off":
            return None, b"", b""
        from .. import proxyproto

        try:
            result = await proxyproto.read_header(
                reader, optional=self.proxy_protocol == "optional", timeout=PP_HEADER_TIMEOUT_S
            )
        except proxyproto.ProxyProtocolError as exc:
            # A receiver that expects PROXY protocol closes on a bad or missing header (like Envoy).
            self._note(f"{peer[0]}:{peer[1]} closed: {exc.message}")
            return None
        return result.header, result.raw, result.leftover

    async def _receive(self, conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await asyncio.wait_for(reader.read(_READ_SIZE), IDLE_TIMEOUT_S)
            conn.receive_data(data)

    async def _one_request(self, conn, reader, writer, peer, local, header, raw) -> bool:
        """Serve one request; True when the connection can carry another one."""
        try:
            event = await self._receive(conn, reader)
            if not isinstance(event, h11.Request):  # ConnectionClosed: the client is done
                return False
            # h11 bounds only what it buffers while incomplete; a block that arrived whole is checked here
            head_size = len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers.raw_items())
            if head_size > MAX_HEADER_BYTES:
                raise _Reject(431, f"request header block of {head_size} bytes is over {MAX_HEADER_BYTES}")
            length = next((v for k, v in event.headers if k == b"content-length"), None)
            if length is not None and int(length) > MAX_BODY_BYTES:
                raise _Reject(413, f"body of {int(length)} bytes is over {MAX_BODY_BYTES}")
            body = bytearray()
            while True:
                part = await self._receive(conn, reader)
                if isinstance(part, h11.Data):
                    body += part.data
                    if len(body) > MAX_BODY_BYTES:
                        raise _Reject(413, f"body is over {MAX_BODY_BYTES} bytes")
                elif isinstance(part, h11.EndOfMessage):
                    break
                else:
                    return False
        except h11.RemoteProtocolError as exc:
            await self._send_error(conn, writer, exc.error_status_hint, str(exc))
            return False
        except _Reject as exc:
            await self._send_error(conn, writer, exc.status, str(exc))
            return False

        exchange = Exchange(
            peer=peer,
            local=local,
            method=event.method.decode("ascii", "replace"),
            target=event.target.decode("utf-8", "replace"),
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers.raw_items()],
            body=bytes(body),
            proxy_header=header,
            proxy_raw=raw,
        )
        status, headers, payload = _REPLIES[self.variant](exchange)
        self.requests += 1
        self._note(f"{peer[0]}:{peer[1]} {exchange.method} {exchange.target} → {status}")
        await self._send(conn, writer, status, headers, payload, head=exchange.method == "HEAD")
        return conn.our_state is h11.DONE and conn.their_state is h11.DONE

    async def _send(self, conn, writer, status, headers, payload, *, head=False) -> None:
        all_headers = [
            *headers,
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Content-Length", str(len(payload))),
        ]
        out = conn.send(h11.Response(status_code=status, headers=all_headers, reason=_reason(status)))
        if not head and payload:
            out += conn.send(h11.Data(data=payload))
        out += conn.send(h11.EndOfMessage())
        writer.write(out)
        await writer.drain()

    async def _send_error(self, conn, writer, status: int, reason: str) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = f"{status} {reason}\n".encode("utf-8", "replace")
        try:
            out = conn.send(h11.Response(status_code=status, reason=_reason(status), headers=[
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Connection", "close"),
            ]))
            out += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            return
        writer.write(out)
        with contextlib.suppress(ConnectionError):
            await writer.drain()

    def _note(self, line: str) -> None:
        if self._log is not None:
            self._log(line)


async def start_echo(
    host: str,
    port: int,
    variant: str = "go-httpbin",
    *,
    proxy_protocol: str = "optional",
    log: Callable[[str], None] | None = None,
) -> EchoServer:
    """Start an echo server (``port`` 0 picks a free one; see ``server.port``)."""
    server = EchoServer(variant, proxy_protocol, log)
    await server.listen(host, port)
    return server


# --- `ppdoctor echo` -------------------------------------------------------------------------------

def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT``."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--listen {text!r} is not HOST:PORT", hint="for example 127.0.0.1:8080 or [::1]:8080")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def run_cli(args: Any) -> int:
    """``ppdoctor echo``: serve ppdoctor's PP-aware echo until Ctrl-C."""
    host, port = parse_listen(args.listen)
    mode = args.proxy_protocol

    async def main() -> None:
        server = await start_echo(host, port, "ppdoctor", proxy_protocol=mode,
                                  log=lambda line: print(line, flush=True))
        shown = f"[{server.host}]" if ":" in server.host else server.host
        print(f"ppdoctor echo listening on http://{shown}:{server.port} (PROXY protocol: {mode}); Ctrl-C stops",
              flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await server.stop()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:  # signal handlers could not be installed
        pass
    print("ppdoctor echo stopped", file=sys.stderr, flush=True)
    return 0
