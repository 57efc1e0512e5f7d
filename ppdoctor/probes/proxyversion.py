"""Facts about the gateway proxy's release and start-up env, for the kube probe.

The release is the ``istio-proxy`` image tag of the running pods (what runs), else the pod
template's (what the next pod gets). ``ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL`` is read by
pilot-agent when the pod starts (istio/istio PR #55986, Istio ≥ 1.27): the template says what
the next pod gets, the pods' own spec what runs.
"""

from __future__ import annotations

from typing import Any

from ..istioversion import STATUS_PORT_PP_ENV, env_true, image_version, supports_status_port_pp
from .model import Observation

PROXY_CONTAINER = "istio-proxy"


def _proxy_container(pod_spec: dict[str, Any]) -> dict[str, Any] | None:
    containers = (pod_spec or {}).get("containers") or []
    return next((c for c in containers if c.get("name") == PROXY_CONTAINER), containers[0] if containers else None)


def _env(container: dict[str, Any] | None, name: str) -> str | None:
    for env in (container or {}).get("env") or []:
        if env.get("name") == name:
            return str(env.get("value", ""))
    return None


def add_proxy_facts(obs: Observation, deployment: dict[str, Any], pods: list[dict[str, Any]]) -> None:
    template = _proxy_container(((deployment.get("spec") or {}).get("template") or {}).get("spec") or {})
    running = [_proxy_container(p.get("spec") or {}) for p in pods]
    running = [c for c in running if c]
    images = [c.get("image") for c in running] or [(template or {}).get("image")]
    versions = [image_version(i) for i in images]
    known = [v for v in versions if v]
    oldest = min(known) if known and len(known) == len(versions) else None
    obs.evidence["proxy_images"] = sorted({str(i) for i in images})
    obs.fact("gateway.istio_version", ".".join(map(str, oldest)) if oldest else None,
             "" if oldest else f"release not readable from the image tag(s): {', '.join(map(str, images))}")
    obs.fact("gateway.status_pp_env_supported", supports_status_port_pp(oldest))
    obs.fact("gateway.status_pp_env", env_true(_env(template, STATUS_PORT_PP_ENV)))
    if running:
        obs.fact("gateway.status_pp_env_running", all(env_true(_env(c, STATUS_PORT_PP_ENV)) for c in running))
