"""Fix plans for the configuration traps of issue 14 (rules in diagnosis/rules_conf.py)."""

from __future__ import annotations

from .model import Change
from .planner import LiveState, PlanError, set_trusted_hops

TITLES = {
    "FIX-TRUSTED-HOPS-CDN": "Set numTrustedProxies to the number of proxies in front of the NLB",
}


def trusted_hops_cdn(st: LiveState) -> list[Change]:
    if st.hops_in_front <= 0:
        raise PlanError(
            "ppdoctor does not know how many proxies sit in front of the NLB",
            hint="set nlb.client_headers in the target config to what your CDN adds (e.g. \"X-Forwarded-For: "
                 "203.0.113.7\"), then plan again; or set numTrustedProxies by hand",
        )
    # Verified end to end: the backend sees the client behind the proxy, not the proxy.
    return set_trusted_hops(st, st.hops_in_front, verify="client-ip")


BUILDERS = {
    "FIX-TRUSTED-HOPS-CDN": trusted_hops_cdn,
}
WINDOWS: dict[str, str] = {
    "FIX-TRUSTED-HOPS-CDN": "the gateway pods roll; until then the backend keeps seeing the proxy's address.",
}


def status_pp_env(st: LiveState) -> list[Change]:
    """ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL=true on the gateway container (Istio ≥ 1.27, PR #55986).

    A strategic merge patch on the pod template's container env (merged by name): the pods roll,
    and pilot-agent reads the env at their start. Rollback deletes the entry (or restores its value).
    """
    from ..istioversion import STATUS_PORT_PP_ENV, env_true, image_version, supports_status_port_pp
    from ..probes.proxyversion import PROXY_CONTAINER, _env, _proxy_container

    spec = ((st.deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    container = _proxy_container(spec)
    if container is None:
        raise PlanError("the gateway Deployment has no containers", hint="check kubernetes.gateway_deployment in the config")
    version = image_version(container.get("image"))
    if supports_status_port_pp(version) is False:
        raise PlanError(
            f"the gateway runs Istio {'.'.join(map(str, version))}: ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL exists "
            "from Istio 1.27 on", hint="use FIX-HC-TCP, or upgrade the gateway first")
    before = _env(container, STATUS_PORT_PP_ENV)
    if env_true(before):
        return []
    name = container.get("name") or PROXY_CONTAINER
    ns = (st.deployment.get("metadata") or {}).get("namespace", "")
    dep = (st.deployment.get("metadata") or {}).get("name", "")

    def body(entry: dict) -> dict:
        return {"spec": {"template": {"spec": {"containers": [{"name": name, "env": [entry]}]}}}}

    rollback = {"name": STATUS_PORT_PP_ENV, "$patch": "delete"} if before is None else {"name": STATUS_PORT_PP_ENV, "value": before}
    kwargs = {"name": dep, "namespace": ns}
    return [Change(
        kind="k8s-merge-patch", object=f"Deployment {ns}/{dep}",
        field=f'spec.template.spec.containers["{name}"].env["{STATUS_PORT_PP_ENV}"]', before=before, after="true",
        api_call=f"PATCH /apis/apps/v1/namespaces/{ns}/deployments/{dep} (strategic merge patch)",
        payload={"api": "AppsV1Api", "method": "patch_namespaced_deployment", "verb": "patch",
                 "resource": "deployments.apps", "kwargs": {**kwargs, "body": body({"name": STATUS_PORT_PP_ENV, "value": "true"})}},
        rollback_payload={"api": "AppsV1Api", "method": "patch_namespaced_deployment", "verb": "patch",
                          "resource": "deployments.apps", "kwargs": {**kwargs, "body": body(rollback)}},
        verify="hc-pass",
        note="pilot-agent reads the env at start: changing the pod template rolls the gateway pods",
    )]


TITLES["FIX-STATUS-PP-ENV"] = "Let the status port accept PROXY headers (ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL, Istio ≥ 1.27)"
BUILDERS["FIX-STATUS-PP-ENV"] = status_pp_env
WINDOWS["FIX-STATUS-PP-ENV"] = "the gateway pods roll; targets stay unhealthy until the new pods pass the checks."
