"""Table-driven tests of every catalogue rule (PPD000–PPD016): hand-built facts that fire it, near-misses that must not.

Each row: (rule id, facts, fires?, why). A firing row may also give the confidence band it must land in:
full evidence ≥ 0.9, one side known from the other's symptom (partial access) in [0.5, 0.8].
"""

from __future__ import annotations

import pytest

from ppdoctor.diagnosis import rules, rules_diag
from ppdoctor.diagnosis.engine import diagnose

from tests.unit.rulefacts import (HEALTHY, OFF, OPTIONAL, REQUIRED, TG_PLAIN, TG_PP, VIA_OK_NLB, VIA_OK_PROBER, facts, obs)

RULE = {name.upper(): fn for name, fn in vars(rules).items() if name.startswith("ppd") and callable(fn)}
RULE.update({"PPD016": rules_diag.ppd016})
FULL, PARTIAL = (0.9, 1.0), (0.5, 0.8)
STATUS_HC = {"hc.protocol": "HTTP", "hc.port": "15021", "hc.path": "/healthz/ready"}
UNHEALTHY = [{"id": "10.0.2.10", "port": 8080, "state": "unhealthy", "reason": "Target.FailedHealthChecks",
              "description": "Health checks failed"}]
HC_SVC = {"healthcheck-protocol": "http", "healthcheck-port": "traffic-port", "healthcheck-path": "/healthz/ready"}

CASES = [
    # PPD000 healthy
    ("PPD000", HEALTHY, FULL, "the reference configuration"),
    ("PPD000", {**HEALTHY, "tg.healthy_count": 0}, None, "no healthy target"),
    ("PPD000", {**HEALTHY, "via_nlb.client_ip_class": "nlb"}, None, "backend sees the NLB"),
    ("PPD000", {**HEALTHY, **OFF}, None, "gateway without the filter"),
    ("PPD000", {**{k: v for k, v in HEALTHY.items() if not k.startswith(("tg.", "hc."))}, "svc.hc_annotations": {}},
     None, "AWS denied: the Service's health check is known, whether targets pass it is not — no 'healthy'"),
    ("PPD000", {**{k: v for k, v in HEALTHY.items() if k != "tg.pp_v2"}}, PARTIAL,
     "target group attributes refused, target health read: the client's address arrives"),
    ("PPD000", {k: v for k, v in HEALTHY.items() if not k.startswith(("tg.", "hc."))}, None,
     "AWS and Kubernetes denied: target health unknown, an NLB fails open — no 'healthy'"),
    # PPD001 no client-IP source
    ("PPD001", {**TG_PLAIN, **OFF, **VIA_OK_NLB}, FULL, "pp off, preservation off, backend sees the NLB"),
    ("PPD001", {**TG_PLAIN, **OFF, **VIA_OK_PROBER}, None, "backend sees the prober"),
    ("PPD001", {**TG_PLAIN, **REQUIRED, **VIA_OK_NLB}, None, "gateway requires PROXY: PPD004"),
    ("PPD001", {**OFF, **VIA_OK_NLB, "via_nlb.client_ip_class": "unknown"}, PARTIAL, "AWS denied: addresses differ"),
    ("PPD001", {**OFF, **VIA_OK_PROBER, "via_nlb.client_ip_class": "unknown"}, None, "AWS denied: address is ours"),
    # PPD002 preservation + bypassing return path
    ("PPD002", {**TG_PP, "tg.preserve_ip": True, "routes.private_default": "nat", "via_nlb.result": "timeout-response"},
     FULL, "NAT default route and a hang"),
    ("PPD002", {**TG_PP, "tg.preserve_ip": True, "routes.private_default": "igw", "via_nlb.result": "ok"}, None,
     "IGW route, requests work"),
    ("PPD002", {**TG_PP, "tg.preserve_ip": True, "routes.private_default": "nat", "via_nlb.result": "timeout-response",
                "via_nlb.prober_ip": "10.0.5.5", "vpc.cidrs": ["10.0.0.0/16"]}, None, "prober inside the VPC: PPD015"),
    ("PPD002", {**REQUIRED, "via_nlb.result": "timeout-response"}, PARTIAL, "AWS denied: hang via NLB, gateway answers"),
    # PPD003 TG sends PP, gateway has no filter
    ("PPD003", {**TG_PP, **OFF, "via_nlb.result": "http-4xx", "via_nlb.status": 400}, FULL, "direct + NLB evidence"),
    ("PPD003", {**TG_PP, **REQUIRED}, None, "gateway has the filter"),
    ("PPD003", {**TG_PLAIN, **OFF}, None, "TG sends no PROXY header"),
    ("PPD003", {**OFF, "via_nlb.result": "http-4xx", "via_nlb.status": 400}, PARTIAL, "AWS denied: 400 via NLB"),
    ("PPD003", {"via_nlb.result": "http-4xx", "via_nlb.status": 400}, PARTIAL, "NLB-level only: 400"),
    ("PPD003", {"via_nlb.result": "http-4xx", "via_nlb.status": 404}, None, "a 404 is a routing matter"),
    # PPD004 gateway requires, TG does not send
    ("PPD004", {**TG_PLAIN, **REQUIRED, "via_nlb.result": "reset"}, FULL, "reset through the NLB"),
    ("PPD004", {**TG_PLAIN, "tg.preserve_ip": True, **REQUIRED, "via_nlb.result": "reset"}, None, "preservation on"),
    ("PPD004", {**TG_PP, **REQUIRED, "via_nlb.result": "ok"}, None, "TG sends PROXY"),
    ("PPD004", {**REQUIRED, "via_nlb.result": "empty-reply"}, PARTIAL, "AWS denied"),
    ("PPD004", {"via_nlb.result": "reset"}, PARTIAL, "NLB-level only"),
    # PPD005 PP + HTTP check on the status port
    ("PPD005", {**TG_PP, **STATUS_HC, "tg.health": UNHEALTHY, "hc.would_pass": False}, FULL, "unhealthy, check fails"),
    ("PPD005", {**TG_PP, **STATUS_HC, "hc.would_pass": True}, None, "the check passes"),
    ("PPD005", {**TG_PP, **STATUS_HC, "tg.health": UNHEALTHY, "hc.would_pass": False, "gateway.status_pp": True}, None,
     "status port takes PROXY headers"),
    ("PPD005", {**TG_PP, "hc.protocol": "HTTP", "hc.port": "traffic-port", "hc.path": "/", "hc.would_pass": False},
     None, "traffic port: PPD016's case"),
    ("PPD005", {"svc.pp_annotation": True, "svc.hc_annotations": {"healthcheck-protocol": "http", "healthcheck-port": "15021"}},
     PARTIAL, "AWS denied: the Service's annotations"),
    # PPD006 mesh config, pods predate
    ("PPD006", {**TG_PP, **OFF, "mesh.pp": True, "gateway.pp_pod_template": False, "gateway.pods_predate_mesh": True},
     FULL, "pods older than the change"),
    ("PPD006", {**TG_PP, **REQUIRED, "mesh.pp": True, "gateway.pp_pod_template": False, "gateway.pp_live": True}, None,
     "listeners have the filter"),
    ("PPD006", {**TG_PP, **OFF, "mesh.pp": False}, None, "mesh does not ask"),
    # PPD007 misplaced annotation
    ("PPD007", {"gateway.proxy_config_misplaced": ["Service metadata"], "gateway.pp_pod_template": False}, FULL, "misplaced"),
    ("PPD007", {"gateway.proxy_config_misplaced": ["Service metadata"], "gateway.pp_pod_template": True}, None,
     "also on the template"),
    ("PPD007", {"gateway.proxy_config_misplaced": []}, None, "nothing misplaced"),
    # PPD008 annotation ignored
    ("PPD008", {"svc.pp_annotation": True, "svc.lb_type": "nlb", "tg.pp_v2": False, "tg.lbc_managed": False}, FULL, "in-tree"),
    ("PPD008", {"svc.pp_annotation": True, "svc.lb_type": "external", "tg.pp_v2": False, "tg.lbc_managed": True,
                "lbc.installed": True}, None, "LBC runs"),
    ("PPD008", {"svc.pp_annotation": True, "svc.lb_type": "nlb", **REQUIRED, "via_nlb.result": "reset"}, PARTIAL,
     "AWS denied: the gateway's refusal"),
    ("PPD008", {"svc.pp_annotation": True, "svc.lb_type": "nlb", "via_nlb.result": "ok"}, None, "AWS denied, requests work"),
    # PPD009 drift
    ("PPD009", {"tg.lbc_managed": True, "svc.pp_annotation": True, "tg.pp_v2": False}, (0.8, 0.9), "pp drift"),
    ("PPD009", {"tg.lbc_managed": True, "svc.pp_annotation": True, "tg.pp_v2": True,
                "svc.tg_attributes_annotation": "preserve_client_ip.enabled=false", "tg.preserve_ip": True}, (0.8, 0.9),
     "preservation drift"),
    ("PPD009", {"tg.lbc_managed": False, "svc.pp_annotation": True, "tg.pp_v2": False}, None, "not LBC-managed"),
    ("PPD009", {"tg.lbc_managed": True, "svc.pp_annotation": True, "tg.pp_v2": True}, None, "in sync"),
    # PPD010 forgeable XFF
    ("PPD010", {"xff.spoofable": True, "xff.forged_count_won": 8, "xff.trusted_hops_measured": 2}, FULL, "forged (N=2)"),
    ("PPD010", {"xff.spoofable": False, "gateway.num_trusted_proxies": 2}, None, "forge test says no (something in front)"),
    ("PPD010", {"gateway.num_trusted_proxies": 2}, (0.55, 0.65), "config only, forge test could not run"),
    ("PPD010", {"gateway.xff_num_trusted_hops": 3}, (0.55, 0.65), "live Envoy config only"),
    ("PPD010", {"gateway.num_trusted_proxies": 0}, None, "trusts nothing"),
    ("PPD010", {"gateway.num_trusted_proxies": 1, "via_nlb.hops_in_front": 1}, None, "one trusted proxy in front"),
    # PPD011 echo strips XFF
    ("PPD011", {"via_nlb.echo_shows_xff": False}, FULL, "no XFF in the echo"),
    ("PPD011", {"via_nlb.echo_shows_xff": True}, None, "XFF shown"),
    ("PPD011", {"gateway.ppv2.echo_shows_xff": False}, FULL, "direct only"),
    # PPD012 gateway optional, TG off
    ("PPD012", {**TG_PLAIN, **OPTIONAL}, FULL, "optional + TG plain"),
    ("PPD012", {**TG_PP, **OPTIONAL}, None, "TG sends PROXY (PPD000 info)"),
    ("PPD012", {**OPTIONAL, **VIA_OK_NLB}, PARTIAL, "AWS denied: backend sees the NLB"),
    ("PPD012", {**OPTIONAL, **VIA_OK_PROBER}, None, "AWS denied: backend sees us"),
    # PPD013 filter order
    ("PPD013", {"gateway.pp_after_tls_inspector": True}, FULL, "after tls_inspector"),
    ("PPD013", {"gateway.pp_after_tls_inspector": False}, None, "first"),
    # PPD014 instance + Local + PP
    ("PPD014", {"tg.target_type": "instance", "svc.external_traffic_policy": "Local", "tg.pp_v2": True}, (0.8, 0.9), "all three"),
    ("PPD014", {"tg.target_type": "ip", "svc.external_traffic_policy": "Local", "tg.pp_v2": True}, None, "IP targets"),
    ("PPD014", {"tg.target_type": "instance", "svc.external_traffic_policy": "Cluster", "tg.pp_v2": True}, None, "Cluster"),
    # PPD015 hairpin
    ("PPD015", {"tg.preserve_ip": True, "via_nlb.prober_ip": "10.0.5.5", "vpc.cidrs": ["10.0.0.0/16"],
                "via_nlb.result": "timeout-response"}, FULL, "in-VPC prober hangs"),
    ("PPD015", {"tg.preserve_ip": True, "via_nlb.prober_ip": "203.0.113.5", "vpc.cidrs": ["10.0.0.0/16"]}, None, "outside"),
    ("PPD015", {"tg.preserve_ip": False, "via_nlb.prober_ip": "10.0.5.5", "vpc.cidrs": ["10.0.0.0/16"]}, None, "no preservation"),
    # PPD016 health-check path the port does not serve
    ("PPD016", {**TG_PP, "hc.protocol": "HTTP", "hc.port": "traffic-port", "hc.path": "/healthz/ready",
                "hc.would_pass": False, "hc.check_status": 404, "tg.health": UNHEALTHY}, FULL, "404 on the traffic port"),
    ("PPD016", {**TG_PP, "hc.protocol": "HTTP", "hc.port": "traffic-port", "hc.path": "/get", "hc.would_pass": True,
                "hc.check_status": 200}, None, "a served path"),
    ("PPD016", {**TG_PP, "hc.protocol": "HTTP", "hc.port": "15021", "hc.path": "/healthz/ready", "hc.would_pass": False,
                "hc.check_status": 400}, None, "status port: PPD005's case"),
    ("PPD016", {**TG_PP, "hc.protocol": "HTTP", "hc.port": "traffic-port", "hc.would_pass": False, "hc.check_status": 503},
     None, "a 5xx is the backend, not the path"),
    ("PPD016", {"svc.hc_annotations": HC_SVC}, PARTIAL, "AWS denied: readiness path on the traffic port"),
    ("PPD016", {"svc.hc_annotations": {**HC_SVC, "healthcheck-protocol": "tcp"}}, None, "AWS denied: TCP check"),
]


@pytest.mark.parametrize("rid, values, band, why", CASES, ids=[f"{c[0]}-{c[3]}" for c in CASES])
def test_rule_table(rid, values, band, why):
    finding = RULE[rid](facts(values))
    if band is None:
        assert finding is None, (why, finding)
        return
    assert finding is not None and finding.id == rid, why
    assert band[0] <= finding.confidence <= band[1], (why, finding.confidence)
    assert finding.evidence, "a finding names the facts it rests on"
    if band == PARTIAL:
        assert finding.confirm, "a finding reached without some facts says what would confirm it"


def test_every_catalogue_rule_has_a_firing_row_and_a_near_miss():
    fired = {c[0] for c in CASES if c[2] is not None}
    missed = {c[0] for c in CASES if c[2] is None}
    catalogue = {f"PPD{i:03d}" for i in range(17)}  # diag's ids; rules_<name>.py modules have their own tables
    assert fired == catalogue and missed == catalogue


def test_partial_access_names_the_permission_that_would_confirm():
    f = facts({**OFF, "via_nlb.result": "http-4xx", "via_nlb.status": 400},
              errors={"aws": "AccessDenied: elasticloadbalancing:DescribeTargetGroupAttributes was refused"})
    finding = rules.ppd003(f)
    assert any("elasticloadbalancing:DescribeTargetGroupAttributes would confirm" in line for line in finding.confirm)


# --- supersession and ranking --------------------------------------------------------------------

def _observations(values: dict, probe: str = "aws") -> list:
    """All facts on one observation per declaring probe (the engine reads facts, not who carried them)."""
    from ppdoctor import facts as registry

    by_probe: dict[str, dict] = {}
    for name, value in values.items():
        by_probe.setdefault(registry.probe_for(name), {})[name] = value
    return [obs(p, "ok", "", v) for p, v in by_probe.items()]


@pytest.mark.parametrize("values, winner, superseded", [
    ({**TG_PP, **OFF, "mesh.pp": True, "gateway.pp_pod_template": False, "gateway.pods_predate_mesh": True}, "PPD006", "PPD003"),
    ({**TG_PP, **OFF, "gateway.proxy_config_misplaced": ["Deployment metadata"], "gateway.pp_pod_template": False},
     "PPD007", "PPD003"),
    ({**TG_PLAIN, **REQUIRED, "svc.pp_annotation": True, "svc.lb_type": "nlb", "tg.lbc_managed": False,
      "via_nlb.result": "reset"}, "PPD008", "PPD004"),
])
def test_supersession(values, winner, superseded):
    findings = diagnose(_observations(values))
    by_id = {f.id: f for f in findings}
    assert by_id[superseded].superseded_by == winner
    assert findings[0].id == winner


def test_healthy_is_dropped_when_anything_is_wrong():
    findings = diagnose(_observations({**HEALTHY, "xff.spoofable": True}))
    assert [f.id for f in findings] == ["PPD010"]
