"""The rule engine: a view over the facts of a run, the Finding type, and ranking."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ..probes.model import Fact, Observation

SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2, "ok": 3}

# Which probe establishes which fact prefix (for "run X to confirm").
FACT_SOURCES = {
    "tg.": "aws", "hc.would_pass": "health", "hc.": "aws", "routes.": "aws", "nlb.private_ips": "aws",
    "vpc.": "aws", "lb.": "aws", "svc.": "kube", "mesh.": "kube", "envoyfilter.": "kube", "lbc.": "kube",
    "gateway.pp_pod_template": "kube", "gateway.proxy_config_misplaced": "kube", "gateway.pods": "kube",
    "gateway.num_trusted_proxies": "kube", "gateway.pp_configured": "kube",
    "gateway.plain": "direct-plain", "gateway.ppv2": "direct-ppv2", "gateway.ppv1": "direct-ppv1",
    "gateway.local": "direct-local", "gateway.honours_pp_source": "direct-ppv2",
    "gateway.": "envoy", "via_nlb.": "http-via-nlb", "xff.": "xff-forge", "forge.": "xff-forge",
    "nlb.": "tcp", "syn.": "syn", "sg.": "sg", "privatelink.": "privatelink",
}


def probe_for(fact: str) -> str:
    for prefix, probe in FACT_SOURCES.items():
        if fact.startswith(prefix):
            return probe
    return "all probes"


@dataclass
class Finding:
    id: str
    title: str
    severity: str
    confidence: float
    explanation: str
    evidence: list[dict[str, Any]] = field(default_factory=list)
    confirm: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    supersedes: list[str] = field(default_factory=list)
    superseded_by: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = {
            "id": self.id, "severity": self.severity, "confidence": round(self.confidence, 2), "title": self.title,
            "explanation": self.explanation, "evidence": self.evidence, "fixes": self.fixes,
            "confirm": self.confirm,
        }
        if self.superseded_by:
            d["superseded_by"] = self.superseded_by
        return d


class FactView:
    """Facts of a run by name; remembers which ones a rule used so they become its evidence."""

    def __init__(self, observations: Iterable[Observation]) -> None:
        self.facts: dict[str, Fact] = {}
        self.ran: set[str] = set()
        self.errors: dict[str, str] = {}
        for obs in observations:
            self.ran.add(obs.probe)
            if obs.status.value == "error":
                self.errors[obs.probe] = obs.summary
            self.facts.update(obs.facts)

    def has(self, name: str) -> bool:
        return name in self.facts and self.facts[name].value is not None

    def get(self, name: str, default: Any = None) -> Any:
        fact = self.facts.get(name)
        return default if fact is None or fact.value is None else fact.value

    def evidence(self, *names: str) -> list[dict[str, Any]]:
        out = []
        for name in names:
            fact = self.facts.get(name)
            if fact is not None and fact.value is not None:
                ev = {"fact": name, "value": fact.value, "source": fact.source}
                if fact.note:
                    ev["note"] = fact.note
                out.append(ev)
        return out

    def missing(self, *names: str) -> list[str]:
        """'run `probe` to confirm' lines for facts not established yet."""
        lines = []
        for name in names:
            if not self.has(name):
                probe = probe_for(name)
                why = f" ({self.errors[probe]})" if probe in self.errors else ""
                line = f"run `{probe}` to establish {name}{why}"
                if line not in lines:
                    lines.append(line)
        return lines


def gateway_mode(f: FactView) -> tuple[str | None, list[str]]:
    """Does the gateway expect PROXY protocol: "required", "optional", "off", or None (unknown)?

    Decided by the differential direct probes when they ran; otherwise by the running
    Envoy config (envoy probe). Returns the mode and the facts that decided it.
    """
    plain, ppv2 = f.get("gateway.plain_result"), f.get("gateway.ppv2_result")
    if plain is not None and ppv2 is not None:
        plain_ok, ppv2_ok = plain == "ok", ppv2 == "ok"
        if plain_ok and ppv2_ok:
            return "optional", ["gateway.plain_result", "gateway.ppv2_result"]
        if ppv2_ok and plain in ("reset", "empty-reply", "timeout-response"):
            return "required", ["gateway.plain_result", "gateway.ppv2_result"]
        if plain_ok and ppv2 == "http-4xx":
            return "off", ["gateway.plain_result", "gateway.ppv2_result"]
    if f.has("gateway.pp_live"):
        if not f.get("gateway.pp_live"):
            return "off", ["gateway.pp_live"]
        return ("optional" if f.get("gateway.pp_allow_without") else "required"), ["gateway.pp_live", "gateway.pp_allow_without"]
    return None, []


Rule = Callable[[FactView], "Finding | None"]


def diagnose(observations: Iterable[Observation], rules: Iterable[Rule] | None = None) -> list[Finding]:
    from .rules import RULES

    view = FactView(observations)
    findings = [finding for rule in (rules or RULES) if (finding := rule(view)) is not None]
    by_id = {f.id: f for f in findings}
    for finding in findings:
        for other in finding.supersedes:
            if other in by_id and by_id[other].superseded_by is None:
                by_id[other].superseded_by = finding.id
    if any(f.severity in ("error", "warning") for f in findings):
        findings = [f for f in findings if f.id != "PPD000"]
    findings.sort(key=lambda f: (f.superseded_by is not None, SEVERITY_RANK[f.severity], -f.confidence, f.id))
    return findings


INCONCLUSIVE = 3


def exit_code(findings: list[Finding]) -> int:
    """0 when only PPD000/info, 1 for warnings, 2 for errors, 3 when no rule could decide.

    No finding is not "healthy": PPD000 says that. A script must not read "the probes were
    denied / the gateway is mid-rollout" as a pass.
    """
    if not findings:
        return INCONCLUSIVE
    severities = {f.severity for f in findings}
    if "error" in severities:
        return 2
    if "warning" in severities:
        return 1
    return 0
