"""From discovery to the target configuration a command runs with: pick a candidate, fill what the file leaves open.

A config file still wins: every key it sets overrides the discovered value, so ``--config`` with
a few fields (say only ``[kubernetes] kubeconfig`` and ``[aws] region``) fills only the rest.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from ..config import KubeTarget, TargetConfig, default_config_path, load_config, parse_config
from ..errors import ConfigError
from .model import Discovery, PathCandidate, Problem

EXIT_CHOOSE = 2


class ChoiceNeeded(ConfigError):
    """Several candidate paths and nothing to choose between them (headless: exit 2 listing them)."""

    def __init__(self, candidates: list[PathCandidate]) -> None:
        lines = "\n".join(f"  --gateway {c.gateway.ref()} --port {c.port}    ({c.label()})" for c in candidates)
        super().__init__(f"{len(candidates)} client-IP paths found; choose one:\n{lines}",
                         hint="pass --gateway NS/NAME and --port N, or `ppdoctor discover --write FILE` and --config FILE")
        self.candidates = candidates


def is_complete(cfg: TargetConfig) -> bool:
    """A config naming the NLB and its address needs no discovery (the aws probe follows its listener to the TG)."""
    return bool(cfg.nlb.address and (cfg.nlb.arn or cfg.nlb.name))


def _matches_gateway(c: PathCandidate, want: str) -> bool:
    want = want.strip()
    refs = {c.gateway.ref(), c.service, c.deployment}
    if "/" not in want:
        refs |= {r.split("/", 1)[-1] for r in refs if r}
    return want in refs


def choose(result: Discovery, *, gateway: str | None = None, port: int | None = None,
           cfg: TargetConfig | None = None, raw: dict[str, Any] | None = None) -> PathCandidate:
    """The one candidate the choices (flags, then fields the config file sets) leave; else ConfigError."""
    candidates = list(result.paths)
    if not candidates:
        if result.problems:
            first = result.problems[0]
            more = "".join(f"\n  {p.where}: {p.message}" for p in result.problems[1:])
            raise ConfigError(f"discovery found no usable path: {first.where}: {first.message}{more}",
                              hint=first.hint or "see `ppdoctor discover`")
        raise ConfigError("discovery found no ingress gateway behind an AWS load balancer",
                          hint="check the kube context (`kubectl get svc -A`) or write a config file")
    raw = raw or {}
    if gateway:
        candidates = [c for c in candidates if _matches_gateway(c, gateway)]
        if not candidates:
            raise ConfigError(f"--gateway {gateway}: no discovered path has this gateway",
                              hint="known: " + ", ".join(sorted({c.gateway.ref() for c in result.paths})))
    elif cfg is not None and "gateway_service" in (raw.get("kubernetes") or {}):
        want = f"{cfg.kubernetes.namespace}/{cfg.kubernetes.gateway_service}"
        candidates = [c for c in candidates if c.service == want] or candidates
    if port is not None:
        candidates = [c for c in candidates if port in (c.port, c.listener_port)]
        if not candidates:
            raise ConfigError(f"--port {port}: no discovered path uses this port",
                              hint="known: " + ", ".join(sorted({str(c.port) for c in result.paths})))
    elif cfg is not None and "listener_port" in (raw.get("nlb") or {}):
        candidates = [c for c in candidates if c.listener_port == cfg.nlb.listener_port] or candidates
    if len(candidates) > 1:
        raise ChoiceNeeded(candidates)
    return candidates[0]


def candidate_config(c: PathCandidate, base: TargetConfig) -> TargetConfig:
    """``base`` (credentials, kubeconfig, timeouts) with the candidate's NLB, target group and gateway."""
    resolved = base.resolver.lookup(c.nlb["dns_name"], c.listener_port)
    address = resolved or f"{c.nlb['dns_name']}:{c.listener_port}"
    deployment = c.deployment.split("/", 1)[-1] if c.deployment else base.kubernetes.gateway_deployment
    return replace(
        base,
        name=f"discovered:{c.gateway.ref()}:{c.port}",
        nlb=replace(base.nlb, name=c.nlb["name"], arn=c.nlb["arn"], address=address, listener_port=c.listener_port,
                    client_source=base.nlb.client_source or (base.resolver.client_source if resolved else ""),
                    client_headers=base.nlb.client_headers or (base.resolver.client_headers if resolved else ()),
                    time_scale=base.nlb.time_scale if base.nlb.time_scale != 1.0 or not resolved
                    else base.resolver.time_scale,
                    tls=c.listener_protocol == "TLS", tls_server_name=base.nlb.tls_server_name),
        aws=replace(base.aws, region=c.region or base.aws.region, target_group_arns=(c.target_group_arn,)),
        kubernetes=KubeTarget(kubeconfig=base.kubernetes.kubeconfig, context=base.kubernetes.context,
                              namespace=c.namespace, gateway_deployment=deployment,
                              gateway_service=c.service_name, mesh_configmap=base.kubernetes.mesh_configmap),
    )


def _plain(value: Any) -> Any:
    """Config values as TOML would hold them (tuples → lists), so parse_config reads them back."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _deep_merge(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    out = dict(low)
    for key, value in high.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _raw_file(path: str | os.PathLike[str] | None) -> tuple[dict[str, Any], str]:
    file = Path(path) if path else default_config_path()
    if not (path or file.exists()):
        return {}, "discovery"
    try:
        return tomllib.loads(file.read_text(encoding="utf-8")), str(file)
    except (OSError, tomllib.TOMLDecodeError):
        return {}, str(file)  # load_config has already reported it


def resolve_config(path: str | os.PathLike[str] | None = None, *, gateway: str | None = None,
                   port: int | None = None, env: dict[str, str] | None = None,
                   discovered: Discovery | None = None) -> TargetConfig:
    """The config a command runs with: the file (and environment) as is when complete, else discovery fills the rest."""
    cfg = load_config(path, env=env)
    if is_complete(cfg) and gateway is None and port is None:
        return cfg
    if discovered is None:
        from .engine import discover

        discovered = discover(cfg)
    raw, source = _raw_file(path)
    chosen = choose(discovered, gateway=gateway, port=port, cfg=cfg, raw=raw)
    filled = candidate_config(chosen, cfg)
    if gateway is not None or port is not None:
        # An explicit choice replaces the file's target fields; credentials and the rest stay.
        for section, keys in (("nlb", ("name", "arn", "address", "listener_port")),
                              ("aws", ("target_group_arns",)),
                              ("kubernetes", ("namespace", "gateway_deployment", "gateway_service"))):
            raw = {**raw, section: {k: v for k, v in (raw.get(section) or {}).items() if k not in keys}}
    merged = parse_config(_deep_merge(_plain(filled.as_dict()), raw), source)
    return replace(merged, aws=replace(merged.aws, profile=merged.aws.profile or cfg.aws.profile,
                                       region=merged.aws.region or cfg.aws.region,
                                       endpoint_url=merged.aws.endpoint_url or cfg.aws.endpoint_url),
                   kubernetes=replace(merged.kubernetes, kubeconfig=merged.kubernetes.kubeconfig or cfg.kubernetes.kubeconfig))


def discover_for_tui(path: str | os.PathLike[str] | None, cfg: TargetConfig) -> tuple[TargetConfig, Discovery | None]:
    """The TUI's start: a complete config as is; else discovery — one path is used, several wait for the picker."""
    if is_complete(cfg):
        return cfg, None
    from ..errors import PPDoctorError
    from .engine import discover

    try:
        result = discover(cfg)
    except PPDoctorError as exc:
        return cfg, Discovery(problems=[Problem("discovery", exc.message, exc.hint or "")])
    if len(result.paths) == 1:
        return resolve_config(path, discovered=result), result
    return cfg, result


def config_for_args(args: Any, *, enough: Callable[[TargetConfig], bool] | None = None) -> TargetConfig:
    """What a headless command's ``--config``, ``--gateway`` and ``--port`` resolve to.

    ``enough``: whether the configured target already has what this command needs (default: a complete
    client-IP path, ``is_complete``); a command that needs less (the bench against a gateway) says so, and
    discovery does not run for what it would not use.

    When discovery ran, what it chose and its notes (e.g. an RBAC fallback) go to stderr: stdout stays
    the command's own output (JSON for scripts).
    """
    import sys

    from ..text import clean
    from .engine import discover

    path, gateway, port = getattr(args, "config", None), getattr(args, "gateway", None), getattr(args, "port", None)
    cfg = load_config(path)
    if (enough or is_complete)(cfg) and gateway is None and port is None:
        return cfg
    result = discover(cfg)
    resolved = resolve_config(path, gateway=gateway, port=port, discovered=result)
    for note in result.notes:
        print(f"ppdoctor: note: {clean(note)}", file=sys.stderr)
    print(f"ppdoctor: target discovered: {clean(resolved.name)}", file=sys.stderr)
    return resolved
