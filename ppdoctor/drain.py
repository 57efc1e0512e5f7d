"""How long a gateway pod keeps serving after it is told to stop, read from its pod template (PPD021).

Kubernetes runs the container's ``lifecycle.preStop`` hook first, then sends SIGTERM; pilot-agent
answers SIGTERM by draining Envoy for ``terminationDrainDuration`` and stopping it; the kubelet kills
whatever still runs when ``terminationGracePeriodSeconds`` end (kubernetes.io "Pod Lifecycle" →
"Termination of Pods"; EKS Best Practices Guide, "Load Balancing"). Meanwhile the NLB may still send new
flows to the deregistered pod for a while (``constants.NLB_DEREGISTRATION_PROPAGATION_S``): a pod that stops
accepting before that loses them (istio/istio #35964, aws-load-balancer-controller #1719).

Pure functions over manifests (dicts as the Kubernetes API returns them): the lab, the kube probe,
the rule and the fix plan share them. Imports nothing heavy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping

from .constants import (
    ISTIO_TERMINATION_DRAIN_DEFAULT_S,
    K8S_TERMINATION_GRACE_DEFAULT_S,
    MESH_DEFAULT_CONFIG,
    NLB_DEFAULT_DEREGISTRATION_DELAY_S,
    NLB_DEREGISTRATION_PROPAGATION_S,
    PROXY_CONFIG_ANNOTATION,
)

# The margin a fix adds above what it must outlast (a deregistration API call, a poll of the controller).
FIX_MARGIN_S = 10
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


@dataclass(frozen=True)
class PodShutdown:
    """What the pod template says about stopping: seconds (unscaled), as written."""

    pre_stop_sleep_s: float  # 0: no preStop sleep
    drain_s: float  # pilot-agent's terminationDrainDuration
    grace_s: float  # terminationGracePeriodSeconds

    @property
    def serves_for_s(self) -> float:
        """How long after deletion the pod still accepts connections: preStop, then the drain, capped by the grace period."""
        return min(self.pre_stop_sleep_s + self.drain_s, self.grace_s)


def parse_duration(value: Any) -> float | None:
    """A protobuf/Go duration ("5s", "1m", "300ms") or a number of seconds; None when unreadable."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    m = _DURATION.match(str(value)) if value is not None else None
    return float(m.group(1)) * _UNIT[m.group(2)] if m else None


def pre_stop_sleep(container: Mapping[str, Any]) -> float:
    """Seconds a container's preStop hook sleeps: ``sleep: {seconds}`` (Kubernetes 1.30+) or an exec of
    ``sleep N`` (alone or in ``sh -c``); 0 without a hook, or for a hook that does something else."""
    hook = ((container.get("lifecycle") or {}).get("preStop")) or {}
    seconds = (hook.get("sleep") or {}).get("seconds")
    if isinstance(seconds, (int, float)):
        return float(seconds)
    command = " ".join(str(c) for c in ((hook.get("exec") or {}).get("command") or []))
    found = re.findall(r"\bsleep\s+(\d+(?:\.\d+)?)", command)
    return max((float(s) for s in found), default=0.0)


def gateway_container(template: Mapping[str, Any]) -> Mapping[str, Any]:
    containers = ((template.get("spec") or {}).get("containers")) or []
    return next((c for c in containers if c.get("name") == "istio-proxy"), containers[0] if containers else {})


def pod_shutdown(template: Mapping[str, Any], mesh: Mapping[str, Any] | None = None) -> PodShutdown:
    """The shutdown timings of a Deployment's pod template (and the mesh's ProxyConfig defaults)."""
    spec = template.get("spec") or {}
    annotations = ((template.get("metadata") or {}).get("annotations")) or {}
    drain = parse_duration(((mesh or {}).get(MESH_DEFAULT_CONFIG) or {}).get("terminationDrainDuration"))
    from .istioconfig import parse_proxy_config

    proxy_config = parse_proxy_config(annotations.get(PROXY_CONFIG_ANNOTATION))[0] or {}  # JSON or YAML, as Istio reads it
    if "terminationDrainDuration" in proxy_config:
        drain = parse_duration(proxy_config["terminationDrainDuration"]) or drain
    grace = spec.get("terminationGracePeriodSeconds")
    return PodShutdown(
        pre_stop_sleep_s=pre_stop_sleep(gateway_container(template)),
        drain_s=ISTIO_TERMINATION_DRAIN_DEFAULT_S if drain is None else drain,
        grace_s=float(grace) if isinstance(grace, (int, float)) else float(K8S_TERMINATION_GRACE_DEFAULT_S),
    )


def must_serve_s(deregistration_delay_s: float | None) -> float:
    """How long a deregistered pod must keep accepting: new flows arrive for the propagation window, and
    flows already open need the deregistration delay to finish (EKS Best Practices Guide, "Load Balancing")."""
    delay = NLB_DEFAULT_DEREGISTRATION_DELAY_S if deregistration_delay_s is None else deregistration_delay_s
    return float(max(NLB_DEREGISTRATION_PROPAGATION_S, delay))


def safe_pre_stop(deregistration_delay_s: float | None) -> tuple[int, int]:
    """(preStop sleep, terminationGracePeriodSeconds) a fix sets: longer than what the pod must outlast,
    and a grace period that leaves Istio's drain room after it."""
    sleep = int(must_serve_s(deregistration_delay_s)) + FIX_MARGIN_S
    return sleep, sleep + ISTIO_TERMINATION_DRAIN_DEFAULT_S + FIX_MARGIN_S


# --- a rollout in progress ------------------------------------------------------------------------------------

# Between the controller's deregistration and the pod's deletion the load balancer controller lags a reconcile;
# the window a replaced pod may get new flows is counted from its deletion with this allowance.
DEREGISTRATION_LAG_S = 20
DRAINING = "draining"


def in_service(health: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """DescribeTargetHealth's descriptions without the draining targets.

    AWS lists a deregistered target as ``draining`` for the deregistration delay (ELB API Reference,
    "TargetHealth"; "Deregistration delay"): it is no longer health-checked and is not a target to probe,
    count as unhealthy or map to a serving pod."""
    return [h for h in health if ((h.get("TargetHealth") or {}).get("State")) != DRAINING]


def parse_time(value: Any) -> datetime | None:
    """A Kubernetes timestamp (RFC 3339, "Z" for UTC) or a datetime; None when unreadable."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def deleted_at(pod: Mapping[str, Any]) -> datetime | None:
    """When a Terminating pod was deleted: its deletionTimestamp (deletion + grace) minus the grace period; None
    for a pod that is not being deleted (kubernetes.io, "Pod Lifecycle" → "Termination of Pods")."""
    meta = pod.get("metadata") or {}
    stamp = parse_time(meta.get("deletionTimestamp"))
    if stamp is None:
        return None
    grace = meta.get("deletionGracePeriodSeconds")
    return stamp - timedelta(seconds=int(grace)) if isinstance(grace, int) else stamp


def replaced_routed_s(pods: list[Mapping[str, Any]], now: datetime, time_scale: float = 1.0) -> float:
    """Seconds from ``now`` until the NLB stops sending new flows to the Terminating pods (0: none, or past):
    deletion + the controller's lag + the deregistration's propagation window, times the lab's time factor
    (1 against AWS)."""
    window = timedelta(seconds=(NLB_DEREGISTRATION_PROPAGATION_S + DEREGISTRATION_LAG_S) * time_scale)
    ends = [when + window for pod in pods if (when := deleted_at(pod)) is not None]
    return max([0.0, *((end - now).total_seconds() for end in ends)])
