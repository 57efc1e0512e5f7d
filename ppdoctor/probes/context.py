"""What probes share for one run: the target config, API clients (created lazily), and cached lookups.

boto3 and kubernetes are imported here only when a probe first needs them. Their errors
are mapped to ppdoctor's error tree at this boundary, each with what to do next.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Awaitable, Callable

from ..config import TargetConfig, split_host_port
from ..errors import AwsError, ConfigError, KubeError

# IAM actions named in AccessDenied hints: the same table `ppdoctor permissions` prints.
from .permissions import AWS_ACTIONS, kube_permission
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess"}
_THROTTLED = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}


def aws_error(exc: BaseException, operation: str) -> AwsError:
    """Translate a botocore exception raised by ``operation`` (a client method name)."""
    from botocore import exceptions as bx

    action = AWS_ACTIONS.get(operation, operation)
    if isinstance(exc, bx.ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", "") or str(exc)
        if code in _DENIED:
            err = AwsError(f"AccessDenied: {action} was refused ({message})",
                           hint=f"grant the IAM action {action} to the identity ppdoctor runs as "
                                "(`ppdoctor permissions --aws` prints the whole policy)")
        elif code in _THROTTLED:
            err = AwsError(f"AWS throttled {action} even after adaptive retries ({code})",
                           hint="wait a minute and run the probe again, or lower other API traffic in this account")
        elif code.endswith("NotFound") or code.startswith("NotFound"):
            err = AwsError(f"{action} failed: {code}: {message}",
                           hint="check the ARN/name in the target config (`ppdoctor probe aws` lists what exists)")
        else:
            err = AwsError(f"{action} failed: {code}: {message}")
        err.code = code  # type: ignore[attr-defined]
        err.operation = operation  # type: ignore[attr-defined]
        return err
    if isinstance(exc, bx.NoCredentialsError):
        return AwsError("no AWS credentials found", hint="set AWS_PROFILE or run `aws sso login`; for the lab use its config file")
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError)):
        return AwsError(f"cannot reach the AWS endpoint for {action}: {exc}", hint="check network access / AWS_ENDPOINT_URL")
    if isinstance(exc, bx.ReadTimeoutError):
        return AwsError(f"AWS did not answer {action} in time", hint="retry; raise timeouts.api in the config if this persists")
    if isinstance(exc, bx.BotoCoreError):
        return AwsError(f"{action} failed: {exc}")
    return AwsError(f"{action} failed: {type(exc).__name__}: {exc}")


def kube_error(exc: BaseException, verb: str, resource: str, namespace: str | None = None) -> KubeError:
    from kubernetes.client.exceptions import ApiException

    where = f" in namespace {namespace}" if namespace else ""
    if isinstance(exc, ApiException):
        message = exc.reason or ""
        try:
            import json

            message = json.loads(exc.body or "{}").get("message") or message
        except (ValueError, TypeError, AttributeError):
            pass
        if exc.status == 403:
            row = kube_permission(verb, resource)
            need = f" ({row.purpose})" if row else ""
            err = KubeError(f"RBAC forbids {verb} {resource}{where}: {message}",
                            hint=f"grant the verb '{verb}' on '{resource}'{where}{need} to the identity in the kubeconfig "
                                 "(`ppdoctor permissions --kube` prints the whole ClusterRole)")
            err.status = 403  # type: ignore[attr-defined]
            return err
        if exc.status == 401:
            return KubeError(f"the Kubernetes API rejected the credentials: {message}",
                             hint="refresh the kubeconfig credentials (e.g. `aws eks update-kubeconfig`)")
        if exc.status == 404:
            err = KubeError(f"{resource}{where} not found: {message}", hint="check names/namespace in the target config")
            err.status = 404  # type: ignore[attr-defined]
            return err
        if exc.status == 429:
            return KubeError(f"the Kubernetes API throttled {verb} {resource}: {message}", hint="retry in a few seconds")
        return KubeError(f"{verb} {resource}{where} failed with HTTP {exc.status}: {message}")
    return KubeError(f"{verb} {resource}{where} failed: {type(exc).__name__}: {exc}",
                     hint="check that the API server in the kubeconfig is reachable")


async def run_blocking(fn: Callable[..., Any], *args: Any) -> Any:
    """Run blocking API work (boto3, kubernetes, scapy) in a daemon thread and await its result.

    Unlike ``asyncio.to_thread``, a call abandoned at a probe's deadline does not hold up the
    run: ``asyncio.run`` joins the default executor's threads at exit (and so does the
    interpreter), which made a probe with a 1 s deadline return after its API client's own
    timeouts and retries (tens of seconds). The abandoned thread finishes on its own.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(error: BaseException | None, result: Any) -> None:
        if future.done():  # cancelled: the probe's deadline passed
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def work() -> None:
        error: BaseException | None = None
        result: Any = None
        try:
            result = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            error = exc
        try:
            loop.call_soon_threadsafe(settle, error, result)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more

    threading.Thread(target=work, name=f"ppdoctor-probe-{getattr(fn, '__name__', 'io')}", daemon=True).start()
    return await future


class ProbeContext:
    """Shared by the probes of one run. Thread-safe lazy clients; async cached lookups."""

    def __init__(self, config: TargetConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._cache: dict[str, asyncio.Future[Any]] = {}
        # ppdoctor's own header-less connections to the gateway in this run (sent, still open): the
        # incluster probe tells them from other callers' in Envoy's proxy_proto error counter.
        self.plain_sent = 0
        self.plain_in_flight = 0

    # --- network addresses ---------------------------------------------------------

    def nlb_address(self) -> tuple[str, int]:
        if not self.config.nlb.address:
            raise ConfigError("no NLB address configured", hint="set nlb.address = \"HOST:PORT\" in the target config")
        return split_host_port(self.config.nlb.address, what="nlb.address")

    def _lab_pod(self, configured: str) -> str:
        """In the lab a rollout moves the gateway pod to a new address, as on a cluster; the lab keeps its
        endpoints file (``lab.json`` beside the lab's config) current, so a lab config's address that names a
        gateway pod follows the pod (same port) the way ``port-forward`` does on a cluster. Other configs, and
        addresses that name no gateway pod, stay what they say."""
        if not self.config.lab or not self.config.path or configured in ("", "port-forward"):
            return configured
        import json
        from pathlib import Path

        try:
            lab = json.loads((Path(self.config.path).parent / "lab.json").read_text(encoding="utf-8"))
            host, port = split_host_port(configured, what="gateway address")
        except (OSError, ValueError, ConfigError):
            return configured
        current, pods = lab.get("gateway_pod_ip"), lab.get("gateway_pod_ips") or []
        if not isinstance(current, str) or not current or host not in pods:
            return configured
        return f"{current}:{port}"

    def gateway_address(self) -> tuple[str, int]:
        direct = self.config.gateway.direct
        if not direct or direct == "port-forward":
            raise ConfigError("no direct gateway address configured",
                              hint="set gateway.direct = \"POD_IP:8080\" (reachable from here) in the target config")
        return split_host_port(self._lab_pod(direct), what="gateway.direct")

    def admin_address(self) -> tuple[str, int]:
        admin = self._lab_pod(self.config.gateway.admin)
        if not admin or admin == "port-forward":
            raise ConfigError("no gateway admin address configured",
                              hint="set gateway.admin = \"POD_IP:15000\" in the target config")
        return split_host_port(admin, what="gateway.admin")

    async def gateway_endpoint(self, which: str = "traffic") -> tuple[str, int]:
        """Where to connect for the gateway's traffic (or admin) port: configured, or a port-forward."""
        setting = self.config.gateway.direct if which == "traffic" else self.config.gateway.admin
        if setting and setting != "port-forward":
            return self.gateway_address() if which == "traffic" else self.admin_address()
        return await self.cached(f"port-forward:{which}", lambda: run_blocking(self._start_port_forward, which))

    def _start_port_forward(self, which: str) -> tuple[str, int]:
        from .portforward import PortForwarder, container_port, pick_ready_pod

        if not (self.config.kubernetes.kubeconfig or self.config.kubernetes.context):
            import os

            if not os.environ.get("KUBECONFIG") and not os.path.exists(os.path.expanduser("~/.kube/config")):
                raise ConfigError("the gateway is to be reached by port-forward, but no kubeconfig is configured",
                                  hint="set gateway.direct = \"POD_IP:8080\" or kubernetes.kubeconfig")
        pod = pick_ready_pod(self)
        names = ("http2", "http") if which == "traffic" else ("http-envoy-admin", "admin")
        port = container_port(pod, names, 8080 if which == "traffic" else 15000)
        forwarder = PortForwarder(self, pod["metadata"]["namespace"], pod["metadata"]["name"], port)
        with self._lock:
            self._clients[f"pf-{which}"] = forwarder
        return forwarder.address

    # --- clients -------------------------------------------------------------------

    def aws(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                import boto3
                from botocore.config import Config

                aws = self.config.aws
                kwargs: dict[str, Any] = {}
                if aws.static_credentials:
                    kwargs.update(aws_access_key_id="testing", aws_secret_access_key="testing")
                elif aws.profile:
                    kwargs["profile_name"] = aws.profile
                if aws.region:
                    kwargs["region_name"] = aws.region
                session = boto3.session.Session(**kwargs)
                t = self.config.timeouts
                cfg = Config(retries={"mode": "adaptive", "max_attempts": 4},
                             connect_timeout=t.connect, read_timeout=t.api)
                self._clients[service] = session.client(service, endpoint_url=aws.endpoint_url or None, config=cfg)
            return self._clients[service]

    def aws_call(self, service: str, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.aws(service), operation)(**kwargs)
        except Exception as exc:
            raise aws_error(exc, operation) from exc

    def kube(self) -> Any:
        with self._lock:
            if "kube" not in self._clients:
                self._clients["kube"] = self.kube_stream_client()
            return self._clients["kube"]

    def kube_stream_client(self) -> Any:
        """A new ApiClient of its own, for one ``kubernetes.stream`` call (a port-forward).

        ``kubernetes.stream`` swaps ``api_client.request`` for a WebSocket request while it sets the
        stream up; on the shared client that swap would hijack every REST call other probes make
        from their threads meanwhile (the kube probe's reads then fail at random). The shared one
        (``kube()``) is for REST calls only.
        """
        from kubernetes import config as kconfig

        k = self.config.kubernetes
        try:
            return kconfig.new_client_from_config(config_file=k.kubeconfig or None, context=k.context or None)
        except Exception as exc:
            raise KubeError(f"cannot load the kubeconfig: {exc}",
                            hint="set kubernetes.kubeconfig / KUBECONFIG and kubernetes.context") from exc

    def kube_call(self, api: str, method: str, verb: str, resource: str, where: str | None = None, **kwargs: Any) -> Any:
        """Call ``client.<api>(...).<method>(**kwargs)``; ``verb``/``resource``/``where`` name it in errors (RBAC)."""
        from kubernetes import client

        api_obj = getattr(client, api)(self.kube())
        kwargs.setdefault("_request_timeout", self.config.timeouts.api)
        try:
            return getattr(api_obj, method)(**kwargs)
        except Exception as exc:
            raise kube_error(exc, verb, resource, where) from exc

    # --- cached lookups ----------------------------------------------------------------

    async def cached(self, key: str, producer: Callable[[], Awaitable[Any]]) -> Any:
        fut = self._cache.get(key)
        if fut is None:
            fut = asyncio.ensure_future(producer())
            self._cache[key] = fut
        return await asyncio.shield(fut)

    def close(self) -> None:
        for key in [k for k in self._clients if k.startswith("pf-")]:
            self._clients.pop(key).close()
        kube = self._clients.pop("kube", None)
        if kube is not None:
            try:
                kube.close()
            except Exception:
                pass
        self._clients.clear()
