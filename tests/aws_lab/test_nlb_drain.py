"""The lab NLB's deregistration (lab/nlb_drain.py): a target that left the group drains for the delay and still
gets new flows for the propagation window (aws-load-balancer-controller #2366, istio/istio #35964)."""

from __future__ import annotations

import asyncio

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
