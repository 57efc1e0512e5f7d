"""Reach a gateway pod directly through the Kubernetes API (``kubectl port-forward``, in-process).

When the target config says ``gateway.direct = "port-forward"`` (the usual case from an
operator's laptop: pod IPs are private), the direct probes and the envoy probe connect to a
local listener; each accepted connection is bridged to a ready gateway pod over the
``pods/portforward`` WebSocket API of the official client — the same path kubectl takes.
"""

from __future__ import annotations

import select
import socket
import threading
from typing import Any

from .. import drain
from ..errors import KubeError


def pick_ready_pod(ctx: Any) -> dict[str, Any]:
    """A ready pod of the gateway Deployment (by its selector)."""
    k = ctx.config.kubernetes
    api = ctx.kube()
    dep = api.sanitize_for_serialization(ctx.kube_call(
        "AppsV1Api", "read_namespaced_deployment", "get", "deployments.apps", k.namespace,
        name=k.gateway_deployment, namespace=k.namespace))
    labels = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    selector = ",".join(f"{a}={b}" for a, b in labels.items())
    pods = api.sanitize_for_serialization(ctx.kube_call(
        "CoreV1Api", "list_namespaced_pod", "list", "pods", k.namespace, namespace=k.namespace,
        label_selector=selector)).get("items", [])
    for pod in pods:
        conditions = (pod.get("status") or {}).get("conditions") or []
        if drain.deleted_at(pod) is None and any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            return pod
    raise KubeError(f"no ready pod of deployment {k.namespace}/{k.gateway_deployment} to port-forward to",
                    hint="check the gateway pods (`kubectl -n istio-system get pods`)")


def container_port(pod: dict[str, Any], names: tuple[str, ...], default: int) -> int:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") in names:
                return int(port["containerPort"])
    return default


class PortForwarder:
    """127.0.0.1:<ephemeral> → pod:port through the API server; one WebSocket per connection."""

    def __init__(self, ctx: Any, namespace: str, pod: str, port: int) -> None:
        self.ctx, self.namespace, self.pod, self.port = ctx, namespace, pod, port
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name=f"port-forward {pod}:{port}", daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        return self._sock.getsockname()[:2]

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._sock], [], [], 0.2)
                if not ready:
                    continue
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._bridge, args=(conn,), daemon=True).start()

    def _bridge(self, conn: socket.socket) -> None:
        from kubernetes import client
        from kubernetes.stream import portforward

        pf = None
        try:
            api = client.CoreV1Api(self.ctx.kube_stream_client())  # never the shared client: see its docstring
            pf = portforward(api.connect_get_namespaced_pod_portforward, self.pod, self.namespace,
                             ports=str(self.port))
            remote = pf.socket(self.port)
            remote.setblocking(False)
            conn.setblocking(False)
            while not self._stop.is_set():
                readable, _, _ = select.select([conn, remote], [], [], 0.2)
                done = False
                for src, dst in ((conn, remote), (remote, conn)):
                    if src in readable:
                        try:
                            data = src.recv(65536)
                        except BlockingIOError:
                            continue
                        except OSError:
                            done = True
                            break
                        if not data:
                            done = True
                            break
                        dst.setblocking(True)
                        dst.sendall(data)
                        dst.setblocking(False)
                if done:
                    break
        except Exception:
            pass  # the probe on the other side sees the closed connection and classifies it
        finally:
            try:
                conn.close()
            finally:
                if pf is not None:
                    try:
                        pf.close()
                    except Exception:
                        pass

    def close(self) -> None:
        self._stop.set()
        try:
            self._sock.close()
        except OSError:
            pass
