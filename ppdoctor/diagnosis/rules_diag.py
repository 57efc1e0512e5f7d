"""PPD016 (health check on a path the probed port does not serve) and the engine-level findings PPD090–PPD099.

Engine-level ("meta") rules see the run's facts *and* the findings of the catalogue rules:
they say what the catalogue rules left open — a failing observation nothing explains
(PPD090), probes that could not find out (PPD091), targets whose health is not decided yet
(PPD092), and, when access is missing and no rule decided, hypotheses ranked from the
NLB-level evidence (PPD093).
"""

from __future__ import annotations

from .. import facts as registry
from ..constants import HC_TRAFFIC_PORT, REASON_INITIAL_HEALTH_CHECKING, STATUS_PATH
from ..text import clean
from . import rules_drain
from .model import Finding, FactView, gateway_mode

CATALOGUE = {
    "PPD016": "The health check asks for a path the probed port does not serve",
    "PPD090": "Failing observations that no finding explains",
    "PPD091": "Probes that could not find out",
    "PPD092": "Not decided yet: targets still in their initial health checks",
    "PPD093": "Hypotheses ranked from the NLB-level evidence (access missing)",
    "PPD094": "Not settled: a gateway rollout is in progress",
}
META_IDS = ("PPD090", "PPD091", "PPD092", "PPD093", "PPD094")


def _finding(fid: str, severity: str, confidence: float, explanation: str, f: FactView, facts: list[str], **kw) -> Finding:
    evidence = f.evidence(*facts)
    explains = sorted({registry.probe_for(e["fact"]) for e in evidence} | set(kw.pop("explains", ())))
    return Finding(fid, CATALOGUE[fid], severity, confidence, explanation, evidence, explains=explains, **kw)


def ppd016(f: FactView) -> Finding | None:
    """HTTP(S) check on the traffic port with a path the gateway's listener does not route: 404, targets unhealthy.

    The traffic listener serves what the Gateway/VirtualServices route; ``/healthz/ready`` is served only by
    the status listener (15021). The check must hit a path the port serves, or use the status port without
    PROXY protocol, or be TCP.
    """
    if f.has("hc.protocol"):
        proto, port, path = f.get("hc.protocol"), f.get("hc.port"), f.get("hc.path")
        hc_facts = ["hc.protocol", "hc.port", "hc.path"]
    else:
        ann = f.get("svc.hc_annotations") or {}
        proto = (ann.get("healthcheck-protocol") or "").upper() or None
        port, path = ann.get("healthcheck-port"), ann.get("healthcheck-path") or "/"
        hc_facts = ["svc.hc_annotations"]
    if proto not in ("HTTP", "HTTPS") or port != HC_TRAFFIC_PORT:
        return None
    status, would_pass = f.get("hc.check_status"), f.get("hc.would_pass")
    if status is not None:
        if would_pass is not False or not 400 <= status < 500:
            return None
        confidence = 0.95 if status == 404 else 0.8
    elif would_pass is False:
        confidence = 0.7
    elif would_pass is None and path == STATUS_PATH:
        # Partial access (no health probe): Istio's readiness path is served on the status port only.
        confidence = 0.55
    else:
        return None
    got = f"HTTP {status}" if status is not None else "a failing answer" if would_pass is False else "unknown"
    return _finding("PPD016", "error", confidence,
                    f"The target group health-checks {proto} {path} on the traffic port; the gateway's traffic listener "
                    f"serves only routed paths ({got}), so every target is marked unhealthy ({STATUS_PATH} is served by "
                    "the status port 15021 only). Use a TCP check on the traffic port, or a path that port serves; the "
                    "status port works only without PROXY protocol (PPD005).",
                    f, [*hc_facts, "hc.check_status", "hc.check_port", "hc.would_pass", "tg.health"],
                    fixes=["FIX-HC-TCP"], explains=["aws", "health"],
                    confirm=f.missing("hc.would_pass", "hc.check_status"))


RULES = [ppd016]


# --- engine-level findings ------------------------------------------------------------------------

def _obs_line(obs) -> str:
    line = f"{obs.probe} ({obs.status.value}): {clean(obs.summary, limit=240)}"
    hint = (obs.error or {}).get("hint") if isinstance(obs.error, dict) else None
    return line + (f" → {clean(hint, limit=200)}" if hint else "")


# What to check next when a probe fails and no rule explains it.
NEXT_STEP = {
    "aws": "look at the target health reasons (`ppdoctor probe aws -v`) and the target group's health check",
    "health": "compare the health check's protocol/port/path with what that port of the gateway serves",
    "http-via-nlb": "compare with direct-plain / direct-ppv2: does the gateway answer when the NLB is not in the path?",
    "xff-forge": "check numTrustedProxies against what really sits in front of the NLB",
    "tcp": "check the NLB listener, its security groups and that it has healthy targets",
    "syn": "a foreign SYN-ACK means an asymmetric return path: check preservation and the targets' routes",
    "kube": "read the gateway Service/Deployment annotations the kube probe flagged",
    "envoy": "read the gateway's listeners in `ppdoctor probe envoy -v`",
}


# The differential direct-* probes that fail *by design* once the gateway's PROXY mode is known: a
# gateway that requires PROXY protocol resets a plain GET; one without the filter answers 400 to a header.
EXPECTED_BY_MODE = {"required": {"direct-plain"}, "off": {"direct-ppv2", "direct-ppv1", "direct-local"}, "optional": set()}


def ppd090(f: FactView, findings: list[Finding]) -> Finding | None:
    explained = {p for fd in findings for p in fd.explains}
    explained |= EXPECTED_BY_MODE.get(gateway_mode(f)[0] or "", set())
    open_ = [o for o in f.failing() if o.probe not in explained]
    if not open_:
        return None
    steps = []
    for o in open_:
        step = NEXT_STEP.get(o.probe) or ("compare with the other direct-* probes" if o.probe.startswith("direct-") else "")
        if step:
            steps.append(f"{o.probe}: {step}")
    evidence = [{"fact": f"probe {o.probe}", "value": clean(o.summary, limit=300), "source": o.probe} for o in open_]
    return Finding("PPD090", CATALOGUE["PPD090"], "warning", 0.9,
                   "No catalogue rule explains these failing observations: " + "; ".join(_obs_line(o) for o in open_),
                   evidence, confirm=steps, explains=[o.probe for o in open_])


def ppd091(f: FactView, findings: list[Finding]) -> Finding | None:
    # a probe that errored, or one that kept what it read but was refused some calls (evidence "unavailable")
    blocked = [o for o in f.observations if o.status.value == "error" or o.evidence.get("unavailable")]
    if not blocked:
        return None
    evidence = [{"fact": f"probe {o.probe}", "value": clean(o.summary, limit=300), "source": o.probe} for o in blocked]
    hints = [clean((o.error or {}).get("hint") or "", limit=240) for o in blocked if isinstance(o.error, dict)]
    hints += [clean(g.get("hint") or "", limit=240) for o in blocked for g in o.evidence.get("unavailable") or []]
    hints = list(dict.fromkeys(hints))
    return Finding("PPD091", CATALOGUE["PPD091"], "info", 1.0,
                   "These probes could not find out (or were refused part of what they read), so the findings above rest on the other evidence (their "
                   "confidence says how much): " + "; ".join(_obs_line(o) for o in blocked),
                   evidence, confirm=[h for h in hints if h], explains=[o.probe for o in blocked])


def ppd092(f: FactView, findings: list[Finding]) -> Finding | None:
    initial = [h for h in (f.get("tg.health") or []) if h.get("state") == "initial"]
    if not initial:
        return None
    interval, threshold = f.get("hc.interval_s"), f.get("hc.healthy_threshold")
    when = (f"the check decides after {threshold} consecutive passes × {interval} s = {threshold * interval} s from "
            "registration (or from the last change of the health check)" if interval and threshold else
            "the decision time is unknown (the target group's health-check interval and threshold were not read)")
    targets = ", ".join(f"{h.get('id')}:{h.get('port')}" for h in initial)
    reasons = sorted({h.get("reason") or REASON_INITIAL_HEALTH_CHECKING for h in initial})
    return _finding("PPD092", "info", 0.95,
                    f"Targets {targets} are still in state initial ({', '.join(reasons)}): the NLB has not decided "
                    f"whether they are healthy; {when}. Diagnose again after that.",
                    f, ["tg.health", "hc.interval_s", "hc.healthy_threshold"], explains=["aws"])


def ppd094(f: FactView, findings: list[Finding]) -> Finding | None:
    """A rollout in progress: requests through the NLB may reach the pods being replaced (old configuration)."""
    unsettled = rules_drain.unsettled_rollout(f)
    if unsettled is None:
        return None
    why, facts = unsettled
    wait = f.get("gateway.replaced_routed_s")
    when = f"Diagnose again in {wait:g} s" if wait else "Diagnose again once the targets are no longer draining"
    return _finding("PPD094", "info", 0.9,
                    f"Not settled: {why}. Until then what goes through the NLB is a mix of the old and the new gateway "
                    f"pods, so no verdict from it is final, and PPD000 is withheld. {when} "
                    f"({rules_drain.DRAIN_SOURCES}).",
                    f, [*facts, "tg.health"], explains=["http-via-nlb"])


# NLB-level symptom → catalogue ids it is typical of, most likely first (KNOWLEDGE.md catalogue).
HYPOTHESES = {
    "http-4xx": ["PPD003", "PPD006", "PPD007", "PPD027"],
    "reset": ["PPD004", "PPD008", "PPD028"],
    "empty-reply": ["PPD004", "PPD008", "PPD028"],
    "timeout-response": ["PPD002", "PPD015", "PPD017"],
    "timeout-connect": ["PPD002", "PPD015", "PPD017"],
}

# Health-check failures the request path does not show (the NLB fails open), most likely first.
HIDDEN_BY_FAIL_OPEN = ["PPD005", "PPD016", "PPD014"]


def ppd093(f: FactView, findings: list[Finding]) -> Finding | None:
    """With access missing and no catalogue rule deciding, rank the ids the NLB-level symptom is typical of."""
    if any(fd.id not in META_IDS for fd in findings) or not f.errors:
        return None
    via = f.get("via_nlb.result")
    looks_healthy = via == "ok" and f.get("via_nlb.client_ip_class") in ("prober", "external")
    if looks_healthy:
        # The path works and keeps the client's address, yet an NLB whose targets all fail their health checks
        # fails open and still routes to them (AWS, "Health checks for Network Load Balancer target groups"):
        # what the refused access hides comes first, PPD000 only last, never as the head of the list.
        ranked = [*HIDDEN_BY_FAIL_OPEN, "PPD000"]
        said = (f"through the NLB the request succeeded and the gateway saw the client's own address, but the target "
                f"health was not read and an NLB fails open to unhealthy targets, so the path alone cannot rule out "
                f"{', '.join(HIDDEN_BY_FAIL_OPEN)}; PPD000 only if the refused reads show none of them")
    elif via == "ok":
        ranked = ["PPD001", "PPD012", "PPD019", "PPD022"]
        said = f"through the NLB the request ended as {via}, which is typical of {', '.join(ranked)} (most likely first)"
    else:
        ranked = HYPOTHESES.get(via or "", [])
        said = f"through the NLB the request ended as {via}, which is typical of {', '.join(ranked)} (most likely first)"
    if not ranked:
        return None
    return _finding("PPD093", "warning", 0.4,
                    f"Without the refused access no rule could decide; {said}. Grant the access PPD091 names to decide.",
                    f, ["via_nlb.result", "via_nlb.status", "via_nlb.client_ip_class"],
                    alternatives=ranked, explains=["http-via-nlb", "xff-forge"])


META_RULES = [ppd092, ppd094, ppd093, ppd091, ppd090]
