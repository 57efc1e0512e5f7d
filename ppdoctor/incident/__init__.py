"""Incident records: everything that happens to one target during one incident, on disk, shared by every process.

UI-free: the session appends to it, the CLI manages it (``ppdoctor incident``), the report reads it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from .store import (
    IncidentError,
    IncidentInfo,
    IncidentLog,
    Problem,
    ReadResult,
    TargetIncidents,
    all_targets,
    close,
    state_dir,
    summarize,
)

__all__ = [
    "IncidentError",
    "IncidentInfo",
    "IncidentLog",
    "Problem",
    "ReadResult",
    "TargetIncidents",
    "all_targets",
    "close",
    "state_dir",
    "summarize_log",
    "target_identity",
    "incidents_for",
    "open_current",
]


def _nlb_name(config: Any) -> str:
    nlb = config.nlb
    if nlb.name:
        return nlb.name
    # arn:aws:elasticloadbalancing:REGION:ACCOUNT:loadbalancer/net/NAME/ID
    m = re.search(r":loadbalancer/(?:net|app)/([^/]+)/", nlb.arn or "")
    return m.group(1) if m else ""


def target_identity(config: Any) -> tuple[str, str, str]:
    """(key, label, instance) of a target.

    The key stays the same while the target does: the NLB by name (or the name inside its ARN) with
    its region and listener port, and the gateway (kube context, namespace, deployment); without an
    NLB name, the address clients use; without that, the config file. ``instance`` is the NLB ARN,
    which changes when the load balancer is recreated under the same name.
    """
    kube = config.kubernetes
    gateway = f"{kube.context or 'default-context'}/{kube.namespace}/{kube.gateway_deployment}"
    name = _nlb_name(config)
    if name:
        region = config.aws.region or "default-region"
        label = f"NLB {name} ({region}) :{config.nlb.listener_port} → gateway {gateway}"
    elif config.nlb.address:
        label = f"{config.nlb.address} → gateway {gateway}"
    else:
        label = f"config {config.path or config.name}"
    slug = (
        re.sub(r"[^A-Za-z0-9]+", "-", name or config.nlb.address or config.name or "target").strip("-")[:40] or "target"
    )
    key = f"{slug}-{hashlib.sha256(label.encode()).hexdigest()[:10]}"
    return key, label, config.nlb.arn or ""


def incidents_for(config: Any) -> TargetIncidents:
    key, label, _ = target_identity(config)
    return TargetIncidents(key, label)


def open_current(config: Any, *, by: str = "") -> IncidentLog:
    """The target's open incident, opened now if there is none (or the NLB was replaced)."""
    key, label, instance = target_identity(config)
    meta = {"instance": instance, "config": config.path, "name": config.name}
    log = TargetIncidents(key, label).current(create=True, by=by, meta=meta)
    assert log is not None
    return log


def summarize_log(log: IncidentLog) -> IncidentInfo:
    return summarize(log)
