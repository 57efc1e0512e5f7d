"""Where the bench sends: the sides ("PP off", "PP on") built from target configurations.

Against the gateway (``--target gateway``, the default) the bench connects to
``gateway.direct`` itself and plays the NLB: "PP on" prefixes every connection with a PPv2
header from a TEST-NET-3 source, "PP off" sends plain HTTP. A gateway listener either
requires the header or does not parse it (unless it was configured with
``allow_requests_without_proxy_protocol``), so on one listener usually only one side can
succeed; ``off_config`` points the PP-off side at a second gateway — e.g. a lab started
with ``--scenario no-client-ip`` — while PP on stays on the first. See docs/bench.md.

Through the NLB (``--target nlb``) clients never send PROXY headers: the NLB adds one when
its target group has ``proxy_protocol_v2.enabled``. The side is named after that attribute
(read from the AWS API when the config allows), and it connects from ``nlb.client_source``.
"""

from __future__ import annotations

from ..config import TargetConfig, split_host_port
from ..errors import ConfigError
from .engine import Target
from .runner import Side

PP_CHOICES = ("both", "on", "off")


def gateway_target(cfg: TargetConfig, *, send_pp: bool, host_header: str = "") -> Target:
    direct = cfg.gateway.direct
    if not direct or direct == "port-forward":
        raise ConfigError(
            f"{cfg.path or 'the target config'}: gateway.direct is {direct or 'empty'!r}; the bench needs an address "
            "it can reach without a port-forward (a port-forward would be what it measures)",
            hint="set gateway.direct = \"POD_IP:8080\" reachable from here, or bench through the NLB with --target nlb",
        )
    host, port = split_host_port(direct, what="gateway.direct")
    return Target(host=host, port=port, send_pp=send_pp, host_header=host_header or cfg.echo.host or "",
                  label="PP on" if send_pp else "PP off", kind="gateway")


def nlb_target(cfg: TargetConfig, *, host_header: str = "") -> Target:
    if not cfg.nlb.address:
        raise ConfigError(f"{cfg.path or 'the target config'}: no nlb.address",
                          hint="set nlb.address = \"HOST:PORT\" of the NLB listener")
    host, port = split_host_port(cfg.nlb.address, what="nlb.address")
    return Target(host=host, port=port, source=cfg.nlb.client_source or None, send_pp=False,
                  host_header=host_header or cfg.echo.host or "", label="via NLB", kind="nlb")


def target_group_pp(cfg: TargetConfig) -> bool | None:
    """proxy_protocol_v2.enabled of the config's first target group, or None when it cannot be read."""
    arns = cfg.aws.target_group_arns
    if not arns or not (cfg.aws.endpoint_url or cfg.aws.region or cfg.aws.profile):
        return None
    try:
        from ..probes.context import ProbeContext

        ctx = ProbeContext(cfg)
        try:
            attrs = ctx.aws_call("elbv2", "describe_target_group_attributes", TargetGroupArn=arns[0])
        finally:
            ctx.close()
    except Exception:
        return None
    for a in attrs.get("Attributes", []):
        if a.get("Key") == "proxy_protocol_v2.enabled":
            return str(a.get("Value")).lower() == "true"
    return False


def build_sides(cfg: TargetConfig, *, target: str = "gateway", pp: str = "both",
                off_cfg: TargetConfig | None = None, host_header: str = "") -> tuple[Side, ...]:
    if pp not in PP_CHOICES:
        raise ConfigError(f"--pp must be one of {', '.join(PP_CHOICES)}, not {pp!r}")
    source = cfg.path or "defaults"
    if target == "gateway":
        sides: list[Side] = []
        if pp in ("both", "off"):
            other = off_cfg or cfg
            sides.append(Side("off", gateway_target(other, send_pp=False, host_header=host_header),
                              other.path or source))
        if pp in ("both", "on"):
            sides.append(Side("on", gateway_target(cfg, send_pp=True, host_header=host_header), source))
        return tuple(sides)
    if target == "nlb":
        out: list[Side] = []
        for c in (cfg, off_cfg) if off_cfg is not None else (cfg,):
            t = nlb_target(c, host_header=host_header)
            tg_pp = target_group_pp(c)
            name = {True: "on", False: "off", None: "nlb"}[tg_pp]
            if any(s.name == name for s in out):
                name = f"{name}-2"
            label = {True: "PP on (NLB adds it)", False: "PP off (target group)", None: "via NLB"}[tg_pp]
            out.append(Side(name, Target(host=t.host, port=t.port, source=t.source, send_pp=False,
                                         host_header=t.host_header, label=label, kind="nlb"), c.path or source))
        if pp != "both":
            out = [s for s in out if s.name.startswith(pp) or s.name.startswith("nlb")]
        return tuple(out)
    raise ConfigError(f"--target must be gateway or nlb, not {target!r}")
