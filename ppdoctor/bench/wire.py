"""HTTP/1.1 on the wire for the bench: the request bytes, an incremental response parser, failure classes.

The parser is deliberately small and fast (one ``find`` for the end of the head, one pass
over a handful of header lines): the bench spends its CPU budget on *timing*, and the
bodies it reads are Envoy's two-byte ``ok``. It still handles what a real gateway can send:
``content-length``, ``transfer-encoding: chunked``, a body delimited by the connection
closing, ``1xx`` interim responses, bodiless statuses (204/304) and ``connection: close``.
Anything else that is not HTTP/1.x is a ``protocol-error``.
"""

from __future__ import annotations

import errno

# Failure classes, in report order. "ok" = a complete response with a status below 400.
OK = "ok"
HTTP_4XX = "http-4xx"
HTTP_5XX = "http-5xx"
EMPTY_REPLY = "empty-reply"  # the peer closed (FIN) before sending one byte of a response
RESET = "reset"  # the connection was reset (RST) or broke mid-response
TIMEOUT_CONNECT = "timeout-connect"
TIMEOUT_RESPONSE = "timeout-response"
REFUSED = "refused"  # the connect was answered with RST (nothing listening)
PROTOCOL_ERROR = "protocol-error"  # bytes that are not an HTTP/1.x response, or a truncated one
OTHER = "other"  # any other socket error (e.g. no free ephemeral port); shown only when non-zero

CLASSES = (OK, HTTP_4XX, HTTP_5XX, EMPTY_REPLY, RESET, TIMEOUT_CONNECT, TIMEOUT_RESPONSE, REFUSED, PROTOCOL_ERROR, OTHER)
ERROR_CLASSES = CLASSES[1:]

MAX_HEAD = 64 * 1024


def status_class(status: int) -> str:
    if status >= 500:
        return HTTP_5XX
    if status >= 400:
        return HTTP_4XX
    return OK


def classify_exception(exc: BaseException | None, *, connecting: bool, got_bytes: bool) -> str:
    """The failure class of a socket error (``exc`` from connect or ``connection_lost``)."""
    if exc is None:
        return PROTOCOL_ERROR if got_bytes else EMPTY_REPLY
    if isinstance(exc, ConnectionRefusedError):
        return REFUSED
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return RESET
    if isinstance(exc, TimeoutError):
        return TIMEOUT_CONNECT if connecting else TIMEOUT_RESPONSE
    if isinstance(exc, OSError):
        if exc.errno == errno.ECONNREFUSED:
            return REFUSED
        if exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
            return RESET
        if exc.errno == errno.ETIMEDOUT:
            return TIMEOUT_CONNECT if connecting else TIMEOUT_RESPONSE
    return OTHER


def build_request(path: str, host: str, *, close: bool = False) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "User-Agent: ppdoctor-bench", "Accept: */*"]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class ProtocolError(Exception):
    pass


class ResponseParser:
    """Feed bytes; ``feed`` returns True once one complete response is in.

    After completion: ``status``, ``keep_alive`` and ``body`` (only when ``keep_body``).
    ``needs_eof`` means the body runs until the peer closes (call ``eof()`` then).
    """

    __slots__ = ("buf", "status", "keep_alive", "body", "keep_body", "_head_done", "_length", "_chunked",
                 "_until_eof", "_body_len", "_chunk_left", "_trailers")

    def __init__(self, keep_body: bool = False) -> None:
        self.keep_body = keep_body
        self.reset()

    def reset(self) -> None:
        self.buf = bytearray()
        self.status = 0
        self.keep_alive = True
        self.body = bytearray()
        self._head_done = False
        self._length = -1
        self._chunked = False
        self._until_eof = False
        self._body_len = 0
        self._chunk_left = -1  # -1: expecting a chunk-size line
        self._trailers = False

    @property
    def needs_eof(self) -> bool:
        return self._head_done and self._until_eof

    def feed(self, data: bytes) -> bool:
        buf = self.buf
        buf += data
        while not self._head_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise ProtocolError("response head larger than 64 KiB")
                if len(buf) >= 5 and not buf.startswith(b"HTTP/"):
                    raise ProtocolError(f"not an HTTP response: {bytes(buf[:16])!r}")
                return False
            self._parse_head(bytes(buf[:end]))
            del buf[: end + 4]
            if 100 <= self.status < 200 and self.status != 101:
                self.status = 0  # interim response: the real one follows
                continue
            self._head_done = True
        return self._body()

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        status_line = lines[0]
        if not status_line.startswith(b"HTTP/1.") or len(status_line) < 12 or status_line[8:9] != b" ":
            raise ProtocolError(f"bad status line: {status_line[:40]!r}")
        try:
            self.status = int(status_line[9:12])
        except ValueError:
            raise ProtocolError(f"bad status code: {status_line[:40]!r}") from None
        http10 = status_line[5:8] == b"1.0"
        self.keep_alive = not http10
        length = -1
        chunked = False
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise ProtocolError(f"bad header line: {line[:40]!r}")
            name = name.strip().lower()
            if name == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    raise ProtocolError("bad content-length") from None
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                tokens = value.lower()
                if b"close" in tokens:
                    self.keep_alive = False
                elif b"keep-alive" in tokens:
                    self.keep_alive = True
        self._chunked = chunked
        if self.status in (204, 304) or self.status < 200:
            self._length = 0
        elif chunked:
            self._length = -1
        elif length >= 0:
            self._length = length
        else:
            self._until_eof = True
            self.keep_alive = False

    def _take(self, n: int) -> None:
        if self.keep_body:
            self.body += self.buf[:n]
        del self.buf[:n]

    def _body(self) -> bool:
        buf = self.buf
        if self._until_eof:
            self._take(len(buf))
            return False
        if not self._chunked:
            if len(buf) >= self._length:
                self._take(self._length)
                return True
            return False
        while True:
            if self._trailers:
                end = buf.find(b"\r\n")
                if end < 0:
                    return False
                del buf[: end + 2]
                if end == 0:
                    return True
                continue
            if self._chunk_left < 0:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > 1024:
                        raise ProtocolError("chunk size line too long")
                    return False
                size_text = bytes(buf[:end]).split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
                del buf[: end + 2]
                if size == 0:
                    self._trailers = True
                    continue
                self._chunk_left = size
            if len(buf) < self._chunk_left + 2:
                return False
            self._take(self._chunk_left)
            if buf[:2] != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")
            del buf[:2]
            self._chunk_left = -1

    def eof(self) -> bool:
        """The peer closed: True when that completes a close-delimited response."""
        return self._head_done and self._until_eof

    @property
    def started(self) -> bool:
        return self._head_done or bool(self.buf)
