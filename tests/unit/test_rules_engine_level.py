"""Engine-level findings (PPD090–PPD093) and exit codes, from hand-built observations."""

from __future__ import annotations

from ppdoctor.diagnosis.engine import INCONCLUSIVE, UNEXPLAINED, diagnose, exit_code

from tests.unit.rulefacts import HEALTHY, REQUIRED, TG_PP, obs


def _by_id(findings):
    return {f.id: f for f in findings}


def test_a_failing_probe_no_rule_explains_is_named_with_its_evidence_and_next_step():
    observations = [obs("aws", "fail", "1 unhealthy target(s): 10.0.2.10 Target.FailedHealthChecks",
                        {k: v for k, v in TG_PP.items()}),
                    obs("tcp", "ok", "connected", {"nlb.reachable": True})]
    findings = diagnose(observations)
    ppd090 = _by_id(findings)["PPD090"]
    assert ppd090.explains == ["aws"]
    assert "Target.FailedHealthChecks" in ppd090.explanation
    assert any(line.startswith("aws: ") for line in ppd090.confirm)
    assert exit_code(findings) == UNEXPLAINED == 4


def test_a_failure_a_rule_explains_is_not_reported_again():
    observations = [obs("aws", "ok", "", TG_PP), obs("direct-plain", "ok", "", {"gateway.plain_result": "ok"}),
                    obs("direct-ppv2", "fail", "HTTP 400", {"gateway.ppv2_result": "http-4xx"}),
                    obs("http-via-nlb", "fail", "HTTP 400", {"via_nlb.result": "http-4xx", "via_nlb.status": 400})]
    findings = diagnose(observations)
    assert [f.id for f in findings] == ["PPD003"]
    assert exit_code(findings) == 2


def test_the_direct_probe_that_fails_by_design_is_not_unexplained():
    observations = [obs("aws", "ok", "", TG_PP), obs("direct-plain", "fail", "reset", {"gateway.plain_result": "reset"}),
                    obs("direct-ppv2", "ok", "", {"gateway.ppv2_result": "ok"}),
                    obs("xff-forge", "fail", "forged", {"xff.spoofable": True, "xff.forged_count_won": 8,
                                                        "xff.trusted_hops_measured": 2})]
    assert [f.id for f in diagnose(observations)] == ["PPD010"]


def test_refused_probes_are_named_with_the_hint_and_do_not_change_the_verdict():
    denied = obs("aws", "error", "AccessDenied: elasticloadbalancing:DescribeTargetGroups was refused")
    denied.error = {"kind": "aws", "hint": "grant the IAM action elasticloadbalancing:DescribeTargetGroups"}
    observations = [denied, obs("direct-plain", "ok", "", {"gateway.plain_result": "ok"}),
                    obs("direct-ppv2", "fail", "HTTP 400", {"gateway.ppv2_result": "http-4xx"}),
                    obs("http-via-nlb", "fail", "HTTP 400", {"via_nlb.result": "http-4xx", "via_nlb.status": 400})]
    findings = diagnose(observations)
    assert [f.id for f in findings] == ["PPD003", "PPD091"]
    assert findings[0].confidence < 0.9
    assert findings[1].confirm == ["grant the IAM action elasticloadbalancing:DescribeTargetGroups"]
    assert exit_code(findings) == 2


def test_a_partially_refused_probe_is_named_and_its_unread_facts_carry_the_iam_action():
    """The aws probe read the target group but not its attributes: ok status, the gap under evidence 'unavailable'."""
    hint = "grant the IAM action elasticloadbalancing:DescribeTargetGroupAttributes to the identity ppdoctor runs as"
    aws = obs("aws", "ok", "target group x; partially blocked (denied)",
              {"tg.target_type": "ip", "hc.protocol": "TCP", "hc.port": "traffic-port"})
    aws.evidence["unavailable"] = [{"operation": "describe_target_group_attributes", "kind": "denied",
                                    "action": "elasticloadbalancing:DescribeTargetGroupAttributes",
                                    "facts": ["tg.pp_v2", "tg.preserve_ip"], "message": "AccessDenied", "hint": hint}]
    observations = [aws, obs("direct-plain", "ok", "", {"gateway.plain_result": "ok"}),
                    obs("direct-ppv2", "fail", "HTTP 400", {"gateway.ppv2_result": "http-4xx"}),
                    obs("http-via-nlb", "fail", "HTTP 400", {"via_nlb.result": "http-4xx", "via_nlb.status": 400})]
    findings = diagnose(observations)
    assert [f.id for f in findings] == ["PPD003", "PPD091"]
    assert findings[0].confidence < 0.9
    assert any(line.startswith("tg.pp_v2 unknown: `aws` was refused elasticloadbalancing:DescribeTargetGroupAttributes")
               and line.endswith("IAM elasticloadbalancing:DescribeTargetGroupAttributes would confirm it")
               for line in findings[0].confirm), findings[0].confirm
    assert findings[1].confirm == [hint] and findings[1].explains == ["aws"]
    # without the gap the same probe is a clean read: nothing is reported as blocked
    aws.evidence.clear()
    assert "PPD091" not in [f.id for f in diagnose(observations)]


def test_nlb_level_evidence_alone_ranks_hypotheses():
    aws = obs("aws", "error", "AccessDenied")
    kube = obs("kube", "error", "RBAC forbids get services")
    via = obs("http-via-nlb", "ok", "200", {"via_nlb.result": "ok", "via_nlb.status": 200,
                                           "via_nlb.client_ip_class": "prober"})
    findings = diagnose([aws, kube, via])
    assert [f.id for f in findings] == ["PPD093", "PPD091"]
    # a ranked list, never a PPD000 finding; the fail-open health-check failures the path cannot show come first
    assert findings[0].alternatives == ["PPD005", "PPD016", "PPD014", "PPD000"]
    assert "fails open" in findings[0].explanation
    assert exit_code(findings) == INCONCLUSIVE


def test_targets_in_initial_are_named_with_the_time_the_check_decides():
    health = [{"id": "10.0.2.10", "port": 8080, "state": "initial", "reason": "Elb.InitialHealthChecking",
               "description": "Initial health checks in progress"}]
    aws = obs("aws", "ok", "", {**TG_PP, "tg.health": health, "tg.healthy_count": 0, "hc.interval_s": 10,
                                "hc.healthy_threshold": 3})
    findings = diagnose([aws, obs("direct-plain", "ok", "", {"gateway.plain_result": "reset"})])
    ppd092 = _by_id(findings)["PPD092"]
    assert "10.0.2.10:8080" in ppd092.explanation and "Elb.InitialHealthChecking" in ppd092.explanation
    assert "3 consecutive passes × 10 s = 30 s" in ppd092.explanation
    assert exit_code(findings) == INCONCLUSIVE


def test_healthy_exits_0_and_says_so():
    by_probe = {"aws": {k: v for k, v in HEALTHY.items() if k.startswith(("tg.", "hc."))},
                "direct-plain": {"gateway.plain_result": REQUIRED["gateway.plain_result"]},
                "direct-ppv2": {"gateway.ppv2_result": "ok"},
                "http-via-nlb": {k: v for k, v in HEALTHY.items() if k.startswith("via_nlb.")},
                "xff-forge": {"xff.spoofable": False}}
    findings = diagnose([obs(p, "fail" if p == "direct-plain" else "ok", "", v) for p, v in by_probe.items()])
    assert [f.id for f in findings] == ["PPD000"]
    assert exit_code(findings) == 0
