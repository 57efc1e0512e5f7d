"""Raw-socket client for the gateway tests: what a peer sees, byte for byte, with timings."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from dataclasses import dataclass

from ppdoctor.lab.addresses import CLIENT_IP, GATEWAY_POD_IP


@dataclass
class RawResult:
    data: bytes  # everything received before the connection ended
    ending: str  # "fin" | "reset" | "timeout" | "refused"
    first_byte_s: float | None  # seconds from sending to the first byte received
    end_s: float  # seconds from sending to the end

    @property
    def status(self) -> int | None:
        if not self.data.startswith(b"HTTP/1.1 "):
            return None
        return int(self.data[9:12])

    @property
    def headers(self) -> dict[str, str]:
        head = self.data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
        return {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head)}

    @property
    def body(self) -> bytes:
        return self.data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in self.data else b""

    def json(self):
        return json.loads(self.body)


async def raw_exchange(
    port: int,
    payload: bytes,
    *,
    host: str = GATEWAY_POD_IP,
    source: str = CLIENT_IP,
    timeout: float = 5.0,
    until_response: bool = False,
    half_close: bool = False,
) -> RawResult:
    """Connect from ``source``, send ``payload`` at once, read until the peer ends the connection.

    ``until_response``: stop once one complete response (per Content-Length) is in, for
    local replies whose close Envoy delays by 1 s; ``ending`` is then "response".
    """
    try:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    except ConnectionRefusedError:
        return RawResult(b"", "refused", None, 0.0)
    start = time.monotonic()
    first: float | None = None
    data = b""
    ending = "fin"
    try:
        if payload:
            writer.write(payload)
            await writer.drain()
        if half_close:
            writer.write_eof()
        async with asyncio.timeout(timeout):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                if first is None:
                    first = time.monotonic() - start
                data += chunk
                if until_response and _complete(data):
                    ending = "response"
                    break
    except ConnectionResetError:
        ending = "reset"
    except TimeoutError:
        ending = "timeout"
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
    return RawResult(data, ending, first, time.monotonic() - start)


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def get_request(path: str = "/get", *, host: str = "gateway.lab.example", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode()


async def tls_exchange(
    port: int,
    *,
    server_name: str | None,
    preamble: bytes = b"",
    request: bytes | None = None,
    host: str = GATEWAY_POD_IP,
    source: str = CLIENT_IP,
    timeout: float = 5.0,
) -> tuple[str, bytes]:
    """TLS with SNI after an optional PROXY header: ("ok", response) or ("error", what happened).

    Runs a blocking client in a thread: asyncio's SSL transport can wait a long time for a
    close_notify from a peer that already reset the connection.
    """

    def run() -> tuple[str, bytes]:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with socket.create_connection((host, port), timeout=timeout, source_address=(source, 0)) as sock:
            try:
                if preamble:
                    sock.sendall(preamble)
                with context.wrap_socket(sock, server_hostname=server_name) as tls:
                    tls.sendall(request or get_request(host="a.lab.example"))
                    data = b""
                    while chunk := tls.recv(65536):
                        data += chunk
                    return "ok", data
            except (ssl.SSLError, OSError) as exc:
                return "error", f"{type(exc).__name__}: {exc}".encode()

    return await asyncio.to_thread(run)


# --- Kubernetes objects as the lab hands them to derive_gateway_settings -------------------------

GATEWAY_LABELS = {"app": "istio-ingressgateway", "istio": "ingressgateway"}
PP_ANNOTATION = '{"gatewayTopology":{"proxyProtocol":{}}}'


def gateway_deployment(
    template_annotations: dict[str, str] | None = None,
    *,
    metadata_annotations: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    image: str = "docker.io/istio/proxyv2:1.24.0",
) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "istio-ingressgateway",
            "namespace": "istio-system",
            "annotations": dict(metadata_annotations or {}),
        },
        "spec": {
            "template": {
                "metadata": {"labels": dict(GATEWAY_LABELS), "annotations": dict(template_annotations or {})},
                "spec": {
                    "containers": [
                        {
                            "name": "istio-proxy",
                            "image": image,
                            "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
                        }
                    ]
                },
            }
        },
    }


def envoy_filter(name: str, *patches: dict, namespace: str = "istio-system", selector: dict | None = None) -> dict:
    spec: dict = {"configPatches": list(patches)}
    if selector is not False:
        spec["workloadSelector"] = {"labels": dict(selector or {"istio": "ingressgateway"})}
    return {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


PP_TYPE_URL = "type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol"


def pp_filter_value(name: str = "envoy.filters.listener.proxy_protocol", *, typed: bool = True, **options) -> dict:
    value: dict = {"name": name}
    if typed:
        value["typed_config"] = {"@type": PP_TYPE_URL, **options}
    return value


def merge_listener_filters(*filters: dict, port: int | None = None, context: str = "GATEWAY") -> dict:
    match: dict = {"context": context}
    if port is not None:
        match["listener"] = {"portNumber": port}
    return {"applyTo": "LISTENER", "match": match, "patch": {"operation": "MERGE", "value": {"listener_filters": list(filters)}}}


def listener_filter_patch(operation: str, value: dict | None = None, *, after: str | None = None, port: int | None = None) -> dict:
    listener: dict = {}
    if port is not None:
        listener["portNumber"] = port
    if after is not None:
        listener["listenerFilter"] = after
    patch: dict = {"operation": operation}
    if value is not None:
        patch["value"] = value
    return {"applyTo": "LISTENER_FILTER", "match": {"context": "GATEWAY", "listener": listener}, "patch": patch}
