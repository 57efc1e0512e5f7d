"""The zero-config check shared with the closed-loop scenario test: a config holding only the kubeconfig, the AWS
region/endpoint (the lab's credentials) and the lab's resolver map must lead diagnosis to the same first finding."""

from __future__ import annotations

import asyncio
from pathlib import Path

import tomli_w

from ppdoctor.diagnosis import diagnose
from ppdoctor.discovery.target import resolve_config
from ppdoctor.probes import run_probes


def minimal_config(full, path: Path) -> Path:
    """Only [kubernetes] kubeconfig, [aws] region/endpoint (+ the lab's static credentials) and [resolver]
    (and [nlb] client_headers when a CDN is in front: operator knowledge)."""
    data = {
        "kubernetes": {"kubeconfig": full.kubernetes.kubeconfig},
        "aws": {"region": full.aws.region, "endpoint_url": full.aws.endpoint_url, "static_credentials": True},
        "resolver": {"endpoints": list(full.resolver.endpoints), "client_source": full.resolver.client_source,
                     "client_headers": list(full.resolver.client_headers), "time_scale": full.resolver.time_scale},
    }
    if full.nlb.client_headers:  # a CDN in front: the operator says what it adds, nothing can discover it
        data["nlb"] = {"client_headers": list(full.nlb.client_headers)}
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


def discovered_findings(full, tmp_path: Path, probes: list[str] | None = None, on_demand: list[str] = ()) -> list:
    """Diagnosis with the discovered config; the path is chosen the way an operator would (--gateway, --port)."""
    k = full.kubernetes
    gateway = f"{k.namespace}/{k.gateway_service}"
    cfg = resolve_config(minimal_config(full, tmp_path / "minimal.toml"), gateway=gateway,
                         port=full.nlb.listener_port, env={})
    assert cfg.aws.target_group_arns == full.aws.target_group_arns
    assert cfg.nlb.arn == full.nlb.arn
    if on_demand:
        from tests.labsupport import probe_as_an_operator

        return diagnose(probe_as_an_operator(cfg, probes or [], list(on_demand)))
    return diagnose(asyncio.run(run_probes(cfg, probes)))
