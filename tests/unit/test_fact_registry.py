"""Every fact name a probe sets or a rule/fix/screen reads is declared once in ppdoctor/facts.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ppdoctor import facts
from ppdoctor.diagnosis.model import FactView
from ppdoctor.probes.model import Observation

ROOT = Path(__file__).resolve().parents[2] / "ppdoctor"
# literal fact names as probes set them (obs.fact("x.y", …)) and as readers read them (f.get/has/missing/evidence)
_SET = re.compile(r"\.fact\(\s*[\"']([a-z_]+(?:\.[a-z_0-9]+)+)[\"']")
_READ = re.compile(r"\b(?:get|has)\(\s*[\"']((?:tg|hc|routes|nlb|vpc|lb|svc|mesh|envoyfilter|lbc|gateway|via_nlb|xff|forge|syn)"
                   r"\.[a-z_0-9.]+)[\"']")
_LISTED = re.compile(r"[\"']((?:tg|hc|routes|vpc|lb|svc|mesh|envoyfilter|lbc|gateway|via_nlb|xff|forge|syn)\.[a-z_0-9.]+)[\"']")
# not facts: config keys and API resource names that look alike
_NOT_FACTS = {"gateway.direct", "gateway.admin", "gateway.plain", "gateway.ppv2", "gateway.ppv1", "gateway.local"}


def _names(pattern: re.Pattern[str], dirs: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for d in dirs:
        for path in (ROOT / d).rglob("*.py"):
            for m in pattern.finditer(path.read_text()):
                found.setdefault(m.group(1), str(path.relative_to(ROOT)))
    return found


def test_every_fact_a_probe_sets_is_declared():
    names = _names(_SET, ("probes",))
    assert names, "the scan found no fact at all: the pattern is broken"
    assert {n: p for n, p in names.items() if facts.spec(n) is None} == {}


def test_every_fact_the_rules_fixes_and_screens_read_is_declared():
    read = _names(_READ, ("diagnosis", "fixes", "screens", "widgets"))
    listed = _names(_LISTED, ("diagnosis",))  # evidence / missing lists in rules
    names = {**read, **listed}
    assert len(names) > 20
    undeclared = {n: p for n, p in names.items() if n not in _NOT_FACTS and facts.spec(n) is None}
    assert undeclared == {}


def test_indexed_facts_of_further_target_groups_share_the_declaration():
    assert facts.spec("tg[1].pp_v2") is facts.spec("tg.pp_v2")
    assert facts.probe_for("routes[2].private_default") == "aws"


def test_strict_mode_rejects_a_misspelt_fact_on_both_sides():
    assert facts.strict(), "tests run with PPDOCTOR_STRICT_FACTS=1 (tests/conftest.py)"
    with pytest.raises(facts.UnknownFact):
        Observation("envoy").fact("gateway.pp_lvie", True)
    with pytest.raises(facts.UnknownFact):
        FactView.from_values({"tg.pp_v2": True}).get("tg.ppv2")
    with pytest.raises(TypeError):
        Observation("aws").fact("tg.pp_v2", "true")  # the attribute's text, not the bool


def test_every_declaration_names_a_probe_that_exists():
    from ppdoctor.probes import PROBES

    assert {s.probe for s in facts.REGISTRY.values()} <= set(PROBES)


def test_redeclaring_a_fact_for_another_probe_fails():
    with pytest.raises(ValueError):
        facts.declare("tg.pp_v2", bool, "kube", "again")
