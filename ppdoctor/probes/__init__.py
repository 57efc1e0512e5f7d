"""The probe engine: every probe is ``async (ProbeContext) -> Observation``, run alone or all at once.

Probe modules are imported only when the probe runs (boto3, kubernetes and scapy stay
unloaded otherwise). Every probe runs under a deadline; errors from the layers below end
as an ``error`` observation whose summary says what to do next — never a traceback.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from dataclasses import dataclass
from typing import Iterable

from ..config import TargetConfig
from ..errors import PPDoctorError
from .context import ProbeContext
from .model import Fact, FailureClass, Observation, Status

__all__ = ["PROBES", "ProbeInfo", "default_probes", "ProbeContext", "Observation", "Fact", "FailureClass", "Status",
           "run_probe", "run_probes"]


@dataclass(frozen=True)
class ProbeInfo:
    name: str
    description: str
    target: str  # "module:function"
    needs: str  # what in the target config it uses
    on_demand: bool = False  # slow by nature (waits out an AWS timeout): run only when named, never in --all
    changes: str = ""  # what the probe changes on the target, if anything: it then runs only after a confirmation

    def load(self):
        module, _, func = self.target.partition(":")
        return getattr(importlib.import_module(module), func)


PROBES: dict[str, ProbeInfo] = {p.name: p for p in (
    ProbeInfo("tcp", "TCP handshake to the NLB listener", "ppdoctor.probes.network:probe_tcp", "nlb.address"),
    ProbeInfo("http-via-nlb", "GET the echo path through the NLB; who does the backend think the client is?",
              "ppdoctor.probes.network:probe_http_via_nlb", "nlb.address, echo.path"),
    ProbeInfo("direct-plain", "GET straight to a gateway pod without a PROXY header",
              "ppdoctor.probes.network:probe_direct_plain", "gateway.direct"),
    ProbeInfo("direct-ppv2", "GET straight to a gateway pod behind a PPv2 PROXY header (TEST-NET source)",
              "ppdoctor.probes.network:probe_direct_ppv2", "gateway.direct"),
    ProbeInfo("direct-ppv1", "GET straight to a gateway pod behind a PPv1 text header",
              "ppdoctor.probes.network:probe_direct_ppv1", "gateway.direct"),
    ProbeInfo("direct-local", "GET straight to a gateway pod behind a PPv2 LOCAL header (health-check style)",
              "ppdoctor.probes.network:probe_direct_local", "gateway.direct"),
    ProbeInfo("xff-forge", "GET through the NLB with a forged X-Forwarded-For: can clients spoof their IP?",
              "ppdoctor.probes.network:probe_xff_forge", "nlb.address"),
    ProbeInfo("aws", "NLB, listeners, target group attributes, health, LBC tags, routes of the targets' subnets",
              "ppdoctor.probes.aws:probe_aws", "aws.*, nlb.arn or nlb.name"),
    ProbeInfo("kube", "gateway Service/Deployment annotations, mesh config, EnvoyFilters, pods, LBC",
              "ppdoctor.probes.kube:probe_kube", "kubernetes.*"),
    ProbeInfo("envoy", "the running gateway's listeners from the Envoy admin config_dump and proxy_proto stats",
              "ppdoctor.probes.envoy:probe_envoy", "gateway.admin"),
    ProbeInfo("health", "do what the NLB health checker does (LOCAL header when PROXY protocol is on)",
              "ppdoctor.probes.health:probe_health", "aws.*"),
    ProbeInfo("gatewayapi", "Gateway API Gateways: annotations istiod drops when spec.infrastructure.annotations is set",
              "ppdoctor.probes.gatewayapi:probe_gatewayapi", "kubernetes.*"),
    ProbeInfo("sg", "security groups of the targets' ENIs and of the NLB: do they admit the prober and a public client?",
              "ppdoctor.probes.security_groups:probe_sg", "aws.*"),
    ProbeInfo("privatelink", "is the NLB behind a VPC endpoint service (PrivateLink)?",
              "ppdoctor.probes.privatelink:probe_privatelink", "aws.*"),
    ProbeInfo("ipv6", "IPv6 client? dualstack NLB? IPv4 targets? (preservation cannot carry IPv6 to IPv4 targets)",
              "ppdoctor.probes.ipv6:probe_ipv6", "aws.*, nlb.client_source"),
    ProbeInfo("incluster", "a pod's header-less call to the gateway, and other callers' PROXY errors in Envoy's counters",
              "ppdoctor.probes.incluster:probe_incluster", "gateway.admin, kubernetes.*"),
    ProbeInfo("idle", "one request, silence past the NLB's idle timeout, another request: is the flow reset? (on demand)",
              "ppdoctor.probes.idle:probe_idle", "nlb.address, aws.*, nlb.time_scale", on_demand=True),
    ProbeInfo("server-first", "connect without sending: does a server-first service greet, through the NLB and "
              "directly with/without a PROXY header? (on demand)",
              "ppdoctor.probes.server_first:probe_server_first", "nlb.address, aws.*", on_demand=True),
    ProbeInfo("rollout", "restart the gateway Deployment while requests stream through the NLB: do any fail? "
              "(on demand; makes a change: a kubectl rollout restart)",
              "ppdoctor.probes.rollout:probe_rollout", "nlb.address, kubernetes.*, nlb.time_scale", on_demand=True,
              changes="restarts the gateway Deployment (kubectl rollout restart): new gateway pods replace the running "
                      "ones while requests stream through the NLB"),
    ProbeInfo("syn", "raw SYN to the NLB with scapy: who answers? (needs CAP_NET_RAW)",
              "ppdoctor.probes.syn:probe_syn", "nlb.address"),
)}


def default_probes() -> list[str]:
    """What "all probes" means (``probe --all``, the TUI's run-all): every probe but the on-demand ones."""
    return [n for n, p in PROBES.items() if not p.on_demand]


async def run_probe(name: str, ctx: ProbeContext, *, deadline: float | None = None) -> Observation:
    """Run one probe under a deadline; every failure becomes a classified Observation."""
    info = PROBES.get(name)
    if info is None:
        obs = Observation(name, status=Status.ERROR)
        obs.summary = f"no probe named {name!r}; `ppdoctor probe --list` shows them"
        return obs
    limit = deadline or ctx.config.timeouts.total
    t0 = time.perf_counter()
    try:
        obs = await asyncio.wait_for(info.load()(ctx), limit)
    except asyncio.TimeoutError:
        obs = Observation(name, status=Status.ERROR)
        obs.summary = f"the probe did not finish within its {limit:g} s deadline"
        obs.error = {"kind": "deadline", "message": obs.summary}
    except PPDoctorError as exc:
        obs = Observation(name, status=Status.ERROR)
        obs.summary = str(exc)
        obs.error = exc.as_dict()
    except Exception as exc:  # an unexpected bug still ends as a result the operator can read
        obs = Observation(name, status=Status.ERROR)
        obs.summary = f"internal error in probe {name}: {type(exc).__name__}: {exc}"
        obs.error = {"kind": "internal", "message": obs.summary}
    obs.timings_ms.setdefault("probe", (time.perf_counter() - t0) * 1000)
    return obs


async def run_probes(config: TargetConfig, names: Iterable[str] | None = None,
                     ctx: ProbeContext | None = None) -> list[Observation]:
    """Run probes concurrently (they are independent); results in the order asked."""
    names = list(names or default_probes())
    own = ctx is None
    ctx = ctx or ProbeContext(config)
    try:
        return list(await asyncio.gather(*(run_probe(n, ctx) for n in names)))
    finally:
        if own:
            await asyncio.to_thread(ctx.close)
