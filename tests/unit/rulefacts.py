"""Hand-built facts for table-driven rule tests: ``facts({"tg.pp_v2": True, ...})`` → FactView.

Names are checked against ppdoctor/facts.py (strict in tests), values against their declared type.
Presets are the fact sets of a whole world state; combine them with ``{**PRESET, "x.y": v}``. For the
engine-level findings, ``obs(probe, status, summary)`` builds an Observation and ``view(...)`` a FactView
over observations. Other engineers: import from here for your rules_<name>.py tables.
"""

from __future__ import annotations

from typing import Any

from ppdoctor.diagnosis.engine import diagnose
from ppdoctor.diagnosis.model import FactView
from ppdoctor.probes.model import Observation, Status


def facts(values: dict[str, Any] | None = None, /, *, errors: dict[str, str] | None = None, **kw: Any) -> FactView:
    """A FactView over ``values`` (dotted names); keyword names use ``__`` for the dot (``tg__pp_v2=True``)."""
    merged = dict(values or {})
    merged.update({k.replace("__", "."): v for k, v in kw.items()})
    return FactView.from_values(merged, errors=errors)


def obs(probe: str, status: str = "ok", summary: str = "", facts_: dict[str, Any] | None = None) -> Observation:
    o = Observation(probe, status=Status(status), summary=summary)
    for name, value in (facts_ or {}).items():
        o.fact(name, value)
    return o


def ids(observations: list[Observation]) -> list[str]:
    return [f.id for f in diagnose(observations) if f.superseded_by is None]


# The gateway as the direct probes see it
REQUIRED = {"gateway.plain_result": "reset", "gateway.ppv2_result": "ok"}
OPTIONAL = {"gateway.plain_result": "ok", "gateway.ppv2_result": "ok"}
OFF = {"gateway.plain_result": "ok", "gateway.ppv2_result": "http-4xx"}
# Through the NLB
VIA_OK_PROBER = {"via_nlb.result": "ok", "via_nlb.status": 200, "via_nlb.client_ip_class": "prober",
                 "via_nlb.client_ip": "203.0.113.5", "via_nlb.prober_ip": "203.0.113.5"}
VIA_OK_NLB = {"via_nlb.result": "ok", "via_nlb.status": 200, "via_nlb.client_ip_class": "nlb",
              "via_nlb.client_ip": "10.0.1.10", "via_nlb.prober_ip": "203.0.113.5"}
# The target group
TG_PP = {"tg.pp_v2": True, "tg.preserve_ip": False, "tg.target_type": "ip", "tg.healthy_count": 1,
         "tg.health": [{"id": "10.0.2.10", "port": 8080, "state": "healthy", "reason": None, "description": None}],
         "hc.protocol": "TCP", "hc.port": "traffic-port"}
TG_PLAIN = {**TG_PP, "tg.pp_v2": False}
HEALTHY = {**TG_PP, **REQUIRED, **VIA_OK_PROBER, "xff.spoofable": False}
