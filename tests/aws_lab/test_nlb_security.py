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
