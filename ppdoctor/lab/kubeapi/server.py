"""The lab's in-process Kubernetes API server (aiohttp), reached through the official client.

    server = KubeApiServer(manifests, token="…")
    await server.start()            # server.url = "http://127.0.0.1:PORT"
    server.write_kubeconfig(path)
    …
    await server.stop()

or, from synchronous code and tests, ``with ThreadedKubeApiServer(manifests) as srv: …``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import unquote

import yaml
from aiohttp import web

from . import errors
from .errors import ApiError
from .faults import DEFAULT_USER, FaultInjector, FaultRule, RequestInfo
from .kubeconfig import write_kubeconfig
from .patch import JSON_PATCH, MERGE, STRATEGIC
from .portforward import PortForwardSession, Resolver, parse_ports, serve_portforward
from .resources import Registry, ResourceType
from .selectors import SelectorError, parse_field_selector, parse_label_selector
from .store import Store, WatchEvent

log = logging.getLogger("ppdoctor.lab.kubeapi")

_PUBLIC_PATHS = {"/version", "/version/", "/healthz", "/livez", "/readyz"}
_OBJECT_DELETE_RETURNS = {("", "pods"), ("", "services"), ("", "namespaces")}
_ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
DEFAULT_WATCH_TIMEOUT = 1800.0
_INFO_KEY = web.RequestKey("kube_info", RequestInfo) if hasattr(web, "RequestKey") else "kube_info"


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it (for tests and for the lab's timeline)."""

    time: float
    method: str
    path: str
    query: str
    content_type: str
    verb: str | None
    resource: str | None
    namespace: str | None
    name: str | None
    status: int
    user_agent: str


class _Http(Exception):
    def __init__(self, response: web.StreamResponse) -> None:
        self.response = response


def _json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _error_response(err: ApiError) -> web.Response:
    return _json_response(err.status(), err.code, err.headers or None)


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1", "yes")


class KubeApiServer:
    def __init__(
        self,
        manifests: Iterable[dict[str, Any]] = (),
        *,
        token: str | None = "",
        host: str = "127.0.0.1",
        port: int = 0,
        resolve_pod_port: Resolver | None = None,
        registry: Registry | None = None,
        kube_version: str = "v1.31.4",
        user: str = DEFAULT_USER,
        tls: bool = False,
    ) -> None:
        """``token=""`` (default) generates a random bearer token; ``token=None`` disables auth.
        ``tls=True`` serves HTTPS with a throw-away CA (``server.ca_pem``, put into the
        kubeconfig) — needed for kubectl/client-go, which never send a token over plain HTTP."""
        self.store = Store(manifests, registry=registry)
        self.registry = self.store.registry
        self.token = secrets.token_urlsafe(24) if token == "" else token
        self.host = host
        self.port = port
        self.url: str | None = None
        self.user = user
        self.kube_version = kube_version
        self.resolve_pod_port: Resolver = resolve_pod_port or self._default_resolver
        self.faults = FaultInjector()
        self.requests: deque[RequestRecord] = deque(maxlen=2000)
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pf_sessions: set[PortForwardSession] = set()
        self._watch_queues: set[asyncio.Queue[WatchEvent | None]] = set()
        self._stopping = False
        self.tls = tls
        self.ca_pem: bytes | None = None
        self._ssl_context = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> str:
        self._loop = asyncio.get_running_loop()
        self.store.loop = self._loop
        self._stopping = False
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        if self.tls and self._ssl_context is None:
            from .tls import make_serving_cert

            cert = make_serving_cert(self.host)
            self.ca_pem = cert.ca_pem
            self._ssl_context = cert.server_context()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self._ssl_context)
        await site.start()
        sockname = self._runner.addresses[0]
        self.port = int(sockname[1])
        scheme = "https" if self.tls else "http"
        self.url = f"{scheme}://{self.host}:{self.port}"
        log.info("lab kube-apiserver listening on %s", self.url)
        return self.url

    async def stop(self) -> None:
        self._stopping = True
        for q in list(self._watch_queues):
            q.put_nowait(None)
        for s in list(self._pf_sessions):
            await s.close()
        if self._runner is not None:
            server = self._runner.server
            transports = [h.transport for h in (server.connections if server else []) if h.transport]
            await self._runner.cleanup()
            self._runner = None
            for transport in transports:  # e.g. a TLS close_notify nobody answers
                if not transport.is_closing() or self.tls:
                    transport.abort()
        # let subscriber tasks scheduled by the last writes finish
        tasks = [t for t in self.store._tasks if not t.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def write_kubeconfig(self, path: str, *, context: str = "ppdoctor-lab", namespace: str = "istio-system") -> str:
        if self.url is None:
            raise RuntimeError("start the server first")
        return write_kubeconfig(path, self.url, self.token, context=context, namespace=namespace, ca_pem=self.ca_pem)

    # ------------------------------------------------------------------ faults

    def inject_fault(
        self,
        verb: str = "*",
        resource: str = "*",
        name: str = "*",
        *,
        namespace: str | None = None,
        status: int = 500,
        reason: str | None = None,
        message: str | None = None,
        times: int | None = None,
        retry_after: int | None = None,
        delay: float = 0.0,
        user: str | None = None,
    ) -> FaultRule:
        """Make matching requests fail ``times`` times (None: until removed). ``status=0`` with
        ``delay`` only slows requests down. Messages default to the apiserver's wording."""
        return self.faults.add(
            FaultRule(verb=verb, resource=resource, name=name, namespace=namespace, status=status,
                      reason=reason, message=message, times=times, retry_after=retry_after,
                      delay=delay, user=user or self.user)
        )

    def forbid(
        self, verb: str, resource: str, name: str = "*", *, namespace: str | None = None,
        times: int | None = None, user: str | None = None,
    ) -> FaultRule:
        """RBAC denial: 403 with ``… is forbidden: User "…" cannot VERB resource …``."""
        return self.inject_fault(verb, resource, name, namespace=namespace, status=403, times=times, user=user)

    def throttle(self, verb: str = "*", resource: str = "*", *, retry_after: int = 1, times: int | None = 1) -> FaultRule:
        """429 TooManyRequests with a Retry-After header."""
        return self.inject_fault(verb, resource, status=429, retry_after=retry_after, times=times)

    def clear_faults(self) -> None:
        self.faults.clear()

    # ------------------------------------------------------------------ port-forward target

    def _default_resolver(self, namespace: str, pod: str, port: int) -> tuple[str, int] | None:
        obj = self.store.get("pods", namespace, pod)
        if obj is None:
            return None
        ip = (obj.get("status") or {}).get("podIP") or "127.0.0.1"
        return ip, port

    # ------------------------------------------------------------------ request entry

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        info: RequestInfo | None = None
        try:
            try:
                response, info = await self._route(request)
            except ApiError as err:
                response = _error_response(err)
            except _Http as h:
                response = h.response
        except Exception as exc:  # pragma: no cover - a bug in the lab server
            log.exception("lab kube-apiserver: %s %s failed", request.method, request.path)
            response = _error_response(errors.internal_error(f"{type(exc).__name__}: {exc}"))
        info = info or request.get(_INFO_KEY)
        self.requests.append(
            RequestRecord(
                time=time.time(),
                method=request.method,
                path=request.path,
                query=request.query_string,
                content_type=request.headers.get("Content-Type", ""),
                verb=info.verb if info else None,
                resource=(info.resource + (f"/{info.subresource}" if info.subresource else "")) if info else None,
                namespace=info.namespace if info else None,
                name=info.name if info else None,
                status=response.status,
                user_agent=request.headers.get("User-Agent", ""),
            )
        )
        return response

    def _authenticate(self, request: web.Request) -> None:
        if self.token is None or request.path in _PUBLIC_PATHS:
            return
        auth = request.headers.get("Authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(value.strip(), self.token):
            raise errors.unauthorized()

    async def _route(self, request: web.Request) -> tuple[web.StreamResponse, RequestInfo | None]:
        self._authenticate(request)
        path = request.path
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok", content_type="text/plain"), None
        if path.rstrip("/") == "/version":
            return _json_response(self._version()), None
        parts = [unquote(p) for p in path.strip("/").split("/") if p != ""]
        if not parts:
            return _json_response({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version"]}), None
        if parts[0] == "api":
            if len(parts) == 1:
                return self._discovery_only(request, self._api_versions(request))
            group, version, rest = "", parts[1], parts[2:]
            if version != "v1":
                raise self._not_found_path()
        elif parts[0] == "apis":
            if len(parts) == 1:
                return self._discovery_only(request, self._group_list())
            group = parts[1]
            if group not in self.registry.groups():
                raise self._not_found_path()
            if len(parts) == 2:
                return self._discovery_only(request, self._group(group))
            version, rest = parts[2], parts[3:]
            if version not in self.registry.groups()[group]:
                raise self._not_found_path()
        else:
            raise self._not_found_path()
        if not rest:
            return self._discovery_only(request, self._resource_list(group, version))
        return await self._resource_request(request, group, version, rest)

    def _discovery_only(self, request: web.Request, body: dict[str, Any]) -> tuple[web.StreamResponse, None]:
        if request.method not in ("GET", "HEAD"):
            raise errors.method_not_allowed(request.method, request.path)
        return _json_response(body), None

    @staticmethod
    def _not_found_path() -> ApiError:
        return ApiError(404, "NotFound", "the server could not find the requested resource", details={"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})

    # ------------------------------------------------------------------ discovery bodies

    def _version(self) -> dict[str, Any]:
        v = self.kube_version.lstrip("v").split(".")
        return {
            "major": v[0],
            "minor": v[1] if len(v) > 1 else "0",
            "gitVersion": f"{self.kube_version}+ppdoctor-lab",
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z",
            "goVersion": "go1.22.10",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    def _api_versions(self, request: web.Request) -> dict[str, Any]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self.port}"}],
        }

    def _group(self, group: str) -> dict[str, Any]:
        versions = self.registry.groups()[group]
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": group,
            "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
            "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
        }

    def _group_list(self) -> dict[str, Any]:
        groups = [self._group(g) for g in self.registry.groups()]
        for g in groups:
            g.pop("kind")
            g.pop("apiVersion")
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        resources = []
        for t in sorted(self.registry.for_group_version(group, version), key=lambda t: t.plural):
            verbs = [v for v in _ALL_VERBS if not (t.kind == "Namespace" and v == "deletecollection")]
            entry: dict[str, Any] = {
                "name": t.plural,
                "singularName": t.singular,
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": verbs,
            }
            if t.short_names:
                entry["shortNames"] = list(t.short_names)
            if t.categories:
                entry["categories"] = list(t.categories)
            resources.append(entry)
            for sub in t.subresources:
                if sub == "status":
                    resources.append({"name": f"{t.plural}/status", "singularName": "", "namespaced": t.namespaced,
                                      "kind": t.kind, "verbs": ["get", "patch", "update"]})
                elif sub == "portforward":
                    resources.append({"name": f"{t.plural}/portforward", "singularName": "", "namespaced": t.namespaced,
                                      "kind": "PodPortForwardOptions", "verbs": ["create", "get"]})
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }

    # ------------------------------------------------------------------ resource requests

    def _parse_resource_path(
        self, group: str, version: str, rest: list[str]
    ) -> tuple[ResourceType, str | None, str | None, str | None]:
        """→ (type, namespace, name, subresource)."""
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            # /namespaces/{ns}/{plural}[/{name}[/{sub}]] — unless it is a namespace subresource
            cand = self.registry.lookup(group, version, rest[2])
            if cand is not None and cand.namespaced:
                namespace = rest[1]
                rest = rest[2:]
        rtype = self.registry.lookup(group, version, rest[0])
        if rtype is None:
            raise self._not_found_path()
        if rtype.namespaced and namespace is None and len(rest) > 1:
            raise self._not_found_path()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3:
            raise self._not_found_path()
        if sub is not None and sub not in rtype.subresources:
            raise self._not_found_path()
        return rtype, namespace, name, sub

    async def _resource_request(
        self, request: web.Request, group: str, version: str, rest: list[str]
    ) -> tuple[web.StreamResponse, RequestInfo]:
        rtype, namespace, name, sub = self._parse_resource_path(group, version, rest)
        q = request.query
        method = request.method
        watch = _truthy(q.get("watch"))
        if sub == "portforward":
            # the WebSocket upgrade is a GET → RBAC verb "get" (kube-apiserver ≤ 1.34); SPDY POST → "create"
            verb = "create" if method == "POST" else "get"
        elif method in ("GET", "HEAD"):
            verb = "get" if name else ("watch" if watch else "list")
        elif method == "POST":
            verb = "create"
        elif method == "PUT":
            verb = "update"
        elif method == "PATCH":
            verb = "patch"
        elif method == "DELETE":
            verb = "delete" if name else "deletecollection"
        else:
            raise errors.method_not_allowed(method, request.path)
        info = RequestInfo(verb, group, version, rtype.plural, sub, namespace, name, rtype.kind)
        request[_INFO_KEY] = info

        rule = self.faults.take(info)
        if rule is not None:
            if rule.delay:
                await asyncio.sleep(rule.delay)
            err = rule.error(info)
            if err is not None:
                raise err

        dry_run = "All" in q.getall("dryRun", [])

        if sub == "portforward":
            return await self._portforward(request, rtype, namespace or "", name or ""), info

        if name is None:
            if method in ("GET", "HEAD"):
                if watch:
                    return await self._watch(request, rtype, version, namespace), info
                return self._list(request, rtype, version, namespace), info
            if method == "POST":
                if not rtype.namespaced or namespace is not None:
                    body = await self._read_body(request)
                    obj = self.store.api_create(rtype, namespace, body, dry_run=dry_run)
                    return _json_response(self._out(rtype, version, obj), 201), info
                raise errors.method_not_allowed(method, request.path)
            if method == "DELETE":
                opts = await self._delete_options(request)
                dry_run = dry_run or "All" in (opts.get("dryRun") or [])
                gone = self.store.api_delete_collection(
                    rtype, namespace, q.get("labelSelector"), q.get("fieldSelector"), dry_run=dry_run
                )
                return _json_response(self._list_body(rtype, version, gone, self.store.resource_version)), info
            raise errors.method_not_allowed(method, request.path)

        if method in ("GET", "HEAD"):
            obj = self.store.api_get(rtype, namespace, name)
            return _json_response(self._out(rtype, version, obj)), info
        if method == "PUT":
            body = await self._read_body(request)
            obj = self.store.api_replace(rtype, namespace, name, body, subresource=sub, dry_run=dry_run)
            return _json_response(self._out(rtype, version, obj)), info
        if method == "PATCH":
            ctype = (request.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
            accepted = [JSON_PATCH, MERGE] + ([] if rtype.custom else [STRATEGIC])
            if ctype not in accepted:
                raise errors.unsupported_media_type(ctype, accepted)
            patch = await self._read_json(request)
            obj = self.store.api_patch(rtype, namespace, name, patch, ctype, subresource=sub, dry_run=dry_run)
            return _json_response(self._out(rtype, version, obj)), info
        if method == "DELETE":
            if sub:
                raise errors.method_not_allowed(method, request.path)
            opts = await self._delete_options(request)
            dry_run = dry_run or "All" in (opts.get("dryRun") or [])
            gone = self.store.api_delete(rtype, namespace, name, preconditions=opts.get("preconditions"), dry_run=dry_run)
            if (rtype.group, rtype.plural) in _OBJECT_DELETE_RETURNS:
                return _json_response(self._out(rtype, version, gone)), info
            return _json_response(
                errors.success_status(name, rtype.group, rtype.plural, gone["metadata"].get("uid"))
            ), info
        raise errors.method_not_allowed(method, request.path)

    # ------------------------------------------------------------------ bodies

    async def _read_json(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            raise errors.bad_request("the body of the request was empty")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise errors.bad_request(f"error decoding patch: {exc}") from None

    async def _read_body(self, request: web.Request) -> Any:
        ctype = (request.headers.get("Content-Type") or "application/json").split(";", 1)[0].strip().lower()
        raw = await request.read()
        if not raw:
            raise errors.bad_request("the body of the request was empty")
        if ctype in ("application/yaml", "application/x-yaml", "text/yaml"):
            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise errors.bad_request(f"error decoding YAML: {exc}") from None
        if ctype not in ("application/json", "*/*", ""):
            raise errors.unsupported_media_type(ctype, ["application/json", "application/yaml"])
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise errors.bad_request(f"couldn't get version/kind; json parse error: {exc}") from None

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise errors.bad_request(f"error decoding DeleteOptions: {exc}") from None
        return body if isinstance(body, dict) else {}

    def _out(self, rtype: ResourceType, version: str, obj: dict[str, Any]) -> dict[str, Any]:
        if rtype.custom:
            obj["apiVersion"] = rtype.api_version(version)
        return obj

    def _list_body(
        self, rtype: ResourceType, version: str, items: list[dict[str, Any]], rv: str,
        cont: str | None = None, remaining: int | None = None,
    ) -> dict[str, Any]:
        out_items = []
        for obj in items:
            obj = self._out(rtype, version, obj)
            if not rtype.custom:
                obj.pop("kind", None)
                obj.pop("apiVersion", None)
            out_items.append(obj)
        meta: dict[str, Any] = {"resourceVersion": rv}
        if cont:
            meta["continue"] = cont
        if remaining is not None:
            meta["remainingItemCount"] = remaining
        return {"kind": rtype.list_kind, "apiVersion": rtype.api_version(version), "metadata": meta, "items": out_items}

    def _list(self, request: web.Request, rtype: ResourceType, version: str, namespace: str | None) -> web.Response:
        q = request.query
        limit = None
        if q.get("limit"):
            try:
                limit = int(q["limit"])
            except ValueError:
                raise errors.bad_request(f"invalid limit: {q['limit']!r}") from None
        items, rv, cont, remaining = self.store.api_list(
            rtype, namespace, q.get("labelSelector"), q.get("fieldSelector"), limit=limit,
            continue_token=q.get("continue") or None,
        )
        return _json_response(self._list_body(rtype, version, items, rv, cont, remaining))

    # ------------------------------------------------------------------ watch

    async def _watch(
        self, request: web.Request, rtype: ResourceType, version: str, namespace: str | None
    ) -> web.StreamResponse:
        q = request.query
        try:
            lreqs = parse_label_selector(q.get("labelSelector"))
            freqs = parse_field_selector(q.get("fieldSelector"), rtype.field_allowed)
        except SelectorError as exc:
            raise errors.bad_request(str(exc)) from None
        since: int | None = None
        rv_param = q.get("resourceVersion")
        if rv_param not in (None, "", "0"):
            try:
                since = int(rv_param)  # type: ignore[arg-type]
            except ValueError:
                raise errors.bad_request(f"invalid resource version: {rv_param!r}") from None
        try:
            timeout = float(q.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        except ValueError:
            raise errors.bad_request("invalid timeoutSeconds") from None

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue()
        key = (rtype.group, rtype.plural)

        def listener(ev: WatchEvent) -> None:
            if ev.key == key:
                loop.call_soon_threadsafe(queue.put_nowait, ev)

        replay, cur = self.store.open_watch(rtype, listener, since)
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        if replay is None:
            err = errors.gone(f"too old resource version: {since} ({cur})")
            await resp.write((json.dumps({"type": "ERROR", "object": err.status()}) + "\n").encode())
            await resp.write_eof()
            return resp
        self._watch_queues.add(queue)
        try:
            last = cur if since is None else since
            for ev in replay:
                await self._send_event(resp, rtype, version, namespace, lreqs, freqs, ev, initial=since is None)
                last = max(last, ev.rv)
            deadline = loop.time() + timeout
            while not self._stopping:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    ev = await asyncio.wait_for(queue.get(), min(remaining, 2.0))
                except TimeoutError:
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        break  # the client went away
                    continue
                if ev is None:
                    break
                if ev.rv <= last:
                    continue
                last = ev.rv
                await self._send_event(resp, rtype, version, namespace, lreqs, freqs, ev, initial=False)
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self.store.close_watch(listener)
            self._watch_queues.discard(queue)
        try:
            await resp.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass
        return resp

    async def _send_event(
        self, resp: web.StreamResponse, rtype: ResourceType, version: str, namespace: str | None,
        lreqs: list, freqs: list, ev: WatchEvent, *, initial: bool,
    ) -> None:
        new_match = self.store.matches(rtype, ev.obj, namespace, lreqs, freqs)
        if initial or ev.type == "ADDED":
            etype = "ADDED" if new_match else None
        elif ev.type == "DELETED":
            etype = "DELETED" if new_match else None
        else:
            old_match = ev.old is not None and self.store.matches(rtype, ev.old, namespace, lreqs, freqs)
            etype = {
                (True, True): "MODIFIED",
                (True, False): "ADDED",
                (False, True): "DELETED",
            }.get((new_match, old_match))
        if etype is None:
            return
        obj = self._out(rtype, version, json.loads(json.dumps(ev.obj)))
        await resp.write((json.dumps({"type": etype, "object": obj}, separators=(",", ":")) + "\n").encode())

    # ------------------------------------------------------------------ port-forward

    async def _portforward(
        self, request: web.Request, rtype: ResourceType, namespace: str, name: str
    ) -> web.StreamResponse:
        if request.method not in ("GET", "POST"):
            raise errors.method_not_allowed(request.method, request.path)
        pod = self.store.api_get(rtype, namespace, name)
        try:
            ports = parse_ports(request.query.getall("ports", []))
        except ValueError as exc:
            raise errors.bad_request(str(exc)) from None
        if request.headers.get("Upgrade", "").lower() != "websocket":
            raise errors.bad_request("Upgrade request required")
        return await serve_portforward(
            request, namespace=namespace, pod=pod, ports=ports,
            resolver=self.resolve_pod_port, sessions=self._pf_sessions,
        )


class ThreadedKubeApiServer:
    """A KubeApiServer on its own event loop in a background thread (for sync code and tests).

        with ThreadedKubeApiServer(manifests) as srv:
            srv.write_kubeconfig(path); srv.store.put(...); srv.forbid(...)
    """

    def __init__(self, manifests: Iterable[dict[str, Any]] = (), **kwargs: Any) -> None:
        self.server = KubeApiServer(manifests, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self.server.url is not None
        return self.server.url

    @property
    def store(self) -> Store:
        return self.server.store

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    def __getattr__(self, name: str) -> Any:
        # delegate inject_fault, forbid, throttle, clear_faults, token, requests, …
        if name == "server" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.server, name)

    def start(self) -> Self:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.server.start())
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="ppdoctor-lab-kubeapi", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def call(self, fn: Any, *args: Any, timeout: float = 10.0) -> Any:
        """Run ``fn(*args)`` in the server's loop thread (awaiting it if it is a coroutine)."""

        async def runner() -> Any:
            res = fn(*args)
            if asyncio.iscoroutine(res):
                res = await res
            return res

        return asyncio.run_coroutine_threadsafe(runner(), self.loop).result(timeout)

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(15)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
