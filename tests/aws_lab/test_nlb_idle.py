"""An idle lab NLB does not keep reading moto; anyone else's request makes it read again."""

from __future__ import annotations

import asyncio

from ppdoctor.lab.aws import EMULATOR_USER_AGENT, AwsClients, aws_client

from .support import make_spec


async def _settle(lab) -> int:
    """Reads so far, once nothing but the emulator has talked to moto for a few polls."""
    reads = -1
    while reads != lab.nlb.reads:
        reads = lab.nlb.reads
        await asyncio.sleep(lab.nlb.poll_interval * 4)
    return reads


def test_activity_counts_everyone_but_the_emulator(moto) -> None:
    before = moto.activity
    own = AwsClients.connect(moto.endpoint_url, user_agent_extra=EMULATOR_USER_AGENT)
    own.elbv2.describe_target_groups()
    own.ec2.describe_route_tables()
    assert moto.activity == before
    aws_client("elbv2", moto.endpoint_url).describe_target_groups()
    assert moto.activity == before + 1


async def test_idle_emulator_stops_reading_until_someone_talks_to_moto(make_lab) -> None:
    lab = await make_lab(make_spec(), poll_interval=0.05, full_refresh_interval=3600)
    reads = await _settle(lab)
    await asyncio.sleep(0.5)  # ten polls
    assert lab.nlb.reads == reads
    # A read by anyone else is enough: the emulator cannot tell reads from writes.
    await lab.elb("describe_target_groups", TargetGroupArns=[lab.world.tg_arn])
    deadline = asyncio.get_running_loop().time() + 20.0  # a hang guard: the next poll (0.05 s) notices it
    while lab.nlb.reads == reads and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert lab.nlb.reads > reads


async def test_attribute_change_takes_effect_without_waiting_for_the_full_refresh(make_lab) -> None:
    lab = await make_lab(make_spec(), poll_interval=0.5, full_refresh_interval=3600)
    await _settle(lab)
    assert not lab.nlb.state.pp_v2 and not lab.nlb.state.preserve_client_ip
    loop = asyncio.get_running_loop()
    changed = loop.time()
    await lab.elb(
        "modify_target_group_attributes",
        TargetGroupArn=lab.world.tg_arn,
        Attributes=[
            {"Key": "proxy_protocol_v2.enabled", "Value": "true"},
            {"Key": "preserve_client_ip.enabled", "Value": "true"},
        ],
    )
    # Behaviour, not timing: the write is seen through moto's activity count (typically < 1 s), long before the
    # hour-long full refresh; the 20 s bound only keeps a broken emulator from hanging the suite.
    while not (lab.nlb.state.pp_v2 and lab.nlb.state.preserve_client_ip):
        assert loop.time() - changed < 20.0, "the attribute change did not reach the emulator before the full refresh"
        await asyncio.sleep(0.05)


async def test_the_state_is_read_again_after_the_full_refresh_interval(make_lab) -> None:
    lab = await make_lab(make_spec(), poll_interval=0.05, full_refresh_interval=0.3)
    reads = lab.nlb.reads
    # With no write to moto at all the state is still read again, every full-refresh interval: two more reads.
    # Polled with a generous bound (each read is several describe calls; a loaded machine is slow), not timed.
    deadline = asyncio.get_running_loop().time() + 20.0
    while lab.nlb.reads < reads + 2 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert lab.nlb.reads >= reads + 2
