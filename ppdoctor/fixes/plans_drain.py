"""Fix plan for PPD021 (rules in diagnosis/rules_drain.py): a preStop sleep that outlasts the deregistration.

The gateway container gets ``lifecycle.preStop`` ``sleep N`` with N longer than both the window in which
the NLB still sends new flows to a deregistered target and the target group's deregistration delay
(``drain.safe_pre_stop``), and the pod a ``terminationGracePeriodSeconds`` that leaves Istio's drain room
after it (EKS Best Practices Guide, "Load Balancing"; aws-load-balancer-controller #1719; istio/istio
#35964). One strategic merge patch on the pod template (containers merge by name): the pods roll once
more — that rollout still loses flows, since the pod being replaced has the old template — and every
rollout after it is lossless. Verified by the rollout probe: a restart with the request stream counts
no failure.
"""

from __future__ import annotations

from typing import Any

from ..constants import ATTR_DEREGISTRATION_DELAY, K8S_TERMINATION_GRACE_DEFAULT_S
from ..drain import gateway_container, pre_stop_sleep, safe_pre_stop
from .model import Change, deployment_patch
from .planner import LiveState, PlanError, _ns_name


def pre_stop_drain(st: LiveState) -> list[Change]:
    template = (st.deployment.get("spec") or {}).get("template") or {}
    container = gateway_container(template)
    name = container.get("name")
    if not name:
        raise PlanError("the gateway Deployment has no named container", hint="check kubernetes.gateway_deployment in the config")
    raw = str(st.attributes.get(ATTR_DEREGISTRATION_DELAY, ""))
    sleep, grace = safe_pre_stop(int(raw) if raw.isdigit() else None)
    spec = template.get("spec") or {}
    grace_before = spec.get("terminationGracePeriodSeconds")
    lifecycle_before = container.get("lifecycle")
    if pre_stop_sleep(container) >= sleep and (grace_before or K8S_TERMINATION_GRACE_DEFAULT_S) >= grace:
        return []
    ns, dep = _ns_name(st.deployment)
    lifecycle_after = {**(lifecycle_before or {}), "preStop": {"exec": {"command": ["sleep", str(sleep)]}}}

    def body(lifecycle: Any, grace_s: Any) -> dict[str, Any]:
        # null removes a field the template did not have (merge semantics within the container entry)
        return {"spec": {"template": {"spec": {"terminationGracePeriodSeconds": grace_s,
                                                "containers": [{"name": name, "lifecycle": lifecycle}]}}}}

    return [deployment_patch(
        ns, dep,
        field=f'spec.template.spec.containers["{name}"].lifecycle.preStop, spec.template.spec.terminationGracePeriodSeconds',
        before={"lifecycle": lifecycle_before, "terminationGracePeriodSeconds": grace_before},
        after={"lifecycle": lifecycle_after, "terminationGracePeriodSeconds": grace},
        body_after=body(lifecycle_after, grace), body_before=body(lifecycle_before, grace_before),
        verify="rollout-lossless",
        note=(f"preStop sleep {sleep} s outlasts the ~120 s in which the NLB still sends new flows to a deregistered "
              f"pod and the deregistration delay; the pods roll (this rollout still loses flows: the old pods lack "
              f"the hook). A distroless proxy image has no sleep binary: use lifecycle.preStop.sleep.seconds "
              f"(Kubernetes 1.30+) there"),
    )]


BUILDERS = {"FIX-PRESTOP-DRAIN": pre_stop_drain}
WINDOWS: dict[str, str] = {
    "FIX-PRESTOP-DRAIN": "the gateway pods roll once more, still without the hook on the old pods: that rollout may lose "
                         "flows; the next ones do not.",
}
