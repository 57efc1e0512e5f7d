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
