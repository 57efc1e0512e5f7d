"""Istio's configuration texts as the cluster holds them: the ``proxy.istio.io/config`` annotation and the mesh
config (JSON or YAML). Shared by the kube probe, the fix planner and ``drain``; yaml loads on first use."""

from __future__ import annotations

from typing import Any


def parse_proxy_config(text: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """``proxy.istio.io/config`` is JSON or YAML; returns (config, error)."""
    if not text:
        return None, None
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return None, f"not valid JSON/YAML: {exc}"
    if not isinstance(value, dict):
        return None, "not a mapping"
    return value, None
