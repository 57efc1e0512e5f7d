"""Every shipped scenario, diagnosed with full access, AWS denied, Kubernetes denied and both.

Called by tests/lab/test_scenarios_closed_loop.py on each scenario's lab before it applies the
fixes, so that no lab starts twice (the lab start dominates the cost; the four probe runs take ~2 s).

- Full access: the scenario's own id comes first, and no failing observation is left unexplained (PPD090).
- Partial access: the scenario's id first (lower confidence, the confirming permission named), or a ranked
  hypothesis list headed by it; never PPD000 unless the scenario is healthy.
Only the probes re-run per access mode.
"""

from __future__ import annotations

from dataclasses import replace

from ppdoctor.config import Timeouts
from ppdoctor.diagnosis.engine import diagnose
from ppdoctor.diagnosis.model import FactView, gateway_mode
from ppdoctor.diagnosis.rules_diag import EXPECTED_BY_MODE, META_IDS
from ppdoctor.lab.scenario import load_scenario
from ppdoctor.probes import default_probes

from tests.labsupport import probe_as_an_operator

from .denial import DeniedContext

TIMEOUTS = Timeouts(connect=3.0, response=5.0, api=10.0, total=20.0)  # generous: a loaded CI machine
# what `diagnose` runs (on-demand probes stay out); raw SYN needs CAP_NET_RAW and only ever adds a skip here
PROBE_NAMES = [p for p in default_probes() if p != "syn"]
MODES = {"full": {}, "aws-denied": {"aws": True}, "kube-denied": {"kube": True}, "both-denied": {"aws": True, "kube": True}}

# Where the evidence that separates the scenario's id from a neighbour lives only behind the refused
# access, the id is in the ranked list but not first; each entry says why (docs/diagnosis.md, "Partial access").
NOT_FIRST = {
    # the in-VPC prober is told from an outside one only by the VPC's CIDRs (ec2:DescribeVpcs)
    ("hairpin", "aws-denied"): "PPD002", ("hairpin", "both-denied"): "PPD002",
    # mesh config / misplaced annotation are Kubernetes facts; the running gateway alone looks like PPD003
    ("mesh-config-pods-predate", "kube-denied"): "PPD003", ("mesh-config-pods-predate", "both-denied"): "PPD003",
    ("annotation-on-service", "kube-denied"): "PPD003", ("annotation-on-service", "both-denied"): "PPD003",
    ("gateway-api-annotations-dropped", "kube-denied"): "PPD003", ("gateway-api-annotations-dropped", "both-denied"): "PPD003",
    # the ignored annotation is on the Service (Kubernetes); the target group alone looks like PPD004
    ("in-tree-annotation-ignored", "kube-denied"): "PPD004", ("in-tree-annotation-ignored", "both-denied"): "PPD004",
    # an NLB fails open to unhealthy targets: with neither the target group nor the Service readable, requests
    # and the client IP look healthy, and the hypotheses rank the health-check failures that hides before PPD000
    ("hc-path-not-served", "both-denied"): "PPD005",
    ("healthy", "aws-denied"): "PPD005", ("healthy", "both-denied"): "PPD005",
    # network-level ids whose separating facts are AWS-only (security groups, dualstack, PrivateLink endpoint,
    # target health reason): the symptom through the NLB is the catalogue neighbour's
    ("preserve-on-sg-blocks-clients", "aws-denied"): "PPD002", ("preserve-on-sg-blocks-clients", "both-denied"): "PPD002",
    ("dualstack-ipv6-client", "aws-denied"): "PPD001", ("dualstack-ipv6-client", "both-denied"): "PPD001",
    ("privatelink-preserve-on", "aws-denied"): "PPD001", ("privatelink-preserve-on", "both-denied"): "PPD001",
    ("no-listener-on-port", "aws-denied"): "PPD004", ("no-listener-on-port", "both-denied"): "PPD004",
    # the gateway's TLS server names are a Kubernetes fact and the target group's protocol an AWS one: a reset
    # after the client's TLS handshake alone reads like a gateway refusing a missing PROXY header
    ("tls-nlb-no-sni", "both-denied"): "PPD004",
}


def _ranked(findings) -> tuple[list[str], object]:
    decided = [f for f in findings if f.id not in META_IDS and f.superseded_by is None]
    if decided:
        return decided[0].ranked, decided[0]
    hyp = next((f for f in findings if f.id == "PPD093"), None)
    return (hyp.alternatives if hyp else []), hyp


def _diagnose(lab, mode, extra=()):
    config = replace(lab.config, timeouts=TIMEOUTS)
    ctx = DeniedContext(config, **MODES[mode])
    try:
        observations = probe_as_an_operator(config, PROBE_NAMES, list(extra), ctx=ctx)
    finally:
        ctx.close()
    return observations, diagnose(observations)


def check_access_modes(lab, scenario: str, extra_probes=()) -> None:
    """Assert the coverage and partial-access properties on a settled lab of ``scenario``.

    ``extra_probes``: on-demand probes the scenario's finding needs (as the closed-loop test runs them)."""
    expected = load_scenario(scenario).expected_findings[0]
    problems = []
    full_confidence = None
    for mode in MODES:
        observations, findings = _diagnose(lab, mode, extra_probes)
        ids = [f.id for f in findings]
        ranked, top = _ranked(findings)
        if mode == "full":
            full_confidence = getattr(top, "confidence", None)
            explained = {p for f in findings for p in f.explains} | EXPECTED_BY_MODE.get(gateway_mode(FactView(observations))[0] or "", set())
            unexplained = [o.probe for o in observations if o.status.value in ("fail", "error") and o.probe not in explained]
            if unexplained or "PPD090" in ids:
                problems.append(f"{mode}: unexplained {unexplained} / {ids}: "
                                + "; ".join(f.explanation for f in findings if f.id == "PPD090"))
        if "PPD000" in ids and expected != "PPD000":
            problems.append(f"{mode}: PPD000 although {expected}: {ids}")
        first = NOT_FIRST.get((scenario, mode))
        if ranked[:1] == [expected]:
            if mode != "full" and top is not None and full_confidence is not None and top.confidence > full_confidence:
                problems.append(f"{mode}: confidence {top.confidence} above full access {full_confidence}")
        elif not (first and ranked[:1] == [first] and expected in ranked):
            problems.append(f"{mode}: ranked {ranked} ({ids}), expected {expected} first")
    assert not problems, "\n".join(problems)
