"""read_header(): the receiving side of PROXY protocol on an asyncio stream."""

from __future__ import annotations

import asyncio

import pytest

from ppdoctor.proxyproto import (
    Address,
    Command,
    IncompleteHeader,
    InvalidHeader,
    ProxyProtocolError,
    ReadResult,
    local_v2,
    proxy_v1,
    proxy_v2,
    read_header,
)

REQUEST = b"GET /ip HTTP/1.1\r\nHost: echo\r\n\r\n"
V2 = proxy_v2(("203.0.113.7", 51234), ("10.0.0.5", 443), crc32c=True, vpce_id="vpce-0123")
V1 = proxy_v1(("2001:db8::7", 4242), ("2001:db8::1", 80))


def stream(data: bytes = b"", *, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    if data:
        reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


async def test_v2_with_request_after_it() -> None:
    reader = stream(V2 + REQUEST)
    result = await read_header(reader)
    assert isinstance(result, ReadResult)
    assert result.header is not None and result.header.src == Address("203.0.113.7", 51234)
    assert result.header.aws_vpce_id == "vpce-0123"
    assert result.raw == V2
    # v2 is read exactly: the request is still in the stream, not in leftover.
    assert result.leftover + await reader.read() == REQUEST
    assert result.leftover == b""


async def test_v1_leftover_is_preserved() -> None:
    reader = stream(V1 + REQUEST)
    result = await read_header(reader)
    assert result.header is not None and result.header.version == 1
    assert result.header.src == Address("2001:db8::7", 4242)
    assert result.raw == V1
    assert result.leftover + await reader.read() == REQUEST


async def test_local_header() -> None:
    result = await read_header(stream(local_v2(crc32c=True)))
    assert result.header is not None and result.header.command == Command.LOCAL


async def test_optional_without_header_returns_the_request() -> None:
    reader = stream(REQUEST)
    result = await read_header(reader, optional=True)
    assert result.header is None and result.raw == b""
    assert result.leftover + await reader.read() == REQUEST
    assert result.leftover  # some of it was read to decide


async def test_optional_request_that_starts_like_a_signature() -> None:
    reader = stream(b"PROXY? no: POST / HTTP/1.1\r\n\r\n")
    result = await read_header(reader, optional=True)
    assert result.header is None
    assert result.leftover + await reader.read() == b"PROXY? no: POST / HTTP/1.1\r\n\r\n"
    reader = stream(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n")
    result = await read_header(reader, optional=True)
    assert result.header is None
    assert result.leftover + await reader.read() == b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"


async def test_optional_with_header_still_decodes_it() -> None:
    result = await read_header(stream(V2 + REQUEST), optional=True)
    assert result.header is not None and result.header.src == Address("203.0.113.7", 51234)


async def test_optional_peer_closes_without_data() -> None:
    result = await read_header(stream(), optional=True)
    assert result == ReadResult(None, b"", b"")


async def test_required_without_header_is_not_present() -> None:
    with pytest.raises(InvalidHeader) as info:
        await read_header(stream(REQUEST))
    assert info.value.kind == "not-present"
    assert "GET /ip" in info.value.message
    with pytest.raises(InvalidHeader) as info:
        await read_header(stream())
    assert info.value.kind == "not-present"


async def test_invalid_header_is_reported_in_both_modes() -> None:
    bad = bytearray(V2)
    bad[-1] ^= 0xFF  # last byte of the AWS TLV: CRC mismatch
    for optional in (False, True):
        with pytest.raises(InvalidHeader) as info:
            await read_header(stream(bytes(bad)), optional=optional)
        assert info.value.kind == "crc-mismatch"


async def test_slow_drip() -> None:
    reader = asyncio.StreamReader()

    async def drip(data: bytes) -> None:
        for i in range(len(data)):
            reader.feed_data(data[i : i + 1])
            await asyncio.sleep(0)
        reader.feed_eof()

    for data in (V2, V1):
        reader = asyncio.StreamReader()
        task = asyncio.create_task(drip(data + REQUEST))
        result = await read_header(reader, timeout=5)
        assert result.raw == data
        assert result.leftover + await reader.read() == REQUEST
        await task


async def test_deadline() -> None:
    reader = stream(V2[:20], eof=False)  # the rest never comes
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(InvalidHeader) as info:
        await read_header(reader, timeout=0.2)
    assert info.value.kind == "timeout"
    assert 0.15 < loop.time() - start < 2
    assert "byte(s)" in info.value.message
    with pytest.raises(InvalidHeader) as info:
        await read_header(stream(eof=False), optional=True, timeout=0.05)
    assert info.value.kind == "timeout"


async def test_size_cap() -> None:
    big = proxy_v2(("1.2.3.4", 1), ("5.6.7.8", 2), tlvs=[(0xE0, b"x" * 5000)])
    with pytest.raises(InvalidHeader) as info:
        await read_header(stream(big[:16], eof=False), max_size=1024, timeout=1)
    assert info.value.kind == "header-too-large"  # decided from the length field, without waiting
    result = await read_header(stream(big), max_size=len(big))
    assert result.raw == big


async def test_v1_without_crlf() -> None:
    with pytest.raises(InvalidHeader) as info:
        await read_header(stream(b"PROXY TCP4 " + b"1" * 200))
    assert info.value.kind == "v1-no-crlf"


async def test_peer_closes_mid_header() -> None:
    with pytest.raises(IncompleteHeader) as info:
        await read_header(stream(V2[:30]))
    assert info.value.needed == len(V2) - 30
    assert isinstance(info.value, ProxyProtocolError)


async def test_over_a_real_socket() -> None:
    results: list[ReadResult] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        result = await read_header(reader, timeout=2)
        results.append(result)
        body = result.leftover + await reader.readexactly(len(REQUEST) - len(result.leftover))
        writer.write(body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        for header in (V2, V1):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(header)
            await writer.drain()
            await asyncio.sleep(0.01)  # header and request in separate segments
            writer.write(REQUEST)
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 2) == REQUEST
            writer.close()
    finally:
        server.close()
        await server.wait_closed()
    assert [r.raw for r in results] == [V2, V1]


async def test_peer_reset_is_a_codec_error() -> None:
    reader = stream(V2[:20], eof=False)
    task = asyncio.create_task(read_header(reader))
    for _ in range(100):  # until read_header has taken the fixed part and waits for the rest
        if len(reader._buffer) <= 4:
            break
        await asyncio.sleep(0)
    reader.set_exception(ConnectionResetError("reset by peer"))
    with pytest.raises(IncompleteHeader) as info:
        await task
    assert "reset" in info.value.message
    reader = asyncio.StreamReader()
    reader.set_exception(ConnectionResetError())
    with pytest.raises(InvalidHeader) as info:
        await read_header(reader)
    assert info.value.kind == "not-present"
    reader = asyncio.StreamReader()
    reader.set_exception(ConnectionResetError())
    assert (await read_header(reader, optional=True)).header is None
