"""In-cluster callers of the lab: pods that call the gateway Service's ClusterIP instead of the NLB.

kube-proxy DNATs a ClusterIP connection to one endpoint's targetPort, so the pod's connection
reaches the gateway pod's traffic port straight from the pod's own address, with no PROXY
header (cert-manager's HTTP-01 self-check, cert-manager #656; kgateway-dev/kgateway #1668). A
gateway that requires the header resets it. Each caller is a Deployment and a Pod in the lab
API (so ``kubectl get pods -A`` shows who it is) and a loop that sends one GET per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from . import addresses
from .manifests import now_rfc3339, pod_for
from .scenario import InClusterCaller


@dataclass
class CallerStats:
    """What the caller saw, for the lab's status and tests: outcome → count."""

    outcomes: dict[str, int] = field(default_factory=dict)
    last: str | None = None

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        self.last = outcome


def caller_objects(caller: InClusterCaller, ip: str) -> list[dict[str, Any]]:
    labels = {"app": caller.name}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": caller.name, "namespace": caller.namespace, "labels": dict(labels)},
        "spec": {"replicas": 1, "selector": {"matchLabels": dict(labels)},
                 "template": {"metadata": {"labels": dict(labels), "annotations": {}},
                              "spec": {"containers": [{"name": caller.name, "image": f"lab/{caller.name}:latest"}]}}},
    }
    namespace = {"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": caller.namespace, "labels": {"kubernetes.io/metadata.name": caller.namespace}}}
    return [namespace, deployment, pod_for(deployment, ip=ip, started_at=now_rfc3339())]


async def _one_call(source: str, target: tuple[str, int], path: str, timeout: float) -> str:
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(*target, local_addr=(source, 0))
            writer.write(f"GET {path} HTTP/1.1\r\nHost: gateway.cluster.local\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            line = await reader.readline()
    except TimeoutError:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    except OSError as exc:
        return f"error: {exc.strerror or exc}"
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
    parts = line.split()
    if len(parts) >= 2 and parts[1].isdigit():
        return f"HTTP {int(parts[1])}"
    return "empty-reply" if not line else "not HTTP"


async def run_caller(caller: InClusterCaller, source: str, target: Any, stats: CallerStats) -> None:
    """Call ``target()`` (the gateway pod's traffic address now) every ``every_seconds`` until cancelled."""
    while True:
        stats.count(await _one_call(source, target(), caller.path, timeout=2.0))
        await asyncio.sleep(caller.every_seconds)  # the caller's own cadence, not a wait for a condition


def caller_ips(callers: tuple[InClusterCaller, ...]) -> list[str]:
    return list(addresses.IN_CLUSTER_CALLER_IPS[: len(callers)])
