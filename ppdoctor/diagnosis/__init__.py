"""Diagnosis: facts from observations → findings with catalogue ids (KNOWLEDGE.md, PPD000–PPD016; engine-level PPD090–PPD099).

Rules read facts only. The direction of a PROXY-protocol mismatch is decided from
differential evidence — the same request sent straight to a gateway pod plain and behind a
PPv2 header — or from the running Envoy config, never from one symptom string. A rule that
lacks a fact says which probe would supply it.
"""

from __future__ import annotations

from .engine import CATALOGUE, Finding, FactView, diagnose, gateway_mode

__all__ = ["Finding", "FactView", "diagnose", "gateway_mode", "CATALOGUE"]
