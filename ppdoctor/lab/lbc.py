"""The lab's AWS Load Balancer Controller: reconciles the gateway Service's annotations into the target group.

Only what ppdoctor's diagnosis depends on is modelled (aws-load-balancer-controller
``docs/guide/service/annotations.md``):
- the controller manages a Service whose ``aws-load-balancer-type`` is ``external``
  (or ``nlb-ip``, the legacy value) when it is installed; it reconciles on Service
  events, so a direct ``ModifyTargetGroupAttributes`` survives only until the next one;
- ``aws-load-balancer-proxy-protocol: "*"`` → ``proxy_protocol_v2.enabled=true``
  (absent → false), ``aws-load-balancer-target-group-attributes`` (comma-separated
  ``key=value``) → the rest of the attributes;
- ``aws-load-balancer-healthcheck-{protocol,port,path}`` → the health check.
The in-tree provider (``aws-load-balancer-type: nlb`` without the controller) never
sets proxy protocol on NLB target groups, so nothing is reconciled for it.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..drain import in_service

from ..constants import ANN_HC_PATH as HC_PATH
from ..constants import ANN_HC_PORT as HC_PORT
from ..constants import ANN_HC_PROTOCOL as HC_PROTOCOL
from ..constants import ANN_PROXY_PROTOCOL as PROXY_PROTOCOL
from ..constants import ANN_TG_ATTRIBUTES as TG_ATTRIBUTES
from ..constants import ANN_TYPE as LB_TYPE


def managed_by_controller(service: Mapping[str, Any], *, controller_installed: bool) -> bool:
    annotations = (service.get("metadata") or {}).get("annotations") or {}
    return controller_installed and annotations.get(LB_TYPE) in ("external", "nlb-ip")


def parse_attribute_list(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, val = item.partition("=")
        if sep:
            out[key.strip()] = val.strip()
    return out


def desired_target_group(service: Mapping[str, Any], port_map: Mapping[int, int]) -> tuple[dict[str, str], dict[str, Any]]:
    """(attributes, health-check kwargs for ModifyTargetGroup) the controller would set."""
    annotations = (service.get("metadata") or {}).get("annotations") or {}
    attributes = parse_attribute_list(annotations.get(TG_ATTRIBUTES, ""))
    attributes["proxy_protocol_v2.enabled"] = "true" if annotations.get(PROXY_PROTOCOL) == "*" else attributes.get(
        "proxy_protocol_v2.enabled", "false"
    )
    health: dict[str, Any] = {}
    if HC_PROTOCOL in annotations:
        health["HealthCheckProtocol"] = annotations[HC_PROTOCOL].upper()
    if HC_PORT in annotations:
        port = annotations[HC_PORT]
        if port.isdigit():
            # Container port numbers of the chart map to the lab's real ports.
            port = str(port_map.get(int(port), int(port)))
        health["HealthCheckPort"] = port
    if HC_PATH in annotations and health.get("HealthCheckProtocol", "HTTP") != "TCP":
        health["HealthCheckPath"] = annotations[HC_PATH]
    return attributes, health


def reconcile(elbv2: Any, tg_arn: str, service: Mapping[str, Any], port_map: Mapping[int, int]) -> dict[str, Any]:
    """Apply the Service's annotations to the target group through the ELBv2 API; returns what was set."""
    attributes, health = desired_target_group(service, port_map)
    elbv2.modify_target_group_attributes(
        TargetGroupArn=tg_arn,
        Attributes=[{"Key": k, "Value": v} for k, v in sorted(attributes.items())],
    )
    if health:
        if health.get("HealthCheckProtocol") == "TCP":
            health.pop("HealthCheckPath", None)
        elbv2.modify_target_group(TargetGroupArn=tg_arn, **health)
    return {"attributes": attributes, "health_check": health}


def move_targets(elbv2: Any, tg_arn: str, old_ip: str, new_ip: str) -> list[int]:
    """A pod replaced by one at ``new_ip``: register it on the ports the old pod had, then deregister the old pod
    (the controller reconciles targets from the Service's endpoints, target-type ip). Returns the ports moved."""
    # the controller leaves draining targets alone: they are already deregistered
    described = in_service(elbv2.describe_target_health(TargetGroupArn=tg_arn)["TargetHealthDescriptions"])
    ports = sorted({int(d["Target"]["Port"]) for d in described if d["Target"]["Id"] == old_ip})
    if ports and old_ip != new_ip:
        elbv2.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": new_ip, "Port": p} for p in ports])
        elbv2.deregister_targets(TargetGroupArn=tg_arn, Targets=[{"Id": old_ip, "Port": p} for p in ports])
    return ports
