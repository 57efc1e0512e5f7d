"""Interop with real HAProxy: it accepts ppdoctor's headers, and ppdoctor reads the headers it sends.

(a) ``bind … accept-proxy`` in mode http answers with the source/destination HAProxy took
    from our header (``http-request return`` with an lf-string);
(b) ``server … send-proxy-v2`` (crc32c, unique-id, health checks) and ``send-proxy`` (v1)
    towards a Python server that decodes with read_header().
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pp_peers import HeaderRecorder, haproxy, http_body, http_exchange, ipv6_loopback

from ppdoctor.proxyproto import (
    TLV,
    Address,
    Command,
    Family,
    Protocol,
    ProxyHeader,
    ProxyProtocolError,
    ReadResult,
    build_v2,
    local_v2,
    parse,
    proxy_v1,
    proxy_v2,
)

pytestmark = pytest.mark.interop

IPV6 = ipv6_loopback()


def config(ports: dict[str, int]) -> str:
    accept_v6 = f"bind [::1]:{ports['accept']} accept-proxy" if IPV6 else ""
    send_v6 = f"bind [::1]:{ports['send_v2']}" if IPV6 else ""
    return f"""
global
    maxconn 256

defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s

# (a) HAProxy receives PROXY headers built by ppdoctor
frontend fe_accept
    bind 127.0.0.1:{ports["accept"]} accept-proxy
    {accept_v6}
    http-request return status 200 content-type text/plain lf-string "%[src] %[src_port] %[dst] %[dst_port]"

# (b) HAProxy sends PROXY headers to ppdoctor's read_header()
frontend fe_send_v2
    mode tcp
    bind 127.0.0.1:{ports["send_v2"]}
    {send_v6}
    unique-id-format ppd-%[src_port]
    default_backend be_v2

backend be_v2
    mode tcp
    server recorder 127.0.0.1:{ports["upstream"]} send-proxy-v2 proxy-v2-options crc32c,unique-id check inter 250ms

frontend fe_send_v1
    mode tcp
    bind 127.0.0.1:{ports["send_v1"]}
    default_backend be_v1

backend be_v1
    mode tcp
    server recorder 127.0.0.1:{ports["upstream"]} send-proxy
"""


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, int], HeaderRecorder]]:
    tmp: Path = tmp_path_factory.mktemp("haproxy")
    with HeaderRecorder() as recorder:
        with haproxy(config, ["accept", "send_v2", "send_v1"], tmp, upstream=recorder.port) as ports:
            yield ports, recorder


# --- (a) accept-proxy --------------------------------------------------------------------

SOURCES = [
    ("v1-ipv4", lambda: proxy_v1(("203.0.113.7", 51234), ("198.51.100.1", 443)), "203.0.113.7 51234 198.51.100.1 443"),
    ("v1-ipv6", lambda: proxy_v1(("2001:db8::7", 4242), ("2001:db8::1", 80)), "2001:db8::7 4242 2001:db8::1 80"),
    ("v2-ipv4", lambda: proxy_v2(("203.0.113.7", 51234), ("10.0.0.5", 443)), "203.0.113.7 51234 10.0.0.5 443"),
    ("v2-ipv4-crc", lambda: proxy_v2(("203.0.113.7", 1), ("10.0.0.5", 2), crc32c=True), "203.0.113.7 1 10.0.0.5 2"),
    (
        "v2-ipv4-crc-aws",
        lambda: proxy_v2(("203.0.113.9", 65535), ("10.0.0.5", 443), crc32c=True, vpce_id="vpce-08d2bf15fac5001c9"),
        "203.0.113.9 65535 10.0.0.5 443",
    ),
    (
        "v2-ipv6-crc-aws-authority",
        # (not port 0: HAProxy's %[src_port] renders 0 as an empty string)
        lambda: proxy_v2(("2001:db8::7", 1024), ("2001:db8::1", 8443), crc32c=True, vpce_id="vpce-1",
                         authority="shop.example.com"),
        "2001:db8::7 1024 2001:db8::1 8443",
    ),
    (
        "v2-ipv6-ssl-custom",
        lambda: proxy_v2(("2001:db8::7", 7), ("::1", 8), tlvs=[TLV(0x20, b"\x01\x00\x00\x00\x00"), TLV(0xE1, b"x")]),
        "2001:db8::7 7 ::1 8",
    ),
    (
        "v2-mixed-families",
        lambda: proxy_v2(("203.0.113.7", 5), ("2001:db8::1", 6)),
        "::ffff:203.0.113.7 5 2001:db8::1 6",
    ),
]  # fmt: skip


@pytest.mark.parametrize("name,build,expected", SOURCES, ids=[s[0] for s in SOURCES])
def test_haproxy_accepts_ppdoctor_header(peer, name: str, build, expected: str) -> None:
    ports, _ = peer
    status, body = http_body(http_exchange("127.0.0.1", ports["accept"], build()))
    assert status == 200, body
    assert body.decode() == expected


@pytest.mark.skipif(not IPV6, reason="no IPv6 loopback in this environment")
def test_haproxy_accepts_over_ipv6_socket(peer) -> None:
    ports, _ = peer
    status, body = http_body(http_exchange("::1", ports["accept"], proxy_v2(("203.0.113.7", 9), ("10.0.0.5", 443))))
    assert (status, body.decode()) == (200, "203.0.113.7 9 10.0.0.5 443")


@pytest.mark.parametrize(
    "prefix",
    [
        local_v2(crc32c=True),
        build_v2(ProxyHeader(2, Command.LOCAL, Family.INET, Protocol.STREAM, Address("198.51.100.9", 1),
                             Address("10.0.0.5", 2))),
    ],
    ids=["local", "local-with-addresses"],
)  # fmt: skip
def test_haproxy_keeps_socket_addresses(peer, prefix: bytes) -> None:
    ports, _ = peer
    status, body = http_body(http_exchange("127.0.0.1", ports["accept"], prefix))
    assert status == 200
    src, src_port, dst, dst_port = body.decode().split()
    assert (src, dst, int(dst_port)) == ("127.0.0.1", "127.0.0.1", ports["accept"])


@pytest.mark.parametrize(
    "prefix",
    [
        build_v2(ProxyHeader(2, Command.PROXY, Family.UNSPEC, Protocol.UNSPEC, None, None), crc32c=True),
        proxy_v2(("203.0.113.7", 1), ("10.0.0.5", 2), protocol=Protocol.DGRAM),
    ],
    ids=["proxy-unspec", "proxy-inet-dgram"],
)
def test_haproxy_rejects_valid_headers_it_does_not_support(peer, prefix: bytes) -> None:
    # Measured with HAProxy 2.6: the spec lets a receiver refuse these, and HAProxy does.
    ports, _ = peer
    assert parse(prefix).header.command == Command.PROXY
    assert http_exchange("127.0.0.1", ports["accept"], prefix) == b""


def test_haproxy_rejects_bad_crc(peer) -> None:
    ports, _ = peer
    good = proxy_v2(("203.0.113.7", 51234), ("10.0.0.5", 443), crc32c=True)
    bad = good[:-1] + bytes([good[-1] ^ 0x01])
    with pytest.raises(ProxyProtocolError):
        parse(bad)
    # HAProxy drops the connection without an HTTP answer, as the codec predicts.
    assert http_exchange("127.0.0.1", ports["accept"], bad) == b""


def test_haproxy_rejects_missing_header(peer) -> None:
    ports, _ = peer
    assert http_exchange("127.0.0.1", ports["accept"], b"") == b""


# --- (b) send-proxy-v2 / send-proxy --------------------------------------------------------


def tcp_roundtrip(host: str, port: int, payload: bytes) -> tuple[tuple, bytes]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect((host, port))
        local = s.getsockname()
        s.sendall(payload)
        chunks = []
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            chunks.append(chunk)
    return local, b"".join(chunks)


def from_port(port: int):
    return lambda r: isinstance(r, ReadResult) and r.header is not None and r.header.src is not None \
        and r.header.src.port == port  # fmt: skip


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_read_header_decodes_haproxy_v2(peer, host: str) -> None:
    if host == "::1" and not IPV6:
        pytest.skip("no IPv6 loopback in this environment")
    ports, recorder = peer
    local, reply = tcp_roundtrip(host, ports["send_v2"], b"ping")
    assert reply == f"HDR {local[0]} {local[1]}\n".encode() + b"ping"
    result = recorder.next_result(from_port(local[1]))
    h = result.header
    assert h.version == 2 and h.command == Command.PROXY
    assert (h.src.address, h.src.port) == (local[0], local[1])
    assert (h.dst.address, h.dst.port) == (host, ports["send_v2"])
    assert parse(result.raw).crc32c == "valid"
    unique_id = h.tlv(0x05)
    assert unique_id is not None and unique_id.value == f"ppd-{local[1]}".encode()


def test_read_header_decodes_haproxy_v1(peer) -> None:
    ports, recorder = peer
    local, reply = tcp_roundtrip("127.0.0.1", ports["send_v1"], b"hello")
    assert reply == f"HDR 127.0.0.1 {local[1]}\n".encode() + b"hello"
    result = recorder.next_result(from_port(local[1]))
    assert result.header.version == 1
    assert result.raw == f"PROXY TCP4 127.0.0.1 127.0.0.1 {local[1]} {ports['send_v1']}\r\n".encode()


def test_read_header_decodes_haproxy_health_check(peer) -> None:
    _, recorder = peer
    result = recorder.next_result(
        lambda r: isinstance(r, ReadResult) and r.header is not None and r.header.command == Command.LOCAL
    )
    # HAProxy's check connections carry a LOCAL header: byte for byte what local_v2 builds.
    assert result.raw == local_v2(crc32c=True)
    assert result.header.src is None
