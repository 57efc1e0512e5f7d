"""The lab NLB's deregistration (lab/nlb_drain.py): a target that left the group drains for the delay and still
gets new flows for the propagation window (aws-load-balancer-controller #2366, istio/istio #35964)."""

from __future__ import annotations

import asyncio

import pytest

from ppdoctor.constants import ATTR_CONNECTION_TERMINATION
from ppdoctor.lab import addresses
from ppdoctor.lab.aws_health import HEALTH_FAILED, HEALTH_HEALTHY
from ppdoctor.lab.aws_live import LiveTarget
from ppdoctor.lab.nlb_drain import Deregistrations, deregistration_delay

from .support import LoopbackTarget, http_get

A = LiveTarget(id="127.1.2.10", ip="127.1.2.10", port=8080)
B = LiveTarget(id="127.1.2.11", ip="127.1.2.11", port=8080)


def test_a_leaving_target_is_routed_for_the_window_and_draining_for_the_delay():
    d = Deregistrations(scale=0.05)  # window 120 s → 6 s, delay 300 s → 15 s
    assert d.update([A], [A, B], 300, now=0.0, health_of=lambda t: HEALTH_HEALTHY) == []  # B joined: nothing left
    assert d.update([A, B], [B], 300, now=1.0, health_of=lambda t: HEALTH_HEALTHY) == [A]
    assert [x.target for x in d.routed(6.9)] == [A] and d.routed(6.9)[0].health == HEALTH_HEALTHY
    assert d.routed(7.1) == [] and [x.target for x in d.draining(7.1)] == [A]  # no new flows, still draining
    d.expire(16.1)
    assert d.draining(16.1) == []


def test_window_outlasts_a_short_delay_and_reregistration_ends_draining():
    d = Deregistrations(scale=1.0)
    d.update([A], [], 5, now=0.0, health_of=lambda t: HEALTH_FAILED)
    # the field: ~2 minutes of new flows whatever the delay; the health it left with goes along
    assert d.draining(10.0) == [] and d.routed(100.0)[0].health == HEALTH_FAILED
    d.update([], [A], 5, now=101.0, health_of=lambda t: HEALTH_HEALTHY)
    assert d.routed(102.0) == []


def test_delay_attribute_with_the_aws_default():
    assert deregistration_delay({"deregistration_delay.timeout_seconds": "30"}) == 30
    assert deregistration_delay({}) == 300 and deregistration_delay({"deregistration_delay.timeout_seconds": "x"}) == 300


async def _ok(address) -> bool:
    """One GET through the NLB: answered 200, or not (a reset, an empty reply)."""
    try:
        body, _ = await http_get(address)
    except (ConnectionResetError, asyncio.IncompleteReadError):
        return False
    return body.startswith(b"HTTP/1.1 200")


async def _poll(predicate, timeout: float, what: str):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := await predicate()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.05)
    return value


async def test_new_flows_reach_a_deregistered_pod_until_the_window_ends(make_lab) -> None:
    # time factor 0.02: the 120 s window is 2.4 s, the default 300 s delay 6 s
    lab = await make_lab(idle_timeout_scale=0.02)
    await lab.wait_health("healthy")
    new_pod = await LoopbackTarget(addresses.GATEWAY_POD_IPS[1]).start()
    try:
        # what the controller does in a rollout: the new pod registered, the old one deregistered
        await lab.elb("register_targets", TargetGroupArn=lab.world.tg_arn, Targets=[{"Id": new_pod.host, "Port": new_pod.port}])
        await lab.elb("deregister_targets", TargetGroupArn=lab.world.tg_arn,
                      Targets=[{"Id": lab.world.target_id, "Port": lab.world.target_port}])

        async def noticed():
            return [t.ip for t in lab.nlb.state.targets] == [new_pod.host] and lab.nlb.draining()
        await _poll(noticed, 3, "the emulator noticing the deregistration")
        await lab.gateway.stop()  # the old pod has stopped (no preStop sleep)

        async def old_pod_hit():
            return not await _ok(lab.nlb.address)
        await _poll(old_pod_hit, 2, "a new flow sent to the stopped, deregistered pod (reset)")
        assert lab.nlb.stats.to_deregistered > 0

        async def settled():  # after the window every new flow goes to the new pod
            return all([await _ok(lab.nlb.address) for _ in range(5)])
        await _poll(settled, 6, "the window ending")
        assert new_pod.requests() and lab.nlb.draining()  # no new flows, still draining (the 6 s delay)
    finally:
        await new_pod.stop()


async def hold_open(reader, writer, seen) -> None:
    """A target that keeps a connection open until the other side closes it (a long-lived client)."""
    await reader.read()


async def _open_flow(lab):
    """A client connection through the NLB that sends nothing yet (the target holds it open, waiting)."""
    forwarded = lab.nlb.stats.forwarded
    reader, writer = await asyncio.open_connection(*lab.nlb.address)
    writer.write(b"x")  # the first data: the target stops waiting for a PROXY header (its 2 s timeout) and holds on

    async def connected():
        return lab.nlb.stats.forwarded > forwarded
    await _poll(connected, 5, "the flow reaching the target")
    return reader, writer


async def _deregister_with(lab, termination: str):
    await lab.elb("modify_target_group_attributes", TargetGroupArn=lab.world.tg_arn, Attributes=[
        {"Key": "deregistration_delay.timeout_seconds", "Value": "10"},  # 0.2 s at the test's factor 0.02
        {"Key": ATTR_CONNECTION_TERMINATION, "Value": termination}])

    async def seen():
        return lab.nlb.state.attributes.get(ATTR_CONNECTION_TERMINATION) == termination
    await _poll(seen, 5, "the emulator reading the attributes")
    flow = await _open_flow(lab)
    await lab.elb("deregister_targets", TargetGroupArn=lab.world.tg_arn,
                  Targets=[{"Id": lab.world.target_id, "Port": lab.world.target_port}])

    async def drained():  # deregistered, and the 0.2 s delay is over
        return not lab.nlb.state.targets and not lab.nlb.draining()
    await _poll(drained, 5, "the deregistration delay ending")
    await asyncio.sleep(0.3)  # past the delay's end by more than its own length
    return flow


async def test_connection_termination_closes_open_flows_when_the_delay_ends(make_lab) -> None:
    lab = await make_lab(idle_timeout_scale=0.02, gateway=hold_open)
    await lab.wait_health("healthy")
    reader, writer = await _deregister_with(lab, "true")
    try:
        got = await asyncio.wait_for(reader.read(100), 5)
    except ConnectionResetError:
        got = b""
    finally:
        writer.close()
    assert got == b"" and lab.nlb.stats.deregistration_resets == 1


async def test_without_connection_termination_open_flows_outlive_the_delay(make_lab) -> None:
    lab = await make_lab(idle_timeout_scale=0.02, gateway=hold_open)
    await lab.wait_health("healthy")
    reader, writer = await _deregister_with(lab, "false")  # AWS's default for TCP target groups
    try:
        with pytest.raises(TimeoutError):  # still open: nothing comes, nothing closes it
            await asyncio.wait_for(reader.read(100), 0.5)
        assert lab.nlb.stats.deregistration_resets == 0
    finally:
        writer.close()
