"""Fix plans of the disc catalogue ids: FIX-GWAPI-INFRA-ANNOTATION (PPD027).

Moves ``proxy.istio.io/config`` from the Gateway's ``metadata.annotations`` (ignored by istiod while
``spec.infrastructure.annotations`` is set) into ``spec.infrastructure.annotations``, in one merge patch of
the Gateway resource: istiod regenerates the Deployment, its pod template changes, the gateway pods roll
and start with the PROXY listener filter. Rollback restores both places.
"""

from __future__ import annotations

from typing import Any

from ..constants import PROXY_CONFIG_ANNOTATION
from ..probes.context import ProbeContext
from .model import Change

GROUP, VERSION, PLURAL = "gateway.networking.k8s.io", "v1", "gateways"

WINDOWS = {
    "FIX-GWAPI-INFRA-ANNOTATION": "istiod regenerates the gateway Deployment and its pods roll; while old and new pods "
                                  "coexist some connections may fail.",
}


def read_gateway(ctx: ProbeContext, deployment: dict[str, Any]) -> dict[str, Any] | None:
    """The Gateway API Gateway the gateway Deployment was generated from (None: not a Gateway API gateway)."""
    from ..errors import KubeError
    from ..probes.gatewayapi import GATEWAY_NAME_LABEL

    meta = deployment.get("metadata") or {}
    name = (meta.get("labels") or {}).get(GATEWAY_NAME_LABEL)
    if not name:
        return None
    ns = meta.get("namespace", "")
    try:
        return ctx.kube_call("CustomObjectsApi", "get_namespaced_custom_object", "get", f"{PLURAL}.{GROUP}", ns,
                             group=GROUP, version=VERSION, namespace=ns, plural=PLURAL, name=name)
    except KubeError as exc:
        if getattr(exc, "status", None) == 404:
            return None
        raise


def gwapi_infra_annotation(st: Any) -> list[Change]:
    gw = getattr(st, "gateway_api", None)
    if not gw:
        return []
    meta = gw.get("metadata") or {}
    own = (meta.get("annotations") or {}).get(PROXY_CONFIG_ANNOTATION)
    infra = ((gw.get("spec") or {}).get("infrastructure") or {}).get("annotations")
    if own is None or infra is None or PROXY_CONFIG_ANNOTATION in infra:
        return []
    ns, name = meta.get("namespace", ""), meta.get("name", "")
    # JSON merge patch (RFC 7386): null deletes the key; the rest of both maps stays as it is.
    after = {"metadata": {"annotations": {PROXY_CONFIG_ANNOTATION: None}},
             "spec": {"infrastructure": {"annotations": {PROXY_CONFIG_ANNOTATION: own}}}}
    before = {"metadata": {"annotations": {PROXY_CONFIG_ANNOTATION: own}},
              "spec": {"infrastructure": {"annotations": {PROXY_CONFIG_ANNOTATION: None}}}}
    kwargs = {"group": GROUP, "version": VERSION, "namespace": ns, "plural": PLURAL, "name": name}
    return [Change(
        kind="k8s-merge-patch", object=f"Gateway {ns}/{name}",
        field=f'metadata.annotations["{PROXY_CONFIG_ANNOTATION}"] → spec.infrastructure.annotations',
        before={"metadata.annotations": own, "spec.infrastructure.annotations": None},
        after={"metadata.annotations": None, "spec.infrastructure.annotations": own},
        api_call=f"PATCH /apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}/{name} (merge patch)",
        payload={"api": "CustomObjectsApi", "method": "patch_namespaced_custom_object", "verb": "patch",
                 "resource": f"{PLURAL}.{GROUP}", "kwargs": {**kwargs, "body": after}},
        rollback_payload={"api": "CustomObjectsApi", "method": "patch_namespaced_custom_object", "verb": "patch",
                          "resource": f"{PLURAL}.{GROUP}", "kwargs": {**kwargs, "body": before}},
        verify="client-ip", note="istiod regenerates the Deployment from the Gateway; the gateway pods roll",
    )]


BUILDERS = {"FIX-GWAPI-INFRA-ANNOTATION": gwapi_infra_annotation}
