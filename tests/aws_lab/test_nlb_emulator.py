"""The lab NLB against real sockets on loopback and a real moto over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import ssl
import threading

import pytest

from ppdoctor.lab import addresses
from ppdoctor.lab.aws import AwsClients, read_live_state, seed_aws
from ppdoctor.lab.nlb import NlbEmulator, codes_match, return_path
from ppdoctor.proxyproto import Command

from .support import Seen, TlsTarget, http_get, make_spec, read_request, reset_socket


async def _poll(predicate, timeout: float, what: str):
    """Wait for ``predicate()`` (plain or async) to be true, failing after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.05)


# --- forwarding ---------------------------------------------------------------------------

async def test_forwards_from_the_nlb_address_without_header(make_lab) -> None:
    lab = await make_lab()
    assert lab.nlb.address[0] == addresses.NLB_IP
    body, own = await http_get(lab.nlb.address)
    assert own[0] == addresses.CLIENT_IP
    assert body.startswith(b"HTTP/1.1 200 OK")
    (seen,) = lab.gateway.requests()
    assert seen.peer[0] == addresses.NLB_IP  # source NAT: the client's address is gone
    assert seen.header is None
    assert seen.payload.startswith(b"GET / HTTP/1.1\r\n")
    assert body.endswith(f"{addresses.NLB_IP}:{seen.peer[1]}".encode())
    stats = lab.nlb.stats
    assert (stats.connections, stats.forwarded, stats.pp_headers_sent, stats.blackholed) == (1, 1, 0, 0)


async def test_proxy_protocol_header_carries_the_client(make_lab) -> None:
    lab = await make_lab(make_spec(attributes={"proxy_protocol_v2.enabled": "true"}))
    body, own = await http_get(lab.nlb.address)
    (seen,) = lab.gateway.requests()
    assert seen.peer[0] == addresses.NLB_IP
    assert seen.header is not None and seen.header.version == 2 and seen.header.command == Command.PROXY
    assert (seen.header.src.address, seen.header.src.port) == own == (addresses.CLIENT_IP, own[1])
    assert (seen.header.dst.address, seen.header.dst.port) == lab.nlb.address
    assert seen.header.tlvs == ()
    assert seen.payload.startswith(b"GET / HTTP/1.1\r\n")  # the client's first byte right after it
    assert body.endswith(f"{addresses.CLIENT_IP}:{own[1]}".encode())
    assert lab.nlb.stats.pp_headers_sent == 1


async def test_privatelink_clients_get_the_vpce_tlv(make_lab) -> None:
    lab = await make_lab(make_spec(attributes={"proxy_protocol_v2.enabled": "true"}), vpc_endpoint_id="vpce-0a1b2c3d4e5f")
    await http_get(lab.nlb.address)
    lab.nlb.set_vpc_endpoint_id(None)
    await http_get(lab.nlb.address)
    first, second = lab.gateway.requests()
    assert first.header.aws_vpce_id == "vpce-0a1b2c3d4e5f"
    assert second.header.aws_vpce_id is None


async def test_client_sent_headers_are_forwarded_untouched(make_lab) -> None:
    from ppdoctor.proxyproto import proxy_v2

    lab = await make_lab(make_spec(attributes={"proxy_protocol_v2.enabled": "true"}))
    forged = proxy_v2((addresses.TEST_NET_SOURCE, 1234), ("198.51.100.1", 80))
    reader, writer = await asyncio.open_connection(*lab.nlb.address, local_addr=(addresses.CLIENT_IP, 0))
    writer.write(forged + b"GET / HTTP/1.1\r\n\r\n")
    await writer.drain()
    await asyncio.wait_for(reader.read(-1), 3)
    writer.close()
    (seen,) = lab.gateway.requests()
    assert seen.header.src.address == addresses.CLIENT_IP  # the NLB's own header comes first
    assert seen.payload.startswith(forged)


async def test_enabling_proxy_protocol_through_boto3_takes_effect_within_2s(make_lab) -> None:
    lab = await make_lab(poll_interval=0.5)
    await http_get(lab.nlb.address)
    assert lab.gateway.requests()[-1].header is None
    await lab.elb(
        "modify_target_group_attributes",
        TargetGroupArn=lab.world.tg_arn,
        Attributes=[{"Key": "proxy_protocol_v2.enabled", "Value": "true"}],
    )

    async def header_arrives() -> bool:
        await http_get(lab.nlb.address)
        return lab.gateway.requests()[-1].header is not None

    await _poll(header_arrives, 2.0, "a PROXY header after enabling proxy_protocol_v2")
    assert lab.nlb.state is not None and lab.nlb.state.pp_v2


# --- client IP preservation -----------------------------------------------------------------

async def _expect_silence(address: tuple[str, int], source: str) -> None:
    reader, writer = await asyncio.open_connection(*address, local_addr=(source, 0))
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n")
        await writer.drain()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.0):
                await reader.read(1)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def test_preserve_with_nat_route_is_a_black_hole(make_lab) -> None:
    lab = await make_lab(make_spec(attributes={"preserve_client_ip.enabled": "true"}, route="nat"))
    await _expect_silence(lab.nlb.address, addresses.CLIENT_IP)
    assert lab.gateway.requests() == []
    stats = lab.nlb.stats
    assert (stats.connections, stats.blackholed, stats.forwarded) == (1, 1, 0)
    await _poll(lambda: lab.nlb.stats.blackholed_active == 0, 2, "the black-holed flow ending with the client")


async def test_black_hole_is_reset_at_the_idle_cap(make_lab) -> None:
    lab = await make_lab(make_spec(attributes={"preserve_client_ip.enabled": "true"}), idle_timeout=0.3)
    reader, writer = await asyncio.open_connection(*lab.nlb.address, local_addr=(addresses.CLIENT_IP, 0))
    writer.write(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(ConnectionResetError):
        async with asyncio.timeout(2):
            await reader.read(1)
    writer.close()
    assert lab.nlb.stats.blackholed_active == 0


async def test_preserve_with_igw_route_shows_the_client_as_peer(make_lab) -> None:
    lab = await make_lab(make_spec(attributes={"preserve_client_ip.enabled": "true"}, route="igw"))
    body, own = await http_get(lab.nlb.address)
    (seen,) = lab.gateway.requests()
    assert seen.peer[0] == addresses.CLIENT_IP
    assert seen.header is None
    assert body.startswith(b"HTTP/1.1 200 OK")


async def test_hairpin_client_inside_the_vpc_is_a_black_hole(make_lab) -> None:
    lab = await make_lab(make_spec(attributes={"preserve_client_ip.enabled": "true"}, route="igw"))
    await _expect_silence(lab.nlb.address, addresses.VPC_CLIENT_IP)
    assert lab.nlb.stats.blackholed == 1
    # the same NLB still serves a client outside the VPC
    body, _ = await http_get(lab.nlb.address)
    assert body.startswith(b"HTTP/1.1 200 OK")


async def test_default_preservation_for_instance_targets(make_lab) -> None:
    # instance targets preserve the client IP unless told otherwise; NAT route → black hole
    lab = await make_lab(make_spec(target_type="instance", tags={}))
    assert lab.nlb.state.preserve_client_ip and not lab.nlb.state.preserve_client_ip_explicit
    await _expect_silence(lab.nlb.address, addresses.CLIENT_IP)
    assert lab.nlb.stats.blackholed == 1


def test_return_path_rules(moto) -> None:
    world = seed_aws(moto.endpoint_url, make_spec(), target_ip=addresses.GATEWAY_POD_IP, port_map={8080: 1, 15021: 2})
    clients = AwsClients.connect(moto.endpoint_url)
    state = read_live_state(clients, world)
    assert return_path(state, addresses.CLIENT_IP, world.vpc_cidr) == "nlb"
    assert return_path(state, addresses.VPC_CLIENT_IP, world.vpc_cidr) == "nlb"
    clients.elbv2.modify_target_group_attributes(
        TargetGroupArn=world.tg_arn, Attributes=[{"Key": "preserve_client_ip.enabled", "Value": "true"}]
    )
    state = read_live_state(clients, world)
    assert return_path(state, addresses.CLIENT_IP, world.vpc_cidr) == "blackhole"
    clients.ec2.delete_route(RouteTableId=world.private_route_table_id, DestinationCidrBlock="0.0.0.0/0")
    state = read_live_state(clients, world)
    assert state.private_default_route == "none"
    assert return_path(state, addresses.CLIENT_IP, world.vpc_cidr) == "blackhole"


# --- TCP semantics --------------------------------------------------------------------------

async def test_half_close_propagates_both_ways(make_lab) -> None:
    async def answer_after_eof(reader, writer, seen: Seen) -> None:
        rest = await reader.read(-1)  # until the client's FIN arrives here
        seen.payload += rest
        writer.write(b"got " + str(len(seen.payload)).encode())
        await writer.drain()

    lab = await make_lab(gateway=answer_after_eof)
    reader, writer = await asyncio.open_connection(*lab.nlb.address, local_addr=(addresses.CLIENT_IP, 0))
    writer.write(b"x" * 100_000)
    writer.write_eof()
    reply = await asyncio.wait_for(reader.read(-1), 3)
    writer.close()
    assert reply == b"got 100000"


async def test_target_reset_reaches_the_client_as_reset(make_lab) -> None:
    async def reset_after_request(reader, writer, seen: Seen) -> None:
        seen.payload = await read_request(reader, seen.payload)
        reset_socket(writer)

    lab = await make_lab(gateway=reset_after_request)
    with pytest.raises(ConnectionResetError):
        await http_get(lab.nlb.address)
    assert lab.nlb.stats.resets_to_client == 1


async def test_target_connect_failure_resets_the_client(make_lab) -> None:
    lab = await make_lab()
    await lab.gateway.stop()  # nothing listens on the target port any more
    with pytest.raises(ConnectionResetError):
        await http_get(lab.nlb.address)
    assert lab.nlb.stats.target_connect_failures == 1


# --- health checks --------------------------------------------------------------------------

async def test_tcp_health_check_sends_local_header_when_pp_is_on(make_lab) -> None:
    lab = await make_lab(make_spec(attributes={"proxy_protocol_v2.enabled": "true"}))
    assert (await lab.health())["State"] == "initial"
    await lab.wait_health("healthy")
    checks = [s for s in lab.gateway.seen if not s.payload]
    assert len(checks) >= 2  # healthy threshold 2
    assert all(s.peer[0] == addresses.NLB_IP for s in checks)
    assert all(s.header is not None and s.header.command == Command.LOCAL for s in checks)


async def test_tcp_health_check_without_pp_sends_no_header(make_lab) -> None:
    lab = await make_lab()
    await lab.wait_health("healthy")
    checks = [s for s in lab.gateway.seen if not s.payload]
    assert checks and all(s.header is None and s.raw_header == b"" for s in checks)


async def test_http_check_on_status_port_fails_when_pp_is_on_and_tcp_check_recovers(make_lab) -> None:
    spec = make_spec(attributes={"proxy_protocol_v2.enabled": "true"}, hc_protocol="HTTP", hc_port="15021")
    lab = await make_lab(spec)
    health = await lab.wait_health("unhealthy")
    # NLB reports every failed check as Target.FailedHealthChecks (ResponseCodeMismatch is ALB/GWLB only)
    assert health == {"State": "unhealthy", "Reason": "Target.FailedHealthChecks", "Description": "Health checks failed"}
    check = lab.status.seen[0]
    assert check.peer[0] == addresses.NLB_IP
    assert check.header is not None and check.header.command == Command.LOCAL
    request = check.payload.decode()
    assert request.startswith("GET /healthz/ready HTTP/1.1\r\n")
    assert f"Host: {addresses.NLB_IP}:{lab.nlb.address[1]}\r\n" in request
    assert "User-Agent: ELB-HealthChecker/2.0\r\n" in request
    assert lab.nlb.stats.health[f"{addresses.GATEWAY_POD_IP}:{lab.world.target_port}"]["last_result"] == "HTTP 400 not in 200-399"

    # Unhealthy everywhere: the NLB fails open and still forwards.
    body, _ = await http_get(lab.nlb.address)
    assert body.startswith(b"HTTP/1.1 200 OK")

    await lab.elb("modify_target_group", TargetGroupArn=lab.world.tg_arn, HealthCheckProtocol="TCP", HealthCheckPort="traffic-port")
    assert await lab.wait_health("healthy") == {"State": "healthy"}


async def test_http_check_passes_without_pp(make_lab) -> None:
    lab = await make_lab(make_spec(hc_protocol="HTTP", hc_port="15021"))
    await lab.wait_health("healthy")
    assert all(s.header is None for s in lab.status.seen)


async def test_health_override_follows_deregistration(make_lab) -> None:
    lab = await make_lab()
    await lab.wait_health("healthy")
    target = {"Id": lab.world.target_id, "Port": lab.world.target_port}
    await lab.elb("deregister_targets", TargetGroupArn=lab.world.tg_arn, Targets=[target])
    await _poll(lambda: not lab.nlb.state.targets, 2, "the emulator noticing the deregistration")
    await lab.elb("register_targets", TargetGroupArn=lab.world.tg_arn, Targets=[target])
    # re-registered: starts over, as AWS does
    await _poll(lambda: bool(lab.nlb.state.targets), 2, "the emulator noticing the registration")
    await lab.wait_health("healthy")


async def test_https_check_after_local_header(make_lab, tls_server_context) -> None:
    spec = make_spec(attributes={"proxy_protocol_v2.enabled": "true"}, hc_protocol="HTTPS", hc_path="/ready")
    lab = await make_lab(spec, gateway=TlsTarget(addresses.GATEWAY_POD_IP, tls_server_context))
    await lab.wait_health("healthy")
    check = lab.gateway.requests()[0]
    assert check.peer[0] == addresses.NLB_IP
    assert check.header.command == Command.LOCAL
    assert check.payload.startswith(b"GET /ready HTTP/1.1\r\n")


async def test_https_check_fails_on_tls13_only_targets(make_lab, tls_server_context) -> None:
    tls_server_context.minimum_version = ssl.TLSVersion.TLSv1_3
    spec = make_spec(attributes={"proxy_protocol_v2.enabled": "true"}, hc_protocol="HTTPS")
    lab = await make_lab(spec, gateway=TlsTarget(addresses.GATEWAY_POD_IP, tls_server_context))
    await lab.wait_health("unhealthy")
    assert lab.nlb.stats.health[f"{addresses.GATEWAY_POD_IP}:{lab.world.target_port}"]["last_result"].startswith("tls: ")
    assert any(isinstance(e, ssl.SSLError) for e in lab.gateway.errors)


def test_codes_match() -> None:
    assert codes_match("200-399", 302)
    assert not codes_match("200-399", 400)
    assert codes_match("200,202", 202) and not codes_match("200,202", 201)
    assert codes_match("200-299, 404", 404)


# --- lifecycle ------------------------------------------------------------------------------

def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


async def test_stop_leaves_no_threads_or_sockets(moto, make_lab) -> None:
    lab = await make_lab(make_spec(attributes={"preserve_client_ip.enabled": "true"}))
    await lab.nlb.stop()  # measure a second emulator on the same world, alone
    threads_before = set(threading.enumerate())
    fds_before = _open_fds()

    nlb = NlbEmulator(moto.endpoint_url, lab.world, moto, poll_interval=0.05, hc_interval_scale=0.02)
    await nlb.start()
    # a black-holed client still connected when the NLB stops
    reader, writer = await asyncio.open_connection(*nlb.address, local_addr=(addresses.CLIENT_IP, 0))
    writer.write(b"hello")
    await _poll(lambda: nlb.stats.blackholed_active == 1, 2, "the black-holed flow")
    await _poll(lambda: nlb.stats.health_checks >= 2, 2, "a few health checks")
    await nlb.stop()
    with pytest.raises(ConnectionResetError):
        async with asyncio.timeout(2):
            await reader.read(1)
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()

    def leftovers() -> tuple[set, set]:
        return {t for t in threading.enumerate() if t.is_alive()} - threads_before, _open_fds() - fds_before

    await _poll(lambda: leftovers() == (set(), set()), 2, "all threads and sockets of the emulator ending")
