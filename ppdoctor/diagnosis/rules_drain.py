"""PPD021, rollout drain: gateway rollouts lose the flows the NLB still sends to the deregistered pods.

Same shape as ``rules.py``. Evidence, whichever is present: measured — the rollout probe restarted the
gateway while a request stream through the NLB counted failures; static — how long a deleted gateway pod
keeps accepting (preStop sleep, Istio's drain, the grace period: kube probe) against how long the NLB
keeps routing to and draining a deregistered target (the target group's deregistration delay: aws probe;
the propagation window: ``constants.NLB_DEREGISTRATION_PROPAGATION_S``).
"""

from __future__ import annotations

from .. import facts as registry
from ..constants import NLB_DEREGISTRATION_PROPAGATION_S
from ..drain import must_serve_s, safe_pre_stop
from .model import FactView, Finding

CATALOGUE = {
    "PPD021": "Gateway rollouts drop connections: the NLB still sends to pods that have stopped",
}

DRAIN_SOURCES = ("istio/istio #35964; aws-load-balancer-controller #1719, #2366; aws/containers-roadmap #470; "
                 'AWS "Edit target group attributes for your Network Load Balancer" (deregistration delay); '
                 'EKS Best Practices Guide, "Load Balancing"')
_FACTS = ["rollout.failures", "rollout.requests", "rollout.failure_classes", "gateway.pre_stop_sleep_s",
          "gateway.termination_drain_s", "gateway.termination_grace_s", "gateway.serves_after_delete_s",
          "tg.deregistration_delay_s"]


def ppd021(f: FactView) -> Finding | None:
    failures = f.get("rollout.failures")
    serves = f.get("gateway.serves_after_delete_s")
    delay = f.get("tg.deregistration_delay_s")
    needed = must_serve_s(delay)
    short = serves is not None and serves < needed
    if undecided_rollout(f):
        return _undecided(f)
    if failures == 0 or (failures is None and not short):
        return None  # a measured lossless rollout, or nothing says the pods stop too early
    sleep, grace = safe_pre_stop(delay)
    if failures:
        requests = f.get("rollout.requests") or 0
        classes = ", ".join(f.get("rollout.failure_classes") or []) or "failures"
        said = f"While the gateway rolled, {failures} of {requests} requests through the NLB failed ({classes}). "
        severity, confidence = "error", 0.95 if short else 0.85 if serves is None else 0.7
    else:
        said = "No rollout was measured (the `rollout` probe restarts the gateway to do so), but the pod template says "
        severity, confidence = "warning", 0.8 if delay is not None else 0.7
    if serves is not None:
        why = (f"a deleted gateway pod keeps accepting for {serves:g} s (preStop sleep {f.get('gateway.pre_stop_sleep_s', 0):g} s, "
               f"then Istio's terminationDrainDuration {f.get('gateway.termination_drain_s', 0):g} s, within "
               f"terminationGracePeriodSeconds {f.get('gateway.termination_grace_s', 0):g} s), while the NLB keeps sending "
               f"new flows to a deregistered target for about {NLB_DEREGISTRATION_PROPAGATION_S} s and drains it for "
               f"deregistration_delay.timeout_seconds = {delay if delay is not None else 'unknown (AWS default 300)'} s. ")
    else:
        why = "the pods stop accepting before the NLB stops sending them new flows (their shutdown timings were not readable). "
    confirm = f.missing("gateway.serves_after_delete_s", "tg.deregistration_delay_s")
    if failures is None:
        confirm.append("run `ppdoctor probe rollout` (it restarts the gateway Deployment) to measure a rollout through the NLB")
    return Finding(
        "PPD021", CATALOGUE["PPD021"], severity, confidence,
        said + why + f"Anything that reaches the old pod after it stops is reset. Give the gateway container a preStop "
        f"sleep longer than both ({sleep} s here, with terminationGracePeriodSeconds {grace}), or lower the delay and "
        f"keep the sleep above ~{NLB_DEREGISTRATION_PROPAGATION_S} s; the controller's pod readiness gate "
        f"(elbv2.k8s.aws/pod-readiness-gate-inject) keeps old pods until new ones are healthy targets. Long-lived "
        f"connections also need TCP keepalive on the listener to survive the drain ({DRAIN_SOURCES}).",
        f.evidence(*_FACTS), confirm, ["FIX-PRESTOP-DRAIN"], [],
        explains=sorted({registry.probe_for(n) for n in _FACTS if f.has(n)} | {"rollout"}),
    )


def _undecided(f: FactView) -> Finding:
    """The rollout was asked for and could not be measured, and the pod template was not readable: whether
    rollouts lose flows is open. Said as such (not "healthy"), with what would decide it."""
    return Finding(
        "PPD021", CATALOGUE["PPD021"], "info", 0.3,
        "The rollout probe was asked for but could not run (" + f.errors["rollout"] + "), and the gateway's pod "
        "template was not readable: whether gateway rollouts lose the flows the NLB still sends to deregistered "
        f"pods is not decided. Between rollouts nothing says anything about it ({DRAIN_SOURCES}).",
        f.evidence("tg.deregistration_delay_s"),
        [*f.missing("gateway.serves_after_delete_s", "rollout.failures")], ["FIX-PRESTOP-DRAIN"], [],
        explains=["rollout"])


def undecided_rollout(f: FactView) -> bool:
    """The operator asked for the rollout probe and it was refused, with nothing else to decide PPD021 from:
    no "healthy" verdict can be given (rules.ppd000 asks this)."""
    return "rollout" in f.errors and not f.has("rollout.failures") and not f.has("gateway.serves_after_delete_s")


def unsettled_rollout(f: FactView) -> tuple[str, list[str]] | None:
    """A rollout in progress, so that what goes through the NLB is a mix of old and new gateway pods: why, and
    the facts that say it; None when nothing says so (PPD094 reports it, rules.ppd000 withholds "healthy").

    Terminating gateway pods deleted less than the propagation window ago (+ the controller's lag) may still get
    new flows; draining targets with the pods unread cannot be timed, so they count too."""
    routed = f.get("gateway.replaced_routed_s")
    if routed:
        names = ", ".join(p.get("name", "?") for p in f.get("gateway.pods") or [] if p.get("deleted"))
        return (f"gateway pod(s) {names or '?'} were replaced and are Terminating; the NLB may send them new flows for "
                f"up to {routed:g} s more (the deregistration reaches every NLB node only within about "
                f"{NLB_DEREGISTRATION_PROPAGATION_S} s)", ["gateway.replaced_routed_s", "gateway.pods"])
    draining = [h for h in f.get("tg.health") or [] if h.get("state") == "draining"]
    if draining and not f.has("gateway.replaced_routed_s"):
        targets = ", ".join(f"{h.get('id')}:{h.get('port')}" for h in draining)
        return (f"targets {targets} are draining (deregistered: a rollout or a scale-down), and without the gateway "
                f"pods (not read) it cannot be told whether the NLB still sends them new flows (up to about "
                f"{NLB_DEREGISTRATION_PROPAGATION_S} s after the deregistration)", ["tg.health", "gateway.pods"])
    return None


RULES = [ppd021]
