"""Configuration traps of issue 14 against the running lab: the specific fix alone → PPD000 → rollback → the trap again.

The closed-loop test applies every fix of the first finding; here each trap's own fix is applied
alone, so what cures the symptom is that fix and nothing else, and its rollback brings it back.
"""

from __future__ import annotations

import asyncio

import pytest

from ppdoctor.diagnosis import diagnose
from ppdoctor.fixes import apply_plan, build_plan, read_state
from ppdoctor.fixes.apply import diagnose_settled
from ppdoctor.probes import ProbeContext, run_probes


def _fact(observations, name):
    for o in observations:
        if name in o.facts:
            return o.facts[name].value
    return None


def _apply_only(config, fix_id):
    """Plan and apply one fix, diagnose once things settle, roll it back; (plan, findings after, after rollback)."""
    from tests.lab.fixloop import roll_back

    async def apply():
        ctx = ProbeContext(config)
        try:
            plan = build_plan(fix_id, await asyncio.to_thread(read_state, ctx))
            assert plan.changes, plan.as_dict()
            result = await apply_plan(plan, ctx)
            assert result.completed, result.as_dict()
            return plan, [{**c.as_dict(), "at": float(i)} for i, c in enumerate(result.applied)], \
                await diagnose_settled(config)
        finally:
            await asyncio.to_thread(ctx.close)

    plan, changes, findings = asyncio.run(apply())
    return plan, findings, roll_back(config, changes)


@pytest.mark.lab
def test_status_port_env_alone_heals_istio_127_and_rolls_back(lab_pool):
    lab = lab_pool.get("status-port-pp-istio-127", fresh=True)
    lab.wait_health("unhealthy", timeout=20.0)
    observations = asyncio.run(run_probes(lab.config, ["aws", "kube", "envoy", "health", "http-via-nlb"]))
    assert _fact(observations, "gateway.istio_version") == "1.27.1"
    assert _fact(observations, "gateway.status_pp") is False
    first = diagnose(observations)[0]
    assert first.id == "PPD005" and first.fixes[0] == "FIX-STATUS-PP-ENV", first.as_dict()

    plan, findings, restored = _apply_only(lab.config, "FIX-STATUS-PP-ENV")
    assert plan.changes[0].field.endswith('env["ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL"]')
    assert findings[0].id == "PPD000", [f.as_dict() for f in findings]
    # the health check stays HTTP on the status port: the env, not a TCP check, healed it
    tg = lab.elbv2().describe_target_groups(TargetGroupArns=[lab.endpoints["target_group_arn"]])["TargetGroups"][0]
    assert tg["HealthCheckProtocol"] == "HTTP" and tg["HealthCheckPort"] != "traffic-port"

    # rolled back: the pods restart without the env and the targets fail again
    assert restored[0].id == "PPD005", [f.as_dict() for f in restored]
    lab.wait_health("unhealthy", timeout=30.0)
    after = asyncio.run(run_probes(lab.config, ["kube", "envoy"]))
    assert _fact(after, "gateway.status_pp_env") is False
    assert _fact(after, "gateway.status_pp") is False


@pytest.mark.lab
def test_istio_124_ignores_the_env_and_is_offered_the_tcp_check_only(lab_pool):
    lab = lab_pool.get("pp-on-hc-status-port", fresh=True)
    lab.wait_health("unhealthy", timeout=20.0)
    first = diagnose(asyncio.run(run_probes(lab.config)))[0]
    assert first.id == "PPD005" and first.fixes == ["FIX-HC-TCP"], first.as_dict()
    assert "before 1.27" in first.explanation


@pytest.mark.lab
def test_gateway_server_fix_alone_opens_the_listener_and_rolls_back(lab_pool):
    lab = lab_pool.get("no-listener-on-port", fresh=True)
    lab.wait_health("unhealthy", timeout=20.0)
    plan, findings, restored = _apply_only(lab.config, "FIX-GW-SERVER-PORT")
    assert plan.changes[0].object == "Gateway default/httpbin-gateway"
    assert findings[0].id == "PPD000", [f.as_dict() for f in findings]
    # rolled back: istiod's push removes the listener again, the target port refuses
    assert restored[0].id == "PPD028", [f.as_dict() for f in restored]


@pytest.mark.lab
def test_in_cluster_caller_is_reset_and_counted_as_foreign(lab_pool):
    lab = lab_pool.get("clusterip-callers-reset", fresh=True)
    lab.wait_health("healthy", timeout=20.0)
    observations = asyncio.run(run_probes(lab.config, ["incluster", "direct-plain", "http-via-nlb"]))
    assert _fact(observations, "via_nlb.result") == "ok"  # the NLB path is healthy
    assert _fact(observations, "incluster.plain_result") in ("reset", "empty-reply")  # a pod is reset
    assert _fact(observations, "incluster.foreign_pp_errors") >= 1, [o.as_dict() for o in observations]


@pytest.mark.lab
def test_own_header_less_probes_are_not_taken_for_in_cluster_callers(lab_pool):
    lab = lab_pool.get("healthy", fresh=False)
    lab.wait_health("healthy", timeout=20.0)
    # direct-plain (header-less, reset by the gateway) runs inside the incluster probe's window
    observations = asyncio.run(run_probes(lab.config, ["incluster", "direct-plain", "direct-plain"]))
    assert _fact(observations, "gateway.plain_result") in ("reset", "empty-reply")
    assert _fact(observations, "incluster.foreign_pp_errors") == 0


@pytest.mark.lab
@pytest.mark.parametrize("scenario,fix_id,first", [
    ("tls-nlb-no-sni", "FIX-GW-HOSTS-WILDCARD", "PPD024"),
    ("tls-nlb-redirect-loop", "FIX-GW-NO-REDIRECT", "PPD025"),
])
def test_tls_trap_fix_alone_and_rollback(lab_pool, scenario, fix_id, first):
    lab = lab_pool.get(scenario, fresh=True)
    lab.wait_health("healthy", timeout=20.0)
    before = asyncio.run(run_probes(lab.config, ["http-via-nlb"]))
    if scenario == "tls-nlb-redirect-loop":
        # measured: 301 to https://…, and following it through the NLB comes back to it
        assert _fact(before, "via_nlb.status") == 301 and _fact(before, "via_nlb.redirect_loop") is True
        assert _fact(before, "via_nlb.location").startswith("https://")
    plan, findings, restored = _apply_only(lab.config, fix_id)
    assert plan.changes and all(c.object.startswith("Gateway ") for c in plan.changes)
    assert findings[0].id == "PPD000", [f.as_dict() for f in findings]
    # rolled back through the same API: istiod's push restores the trap
    assert restored[0].id == first, [f.as_dict() for f in restored]
