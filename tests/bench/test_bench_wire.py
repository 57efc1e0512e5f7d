"""The response parser and the failure classes."""

from __future__ import annotations

import errno

import pytest

from ppdoctor.bench import wire
from ppdoctor.bench.wire import ProtocolError, ResponseParser

ENVOY = (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n"
         b"date: Thu, 26 Nov 2026 23:36:59 GMT\r\nserver: istio-envoy\r\n\r\nok")


def feed_bytewise(parser: ResponseParser, data: bytes) -> bool:
    done = False
    for i in range(len(data)):
        assert not done, "completed before the last byte"
        done = parser.feed(data[i:i + 1])
    return done


def test_envoy_direct_response_whole_and_bytewise():
    p = ResponseParser(keep_body=True)
    assert p.feed(ENVOY) and p.status == 200 and p.keep_alive and bytes(p.body) == b"ok"
    p = ResponseParser(keep_body=True)
    assert feed_bytewise(p, ENVOY) and bytes(p.body) == b"ok"


def test_chunked_close_delimited_bodiless_and_interim():
    p = ResponseParser(keep_body=True)
    assert feed_bytewise(p, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"2;x=y\r\nok\r\n3\r\n!!!\r\n0\r\nTrailer: t\r\n\r\n")
    assert bytes(p.body) == b"ok!!!"
    p = ResponseParser(keep_body=True)
    assert not p.feed(b"HTTP/1.0 200 OK\r\n\r\nhello")
    assert p.needs_eof and p.eof() and not p.keep_alive and bytes(p.body) == b"hello"
    p = ResponseParser()
    assert p.feed(b"HTTP/1.1 204 No Content\r\n\r\n") and p.status == 204
    p = ResponseParser()
    assert p.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    assert p.status == 404 and not p.keep_alive


@pytest.mark.parametrize("data", [b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 2x0 OK\r\n\r\n", b"\x00\x01garbage",
                                  b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"])
def test_not_http_is_a_protocol_error(data):
    with pytest.raises(ProtocolError):
        ResponseParser().feed(data)


def test_status_and_exception_classes():
    assert [wire.status_class(s) for s in (200, 302, 400, 404, 500, 503)] == \
        ["ok", "ok", "http-4xx", "http-4xx", "http-5xx", "http-5xx"]
    c = wire.classify_exception
    assert c(None, connecting=False, got_bytes=False) == wire.EMPTY_REPLY
    assert c(None, connecting=False, got_bytes=True) == wire.PROTOCOL_ERROR
    assert c(ConnectionResetError(), connecting=False, got_bytes=True) == wire.RESET
    assert c(ConnectionRefusedError(), connecting=True, got_bytes=False) == wire.REFUSED
    assert c(TimeoutError(), connecting=True, got_bytes=False) == wire.TIMEOUT_CONNECT
    assert c(OSError(errno.ECONNRESET, "x"), connecting=False, got_bytes=False) == wire.RESET
    assert c(OSError(errno.EADDRNOTAVAIL, "x"), connecting=True, got_bytes=False) == wire.OTHER
    assert wire.CLASSES[:9] == ("ok", "http-4xx", "http-5xx", "empty-reply", "reset", "timeout-connect",
                                "timeout-response", "refused", "protocol-error")


def test_request_bytes():
    assert wire.build_request("/bench", "lab") == (
        b"GET /bench HTTP/1.1\r\nHost: lab\r\nUser-Agent: ppdoctor-bench\r\nAccept: */*\r\n\r\n")
    assert b"Connection: close\r\n" in wire.build_request("/", "h", close=True)
