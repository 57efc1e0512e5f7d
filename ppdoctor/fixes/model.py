"""Fix plans as data: ordered changes with object, field, before → after, the API call, and the verifying probe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Change:
    """One write. ``kind`` selects the applier; ``payload`` is exactly what is sent."""

    kind: str  # aws-tg-attributes | aws-tg-healthcheck | k8s-merge-patch | k8s-create | k8s-delete
    object: str  # AWS ARN, or Kubernetes "Kind namespace/name"
    field: str  # the field path changed, e.g. metadata.annotations["service.beta…/proxy-protocol"]
    before: Any
    after: Any
    api_call: str  # what will be called, for the preview
    payload: dict[str, Any]
    rollback_payload: dict[str, Any] | None
    verify: str = ""  # probe that shows the effect
    note: str = ""
    status: str = "pending"  # pending | applied | failed | rolled-back | skipped
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "object": self.object, "field": self.field, "before": self.before, "after": self.after,
            "api_call": self.api_call, "verify": self.verify, "note": self.note, "status": self.status,
            "error": self.error, "payload": self.payload, "rollback_payload": self.rollback_payload,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Change":
        return cls(**{k: d.get(k) for k in (
            "kind", "object", "field", "before", "after", "api_call", "payload", "rollback_payload")},
            verify=d.get("verify", ""), note=d.get("note", ""), status=d.get("status", "pending"), error=d.get("error"))


def deployment_patch(ns: str, name: str, *, field: str, before: Any, after: Any, body_after: dict[str, Any],
                     body_before: dict[str, Any], verify: str = "", note: str = "", strategic: bool = True) -> Change:
    """A patch of a Deployment and the patch that undoes it (``body_before`` restores the before-values)."""
    def call(body: dict[str, Any]) -> dict[str, Any]:
        return {"api": "AppsV1Api", "method": "patch_namespaced_deployment", "verb": "patch",
                "resource": "deployments.apps", "kwargs": {"name": name, "namespace": ns, "body": body}}

    return Change(kind="k8s-merge-patch", object=f"Deployment {ns}/{name}", field=field, before=before, after=after,
                  api_call=f"PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}"
                           + (" (strategic merge patch)" if strategic else ""),
                  payload=call(body_after), rollback_payload=call(body_before), verify=verify, note=note)


@dataclass
class FixPlan:
    id: str
    title: str
    changes: list[Change] = field(default_factory=list)
    explanation: str = ""
    window: str = ""  # what breaks, and for how long, if the plan is shortened
    verify: list[str] = field(default_factory=list)  # probes to re-run afterwards
    settle_s: float = 0.0  # how long the change may take to show (bounded wait)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "explanation": self.explanation, "window": self.window,
                "verify": self.verify, "changes": [c.as_dict() for c in self.changes]}

    def preview(self) -> str:
        lines = [f"{self.id}: {self.title}"]
        if self.explanation:
            lines.append(f"  {self.explanation}")
        for i, c in enumerate(self.changes, 1):
            lines.append(f"  {i}. {c.object}")
            lines.append(f"     {c.field}: {c.before!r} → {c.after!r}")
            lines.append(f"     via {c.api_call}" + (f"; verified by `{c.verify}`" if c.verify else ""))
            if c.note:
                lines.append(f"     note: {c.note}")
        if self.window:
            lines.append(f"  window: {self.window}")
        return "\n".join(lines)


FIX_TITLES = {
    "FIX-PP-ENABLE": "Turn PROXY protocol v2 on end to end without an outage",
    "FIX-TG-PRESERVE-OFF": "Turn client IP preservation off on the target group",
    "FIX-GW-PP-ON": "Make the gateway expect PROXY protocol (pod-template annotation)",
    "FIX-TG-PP-ON": "Make the target group send PROXY protocol v2",
    "FIX-HC-TCP": "Health-check the traffic port over TCP",
    "FIX-GW-ROLLOUT": "Restart the gateway pods so they pick up the mesh config",
    "FIX-MOVE-ANNOTATION": "Move proxy.istio.io/config to the pod template",
    "FIX-TRUSTED-HOPS": "Set numTrustedProxies to 0 (nothing trusted in front of the NLB)",
    "FIX-FILTER-ORDER": "Put the PROXY listener filter first (before tls_inspector)",
    # the field catalogue (FIELD.md): builders in plans_conf.py and plans_disc.py
    "FIX-TRUSTED-HOPS-CDN": "Set numTrustedProxies to the number of proxies in front of the NLB",
    "FIX-STATUS-PP-ENV": "Let the status port accept PROXY headers (ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL, Istio ≥ 1.27)",
    "FIX-GW-SERVER-PORT": "Add a Gateway server for the target port (so the gateway listens there)",
    "FIX-GW-HOSTS-WILDCARD": "Let the gateway's TLS server on the NLB's port accept connections without SNI (hosts \"*\")",
    "FIX-GW-NO-REDIRECT": "No https redirect on the gateway port behind the NLB's TLS listener",
    "FIX-PRESTOP-DRAIN": "Give the gateway pods a preStop sleep longer than the NLB's deregistration (and the grace period for it)",
    "FIX-GWAPI-INFRA-ANNOTATION": "Move proxy.istio.io/config under the Gateway's spec.infrastructure.annotations",
}
