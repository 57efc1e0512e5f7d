"""The echo backends: go-httpbin / postmanlabs-httpbin look-alikes and ppdoctor's PP-aware echo."""

from __future__ import annotations

import asyncio
import json

import pytest
import pytest_asyncio

from ppdoctor import proxyproto
from ppdoctor.errors import ConfigError
from ppdoctor.lab.addresses import CLIENT_IP, ECHO_POD_IP, TEST_NET_SOURCE
from ppdoctor.echo.server import (
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    go_canonical_header,
    start_echo,
    variant_for_image,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def echoes():
    servers = {
        "go-httpbin": await start_echo(ECHO_POD_IP, 0, "go-httpbin"),
        "postman-httpbin": await start_echo(ECHO_POD_IP, 0, "postman-httpbin"),
        "optional": await start_echo(ECHO_POD_IP, 0, "ppdoctor", proxy_protocol="optional"),
        "required": await start_echo(ECHO_POD_IP, 0, "ppdoctor", proxy_protocol="required"),
        "off": await start_echo(ECHO_POD_IP, 0, "ppdoctor", proxy_protocol="off"),
    }
    yield servers
    for server in servers.values():
        await server.stop()


async def send(server, payload: bytes, *, timeout: float = 5.0) -> bytes:
    """Send everything, read until the server closes."""
    reader, writer = await asyncio.open_connection(server.host, server.port, local_addr=(CLIENT_IP, 0))
    try:
        writer.write(payload)
        await writer.drain()
        async with asyncio.timeout(timeout):
            return await reader.read(-1)
    finally:
        writer.close()


def request(path: str = "/get", *, method: str = "GET", headers: str = "", body: bytes = b"", close: bool = True) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: echo.lab\r\n{headers}"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    if close:
        head += "Connection: close\r\n"
    return (head + "\r\n").encode() + body


def split(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def json_of(response: bytes):
    status, headers, body = split(response)
    assert status == 200, response[:300]
    assert headers["content-type"] == "application/json; charset=utf-8"
    return json.loads(body)


@pytest.mark.parametrize(
    "image,variant",
    [
        ("mccutchen/go-httpbin:v2.15.0", "go-httpbin"),
        ("docker.io/mccutchen/go-httpbin", "go-httpbin"),
        ("ghcr.io/mccutchen/go-httpbin:2", "go-httpbin"),
        ("kennethreitz/httpbin", "postman-httpbin"),
        ("docker.io/postmanlabs/httpbin:latest", "postman-httpbin"),
        ("ghcr.io/example/ppdoctor-echo:0.1", "ppdoctor"),
        ("nginx:1.27", "go-httpbin"),
    ],
)
async def test_variant_for_image(image, variant):
    assert variant_for_image(image) == variant


@pytest.mark.parametrize(
    "name,canonical",
    [("x-forwarded-for", "X-Forwarded-For"), ("X-ENVOY-EXTERNAL-ADDRESS", "X-Envoy-External-Address"),
     ("x_under", "X_under"), ("content-md5", "Content-Md5"), ("x-b3-traceid", "X-B3-Traceid")],
)
async def test_go_canonical_header(name, canonical):
    assert go_canonical_header(name) == canonical


# --- go-httpbin --------------------------------------------------------------------------------

async def test_go_httpbin_get(echoes):
    extra = "x-forwarded-for: 203.0.113.7, 10.0.0.1\r\nX-Forwarded-For: 198.51.100.1\r\nx-custom: a\r\nX-Custom: b\r\nX-Forwarded-Proto: https\r\n"
    body = json_of(await send(echoes["go-httpbin"], request("/get?a=1&a=2&b=", headers=extra)))
    assert set(body) == {"args", "headers", "method", "origin", "url"}
    assert body["args"] == {"a": ["1", "2"], "b": [""]}
    assert body["method"] == "GET"
    assert body["origin"] == "203.0.113.7"
    assert body["url"] == "https://echo.lab/get?a=1&a=2&b="
    headers = body["headers"]
    assert headers["X-Forwarded-For"] == ["203.0.113.7, 10.0.0.1", "198.51.100.1"]
    assert headers["X-Custom"] == ["a", "b"]
    assert headers["Host"] == ["echo.lab"]


async def test_go_httpbin_origin_without_xff_is_the_peer_and_platform_headers_win(echoes):
    assert json_of(await send(echoes["go-httpbin"], request("/ip"))) == {"origin": CLIENT_IP}
    cdn = "CF-Connecting-IP: 192.0.2.44\r\nX-Forwarded-For: 203.0.113.7\r\n"
    assert json_of(await send(echoes["go-httpbin"], request("/ip", headers=cdn))) == {"origin": "192.0.2.44"}
    status, _, text = split(await send(echoes["go-httpbin"], request("/ip?format=text")))
    assert (status, text) == (200, f"{CLIENT_IP}\n".encode())


async def test_go_httpbin_headers_and_anything(echoes):
    body = json_of(await send(echoes["go-httpbin"], request("/headers", headers="X-Envoy-External-Address: 1.2.3.4\r\n")))
    assert set(body) == {"headers"} and body["headers"]["X-Envoy-External-Address"] == ["1.2.3.4"]
    anything = json_of(await send(echoes["go-httpbin"], request(
        "/anything/x?q=1", method="POST", headers="Content-Type: application/json\r\n", body=b'{"k": [1, 2]}'
    )))
    assert anything["method"] == "POST" and anything["json"] == {"k": [1, 2]}
    assert anything["data"] == '{"k": [1, 2]}' and anything["args"] == {"q": ["1"]}
    assert anything["headers"]["Content-Length"] == ["13"]


async def test_go_httpbin_other_paths_and_methods(echoes):
    assert split(await send(echoes["go-httpbin"], request("/nope")))[0] == 404
    assert split(await send(echoes["go-httpbin"], request("/get", method="POST", body=b"x")))[0] == 405
    status, headers, body = split(await send(echoes["go-httpbin"], request("/get", method="HEAD")))
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0


# --- postmanlabs/httpbin --------------------------------------------------------------------------

async def test_postman_httpbin_drops_xff_and_other_env_headers(echoes):
    extra = "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: http\r\nX-Request-Id: r1\r\nX-Envoy-External-Address: 203.0.113.7\r\nx-b3-traceid: t\r\n"
    body = json_of(await send(echoes["postman-httpbin"], request("/get?a=1&a=2&b=3", headers=extra)))
    assert set(body) == {"args", "headers", "origin", "url"}
    assert body["args"] == {"a": ["1", "2"], "b": "3"}
    assert body["origin"] == "203.0.113.7"
    assert body["headers"] == {
        "Host": "echo.lab",
        "X-Envoy-External-Address": "203.0.113.7",
        "X-B3-Traceid": "t",
        "Connection": "close",
    }
    assert body["url"] == "http://echo.lab/get?a=1&a=2&b=3"


async def test_postman_httpbin_show_env_and_origin(echoes):
    body = json_of(await send(echoes["postman-httpbin"], request("/headers?show_env=1", headers="X-Forwarded-For: 1.1.1.1, 2.2.2.2\r\n")))
    assert body["headers"]["X-Forwarded-For"] == "1.1.1.1, 2.2.2.2"
    assert json_of(await send(echoes["postman-httpbin"], request("/ip", headers="X-Forwarded-For: 1.1.1.1, 2.2.2.2\r\n"))) == {
        "origin": "1.1.1.1, 2.2.2.2"
    }
    assert json_of(await send(echoes["postman-httpbin"], request("/ip"))) == {"origin": CLIENT_IP}


# --- ppdoctor echo --------------------------------------------------------------------------------

async def test_ppdoctor_echo_reports_a_ppv2_header_and_uses_its_source(echoes):
    server = echoes["optional"]
    header = proxyproto.proxy_v2((TEST_NET_SOURCE, 4242), (ECHO_POD_IP, server.port), vpce_id="vpce-0abc")
    body = json_of(await send(server, header + request("/where?x=1", headers="X-Forwarded-For: 6.6.6.6\r\n")))
    assert body["client_ip"] == TEST_NET_SOURCE and body["client_ip_source"] == "proxy-protocol"
    assert body["peer"]["address"] == CLIENT_IP
    pp = body["proxy_header"]
    assert pp["version"] == 2 and pp["command"] == "PROXY" and pp["family"] == "INET"
    assert pp["src"] == {"address": TEST_NET_SOURCE, "port": 4242}
    assert pp["aws_vpce_id"] == "vpce-0abc"
    assert pp["tlvs"] == [{"type": 0xEA, "value_hex": (b"\x01vpce-0abc").hex()}]
    assert bytes.fromhex(pp["raw_hex"]) == header
    assert body["method"] == "GET" and body["path"] == "/where?x=1"
    assert body["headers"] == [["Host", "echo.lab"], ["X-Forwarded-For", "6.6.6.6"], ["Connection", "close"]]


async def test_ppdoctor_echo_v1_and_local(echoes):
    server = echoes["required"]
    v1 = json_of(await send(server, proxyproto.proxy_v1(("198.51.100.9", 5555), (ECHO_POD_IP, server.port)) + request()))
    assert v1["proxy_header"]["version"] == 1 and v1["client_ip"] == "198.51.100.9"
    local = json_of(await send(server, proxyproto.local_v2() + request()))
    assert local["proxy_header"]["command"] == "LOCAL"
    assert (local["client_ip"], local["client_ip_source"]) == (CLIENT_IP, "peer")


async def test_ppdoctor_echo_optional_without_header_uses_xff_then_peer(echoes):
    server = echoes["optional"]
    with_xff = json_of(await send(server, request(headers="X-Forwarded-For: 192.0.2.1, 10.0.0.1\r\n")))
    assert with_xff["proxy_header"] is None
    assert (with_xff["client_ip"], with_xff["client_ip_source"]) == ("192.0.2.1", "x-forwarded-for")
    bare = json_of(await send(server, request()))
    assert (bare["client_ip"], bare["client_ip_source"]) == (CLIENT_IP, "peer")


async def test_ppdoctor_echo_required_closes_without_a_header(echoes):
    assert await send(echoes["required"], request()) == b""


async def test_ppdoctor_echo_off_answers_a_pp_header_with_400(echoes):
    server = echoes["off"]
    response = await send(server, proxyproto.proxy_v2((TEST_NET_SOURCE, 1), (ECHO_POD_IP, server.port)) + request())
    assert split(response)[0] == 400


async def test_keep_alive_serves_several_requests_after_one_proxy_header(echoes):
    server = echoes["optional"]
    reader, writer = await asyncio.open_connection(server.host, server.port, local_addr=(CLIENT_IP, 0))
    writer.write(proxyproto.proxy_v2((TEST_NET_SOURCE, 7), (ECHO_POD_IP, server.port)) + request("/one", close=False))
    seen = []
    for path in ("/two", None):
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(split(head)[1]["content-length"])
        seen.append(json.loads(await reader.readexactly(length)))
        if path:
            writer.write(request(path, close=False))
    writer.close()
    assert [s["path"] for s in seen] == ["/one", "/two"]
    assert all(s["client_ip"] == TEST_NET_SOURCE for s in seen)


@pytest.mark.parametrize("size", [MAX_HEADER_BYTES + 10, 3 * MAX_HEADER_BYTES])
async def test_oversized_header_block_is_431(echoes, size):
    big = "X-Big: " + "a" * size + "\r\n"
    assert split(await send(echoes["go-httpbin"], request(headers=big)))[0] == 431


async def test_oversized_body_is_413(echoes):
    declared = f"Content-Length: {MAX_BODY_BYTES + 1}\r\n"
    response = await send(echoes["go-httpbin"], b"POST /anything HTTP/1.1\r\nHost: e\r\n" + declared.encode() + b"\r\n")
    assert split(response)[0] == 413
    chunk = b"%x\r\n%s\r\n" % (MAX_BODY_BYTES // 2 + 1, b"x" * (MAX_BODY_BYTES // 2 + 1))
    chunked = b"POST /anything HTTP/1.1\r\nHost: e\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 2 + b"0\r\n\r\n"
    assert split(await send(echoes["go-httpbin"], chunked))[0] == 413


async def test_garbage_is_400(echoes):
    assert split(await send(echoes["postman-httpbin"], b"\x16\x03\x01\x00\x05hello\r\n\r\n"))[0] == 400


async def test_stop_ends_idle_keep_alive_connections():
    server = await start_echo(ECHO_POD_IP, 0, "ppdoctor")
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(request(close=False))
    head = await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(int(split(head)[1]["content-length"]))
    async with asyncio.timeout(5):
        await server.stop()
        assert await reader.read(-1) == b""
    writer.close()


async def test_unknown_variant_and_mode_are_config_errors():
    with pytest.raises(ConfigError):
        await start_echo(ECHO_POD_IP, 0, "nginx")
    with pytest.raises(ConfigError):
        await start_echo(ECHO_POD_IP, 0, "ppdoctor", proxy_protocol="maybe")
