"""Security groups as the lab's NLB applies them: the target ENI's groups on the source the target sees,
the NLB's own groups on the client, and PrivateLink — all changed through boto3, never through a flag."""

from __future__ import annotations

import asyncio
import dataclasses

from ppdoctor.lab import addresses

from .support import http_get, make_spec
from .test_nlb_emulator import _expect_silence, _poll

VPC_ONLY = (addresses.VPC_CIDR,)
OPEN = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}


def _names_open(lab) -> bool:
    perms = lab.nlb.state.target_permissions[addresses.GATEWAY_POD_IP]
    return any(r.get("CidrIp") == "0.0.0.0/0" for p in perms for r in p.get("IpRanges", []))


def _spec(preserve: str, ingress=VPC_ONLY, **extra):
    spec = make_spec(attributes={"preserve_client_ip.enabled": preserve, "proxy_protocol_v2.enabled": "true"}, route="igw")
    return dataclasses.replace(spec, target_sg_ingress=ingress, **extra)


async def test_vpc_only_group_drops_preserved_clients_and_authorize_revoke_toggle_it(make_lab) -> None:
    lab = await make_lab(_spec("true"))
    await lab.wait_health("healthy")  # health checks come from the NLB's address, inside the VPC range
    await _expect_silence(lab.nlb.address, addresses.CLIENT_IP)
    assert lab.gateway.requests() == [] and lab.nlb.stats.sg_dropped == 1

    await asyncio.to_thread(lab.ec2.authorize_security_group_ingress, GroupId=lab.world.target_sg_id, IpPermissions=[OPEN])
    await _poll(lambda: _names_open(lab), 2, "the new rule read")
    body, _ = await http_get(lab.nlb.address)
    assert body.startswith(b"HTTP/1.1 200 OK")
    (seen,) = lab.gateway.requests()
    assert seen.peer[0] == addresses.CLIENT_IP

    await asyncio.to_thread(lab.ec2.revoke_security_group_ingress, GroupId=lab.world.target_sg_id, IpPermissions=[OPEN])
    await _poll(lambda: not _names_open(lab), 2, "the rule revoked")
    await _expect_silence(lab.nlb.address, addresses.CLIENT_IP)


async def test_preservation_off_the_target_sees_the_nlb_which_the_vpc_rule_admits(make_lab) -> None:
    lab = await make_lab(_spec("false"))
    body, _ = await http_get(lab.nlb.address)
    assert body.startswith(b"HTTP/1.1 200 OK")
    (seen,) = lab.gateway.requests()
    assert seen.peer[0] == addresses.NLB_IP and seen.header.src.address == addresses.CLIENT_IP


async def test_a_group_that_drops_the_nlb_fails_the_health_checks(make_lab) -> None:
    lab = await make_lab(_spec("false", ingress=("198.51.100.0/24",)))
    health = await lab.wait_health("unhealthy")
    assert health["Reason"] == "Target.FailedHealthChecks"


async def test_privatelink_ignores_preservation_and_tags_the_endpoint(make_lab) -> None:
    spec = dataclasses.replace(_spec("true", ingress=("0.0.0.0/0",)), endpoint_service=True)
    lab = await make_lab(spec, privatelink=True)
    body, _ = await http_get(lab.nlb.address)
    assert body.startswith(b"HTTP/1.1 200 OK")
    (seen,) = lab.gateway.requests()
    assert seen.peer[0] == addresses.NLB_IP  # preservation on, yet the target sees the NLB
    assert seen.header.src.address == addresses.CLIENT_IP
    assert lab.world.vpc_endpoint_id.startswith("vpce-")
    assert seen.header.aws_vpce_id == lab.world.vpc_endpoint_id  # the id moto holds, not a made-up one


async def test_ipv6_client_of_a_dualstack_nlb_is_translated_and_carried_by_an_inet6_header(make_lab) -> None:
    spec = dataclasses.replace(_spec("true", ingress=("0.0.0.0/0",)), ip_address_type="dualstack")
    lab = await make_lab(spec, listen_host_v6="::1")
    body, _ = await http_get(lab.nlb.address_v6, source="::1")
    assert body.startswith(b"HTTP/1.1 200 OK")
    (seen,) = lab.gateway.requests()
    assert seen.peer[0] == addresses.NLB_IP  # preservation on, yet an IPv4 target sees the NLB
    assert seen.header.family.name == "INET6" and seen.header.src.address == "::1"


async def test_ipv4_only_nlb_gives_ipv6_clients_nothing_until_it_becomes_dualstack(make_lab) -> None:
    lab = await make_lab(_spec("false", ingress=("0.0.0.0/0",)), listen_host_v6="::1")
    reader, writer = await asyncio.open_connection(*lab.nlb.address_v6, local_addr=("::1", 0))
    writer.write(b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n")
    try:
        data = await asyncio.wait_for(reader.read(), 3)
    except ConnectionResetError:
        data = b""
    writer.close()
    assert data == b"" and lab.gateway.requests() == []
    await lab.elb("set_ip_address_type", LoadBalancerArn=lab.world.lb_arn, IpAddressType="dualstack")
    await _poll(lambda: lab.nlb.state.lb_ip_address_type == "dualstack", 2, "the address type read")
    body, _ = await http_get(lab.nlb.address_v6, source="::1")
    assert body.startswith(b"HTTP/1.1 200 OK")


async def _echo_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen) -> None:
    """A target that echoes bytes for as long as the connection lives (a long-lived client)."""
    if seen.payload:
        writer.write(seen.payload)
    while data := await reader.read(4096):
        writer.write(data)
        await writer.drain()


async def test_a_flow_idle_past_the_listener_timeout_is_reset_and_a_busy_one_is_not(make_lab) -> None:
    lab = await make_lab(_spec("false", ingress=("0.0.0.0/0",)), gateway=_echo_stream, idle_timeout_scale=0.005)
    await lab.elb("modify_listener_attributes", ListenerArn=lab.world.listener_arn,
                  Attributes=[{"Key": "tcp.idle_timeout.seconds", "Value": "60"}])  # 60 s → 0.3 s in this lab
    await _poll(lambda: lab.nlb.state.idle_timeout_seconds == 60, 2, "the idle timeout read")
    reader, writer = await asyncio.open_connection(*lab.nlb.address, local_addr=(addresses.CLIENT_IP, 0))
    for i in range(4):  # activity below the timeout keeps the flow
        writer.write(b"ping %d\n" % i)
        assert (await asyncio.wait_for(reader.readline(), 2)).startswith(b"ping")
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # past the scaled timeout
    writer.write(b"late\n")
    try:
        data = await asyncio.wait_for(reader.read(), 2)
    except ConnectionResetError:
        data = b""
    writer.close()
    assert data == b"" and lab.nlb.stats.idle_resets == 1


async def _greeter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen) -> None:
    """A server-first service behind a PROXY-expecting receiver: the greeting goes out once the header is in.

    LoopbackTarget has parsed the header before this runs (it waits for it, like Envoy's filter)."""
    writer.write(b"220 lab ESMTP\r\n")
    await writer.drain()
    while data := await reader.read(4096):
        writer.write(data)


async def _greeting(address, timeout: float) -> bytes:
    reader, writer = await asyncio.open_connection(*address, local_addr=(addresses.CLIENT_IP, 0))
    try:
        return await asyncio.wait_for(reader.readline(), timeout)
    except TimeoutError:
        return b""
    finally:
        writer.transport.abort()


async def test_default_header_placement_hides_a_server_first_greeting_until_on_first_ack(make_lab) -> None:
    lab = await make_lab(_spec("false", ingress=("0.0.0.0/0",)), gateway=_greeter)
    assert await _greeting(lab.nlb.address, 1.0) == b""  # on_first_ack_with_payload: the client waits forever
    await lab.elb("modify_target_group_attributes", TargetGroupArn=lab.world.tg_arn, Attributes=[
        {"Key": "proxy_protocol_v2.client_to_server.header_placement", "Value": "on_first_ack"}])
    await _poll(lambda: "header_placement" in str(lab.nlb.state.attributes), 2, "the placement read")
    assert await _greeting(lab.nlb.address, 2.0) == b"220 lab ESMTP\r\n"


async def test_server_first_probe_paths_tell_the_placement_apart(make_lab) -> None:
    from ppdoctor.probes.network import TEST_NET_SOURCE
    from ppdoctor.probes.server_first import first_bytes
    from ppdoctor.proxyproto import proxy_v2

    lab = await make_lab(_spec("false", ingress=("0.0.0.0/0",)), gateway=_greeter)
    target = (addresses.GATEWAY_POD_IP, lab.gateway.port)
    via = await first_bytes(*lab.nlb.address, source=addresses.CLIENT_IP, wait=1.0)
    direct_pp = await first_bytes(*target, prefix=proxy_v2((TEST_NET_SOURCE, 40000), target), wait=1.0)
    direct_plain = await first_bytes(*target, wait=1.0)
    assert via is None and direct_pp == b"220 lab ESMTP\r\n" and direct_plain is None
