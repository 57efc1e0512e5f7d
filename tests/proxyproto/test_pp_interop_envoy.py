"""Interop with real Envoy: the proxy_protocol listener filter + HCM ``use_remote_address: true``.

A Python echo upstream returns the headers Envoy forwarded: with ppdoctor's header in
front of the request, X-Forwarded-For (and X-Envoy-External-Address) carry its source.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pp_peers import echo_upstream, envoy, http_body, http_exchange

from ppdoctor.proxyproto import (
    Address,
    Command,
    Family,
    Protocol,
    ProxyHeader,
    build_v2,
    local_v2,
    parse,
    proxy_v1,
    proxy_v2,
)

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def envoy_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    tmp: Path = tmp_path_factory.mktemp("envoy")
    with echo_upstream() as upstream_port, envoy(upstream_port, tmp) as port:
        yield port


def forwarded(port: int, prefix: bytes) -> dict[str, str]:
    status, body = http_body(http_exchange("127.0.0.1", port, prefix, path="/headers"))
    assert status == 200, body
    return json.loads(body)["headers"]


CASES = [
    ("v2-ipv4", lambda: proxy_v2(("203.0.113.7", 51234), ("10.0.0.5", 443)), "203.0.113.7"),
    (
        "v2-ipv4-crc-aws",
        lambda: proxy_v2(("203.0.113.7", 51234), ("10.0.0.5", 443), crc32c=True, vpce_id="vpce-08d2bf15fac5001c9"),
        "203.0.113.7",
    ),
    (
        "v2-ipv6-crc-authority",
        lambda: proxy_v2(("2001:db8::7", 4242), ("2001:db8::1", 443), crc32c=True, authority="shop.example.com"),
        "2001:db8::7",
    ),
    ("v1-ipv4", lambda: proxy_v1(("198.51.100.23", 1), ("10.0.0.5", 80)), "198.51.100.23"),
    ("v1-ipv6", lambda: proxy_v1(("2001:db8::23", 1), ("2001:db8::1", 80)), "2001:db8::23"),
]  # fmt: skip


@pytest.mark.parametrize("name,build,source", CASES, ids=[c[0] for c in CASES])
def test_envoy_uses_ppdoctor_source(envoy_port: int, name: str, build, source: str) -> None:
    headers = forwarded(envoy_port, build())
    assert headers["x-forwarded-for"] == source
    assert headers["x-envoy-external-address"] == source


@pytest.mark.parametrize(
    "prefix",
    [
        local_v2(),
        local_v2(crc32c=True, tlvs=[(0xE1, b"x")]),
        build_v2(ProxyHeader(2, Command.LOCAL, Family.INET, Protocol.STREAM, Address("198.51.100.9", 1),
                             Address("10.0.0.5", 2))),
    ],
    ids=["local", "local-crc-tlv", "local-with-addresses"],
)  # fmt: skip
def test_envoy_local_keeps_socket_address(envoy_port: int, prefix: bytes) -> None:
    # Envoy replaces a loopback peer by the host's own address in XFF, so compare with a
    # PROXY header whose source is the same loopback address the socket has.
    baseline = forwarded(envoy_port, proxy_v2(("127.0.0.1", 1), ("127.0.0.1", 2)))["x-forwarded-for"]
    assert forwarded(envoy_port, prefix)["x-forwarded-for"] == baseline
    assert baseline != "198.51.100.9"


@pytest.mark.parametrize(
    "prefix",
    [
        build_v2(ProxyHeader(2, Command.PROXY, Family.UNSPEC, Protocol.UNSPEC, None, None)),
        proxy_v2(("203.0.113.7", 1), ("10.0.0.5", 2), protocol=Protocol.UNSPEC),
        proxy_v2("/run/client.sock", "/run/envoy.sock"),
    ],
    ids=["proxy-unspec", "proxy-inet-unspec-protocol", "proxy-unix"],
)
def test_envoy_rejects_valid_headers_it_does_not_support(envoy_port: int, prefix: bytes) -> None:
    # Measured with Envoy 1.40: valid per the spec (the codec decodes them), but Envoy
    # closes the connection without a reply.
    assert parse(prefix).header.command == Command.PROXY
    assert http_exchange("127.0.0.1", envoy_port, prefix) == b""


def test_envoy_accepts_dgram_and_ignores_crc(envoy_port: int) -> None:
    # Measured with Envoy 1.40 (HAProxy 2.6 rejects both): INET + DGRAM is taken as is,
    # and a wrong CRC32C is not checked.
    dgram = proxy_v2(("203.0.113.7", 1), ("10.0.0.5", 2), protocol=Protocol.DGRAM)
    assert forwarded(envoy_port, dgram)["x-forwarded-for"] == "203.0.113.7"
    good = proxy_v2(("203.0.113.8", 1), ("10.0.0.5", 2), crc32c=True)
    bad = good[:-1] + bytes([good[-1] ^ 0x01])
    assert parse(bad, verify_crc=False).crc32c == "invalid"
    assert forwarded(envoy_port, bad)["x-forwarded-for"] == "203.0.113.8"


def test_envoy_closes_plain_request_without_reply(envoy_port: int) -> None:
    # KNOWLEDGE.md, measured: a PP listener closes a plain request without a byte (PPD004's symptom).
    assert http_exchange("127.0.0.1", envoy_port, b"") == b""
