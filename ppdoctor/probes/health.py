"""The health probe: do what the NLB's health checker does, and say whether it would pass.

Protocol, port and path come from the target group; with proxy_protocol_v2 on, the NLB
sends a PPv2 LOCAL header first on health-check connections too (ELB docs, "Health checks
for Network Load Balancer target groups"), so this probe does as well. NLB HTTP checks
succeed on 200-399 unless the target group's matcher says otherwise.
"""

from __future__ import annotations

import asyncio
import time

from .. import drain
from ..constants import ATTR_PROXY_PROTOCOL_V2, HC_DEFAULT_MATCHER, HC_TRAFFIC_PORT
from .context import ProbeContext, run_blocking
from .model import FailureClass, Observation, Status
from .net import http_exchange


def _matches(code: int, matcher: str) -> bool:
    for part in matcher.split(","):
        part = part.strip()
        if "-" in part:
            lo, _, hi = part.partition("-")
            if lo.isdigit() and hi.isdigit() and int(lo) <= code <= int(hi):
                return True
        elif part.isdigit() and int(part) == code:
            return True
    return False


async def probe_health(ctx: ProbeContext) -> Observation:
    from .. import proxyproto
    from .aws import collect

    obs = Observation("health")
    data = await ctx.cached("aws", lambda: run_blocking(collect, ctx))
    group = data["target_groups"][0]
    tg, attrs = group["tg"], group["attributes"]
    pp_on = attrs.get(ATTR_PROXY_PROTOCOL_V2) == "true"
    protocol = tg.get("HealthCheckProtocol", "TCP")
    hc_port = tg.get("HealthCheckPort", HC_TRAFFIC_PORT)
    path = tg.get("HealthCheckPath") or "/"
    matcher = (tg.get("Matcher") or {}).get("HttpCode") or HC_DEFAULT_MATCHER
    timeout = float(tg.get("HealthCheckTimeoutSeconds") or 6)
    targets = [(h["Target"]["Id"], h["Target"].get("Port") or tg.get("Port")) for h in drain.in_service(group["health"])]
    if not targets:
        obs.status = Status.SKIPPED
        obs.summary = "the target group has no registered targets"
        return obs
    results = []
    prefix = proxyproto.local_v2() if pp_on else b""
    for target_ip, target_port in targets:
        port = int(target_port) if hc_port == HC_TRAFFIC_PORT else int(hc_port)
        if protocol == "TCP":
            t0 = time.perf_counter()
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(target_ip, port), min(timeout, ctx.config.timeouts.connect))
                if prefix:
                    writer.write(prefix)
                    await writer.drain()
                writer.transport.abort()
                passed, detail, cls = True, "TCP connect succeeded", FailureClass.OK
            except asyncio.TimeoutError:
                passed, detail, cls = False, "no TCP handshake", FailureClass.TIMEOUT_CONNECT
            except OSError as exc:
                passed, detail, cls = False, f"connect failed: {exc.strerror or exc}", FailureClass.REFUSED
            ms = (time.perf_counter() - t0) * 1000
            evidence = {"sent_hex": prefix.hex()}
        else:
            ex = await http_exchange(target_ip, port, path=path, prefix=prefix,
                                     headers=[("User-Agent", "ELB-HealthChecker/2.0")],
                                     host_header=f"{target_ip}:{port}",
                                     connect_timeout=min(timeout, ctx.config.timeouts.connect), total_timeout=timeout)
            passed = ex.status is not None and _matches(ex.status, matcher)
            cls = ex.failure_class
            detail = (f"HTTP {ex.status} (matcher {matcher})" if ex.status is not None else f"{cls.value}: {ex.detail}")
            ms = ex.timings_ms.get("total", 0.0)
            evidence = ex.evidence()
        status = None if protocol == "TCP" else ex.status
        results.append({"target": f"{target_ip}:{port}", "port": port, "status": status, "passed": passed, "detail": detail,
                        "failure_class": cls.value, "ms": round(ms, 2), **evidence})
    obs.evidence["check"] = {"protocol": protocol, "port": hc_port, "path": path if protocol != "TCP" else None,
                             "local_header": pp_on, "matcher": matcher if protocol != "TCP" else None}
    obs.evidence["results"] = results
    would_pass = all(r["passed"] for r in results)
    obs.fact("hc.would_pass", would_pass)
    obs.fact("hc.sends_local_header", pp_on)
    obs.fact("hc.check_port", results[0]["port"])
    if results[0]["status"] is not None:
        obs.fact("hc.check_status", results[0]["status"])
    obs.failure_class = FailureClass(results[0]["failure_class"])
    obs.status = Status.OK if would_pass else Status.FAIL
    check = f"{protocol}:{hc_port}" + (f"{path}" if protocol != "TCP" else "")
    obs.summary = (f"{check}{' with a PPv2 LOCAL header' if pp_on else ''}: "
                   + "; ".join(f"{r['target']} {'passes' if r['passed'] else 'fails'} ({r['detail']})" for r in results))
    return obs
