"""Object storage of the lab API server: the single source of truth of the lab's cluster state.

Two faces:

* the **API face** (``api_*`` methods) used by the HTTP layer, with apiserver semantics:
  resourceVersion conflicts, status subresource separation, validation, no-op detection;
* the **supervisor face** (``get``/``list``/``put``/``create``/``replace``/``patch``/
  ``delete``/``update_status``/``mutate``/``subscribe``), privileged: it may write status
  with the rest of the object and auto-creates missing namespaces.

Every successful write bumps one global counter (``metadata.resourceVersion``), is appended
to the watch history and is reported to subscribers as ``(event_type, obj, old)`` after the
store lock is released.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime as _dt
import inspect
import json
import logging
import random
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from . import errors
from .patch import STRATEGIC, PatchError, apply_patch, normalize_patch_type
from .resources import (
    Allocator,
    Registry,
    ResourceType,
    apply_defaults,
    check_configmap_types,
    check_meta_types,
    validate,
    validate_immutable,
)
from .selectors import (
    SelectorError,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)

log = logging.getLogger("ppdoctor.lab.kubeapi")

Callback = Callable[[str, dict[str, Any], "dict[str, Any] | None"], Any]

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_GENERATE_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def now_rfc3339() -> str:
    """UTC time in the form Kubernetes writes timestamps (second precision)."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def name_suffix(length: int = 5) -> str:
    """Random suffix in the alphabet Kubernetes uses for generated names (``-x7k2q``)."""
    return "".join(random.choice(_GENERATE_CHARS) for _ in range(length))


def pod_template_hash(template: dict[str, Any], collision_count: int = 0) -> str:
    """A stable ``pod-template-hash`` for a Deployment's ``spec.template`` (FNV-1a over the
    canonical JSON, encoded like the ReplicaSet controller's ``rand.SafeEncodeString``).
    Same template → same hash; a changed template → a new ReplicaSet/pod name prefix."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    h = 0x811C9DC5
    for b in data + str(collision_count).encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    digits = str(h)
    return "".join(_GENERATE_CHARS[ord(c) % len(_GENERATE_CHARS)] for c in digits)


@dataclass(frozen=True)
class WatchEvent:
    rv: int
    key: tuple[str, str]  # (group, plural)
    type: str  # ADDED / MODIFIED / DELETED
    obj: dict[str, Any]
    old: dict[str, Any] | None


class Store:
    def __init__(
        self,
        manifests: Iterable[dict[str, Any]] = (),
        *,
        registry: Registry | None = None,
        history: int = 4096,
    ) -> None:
        self.registry = registry or Registry()
        self._objs: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {}
        self._rv = 0
        self._lock = threading.RLock()
        self._subs: list[tuple[Callback, frozenset[str] | None]] = []
        self._listeners: list[Callable[[WatchEvent], None]] = []
        self._dispatch = threading.local()
        self._history: deque[WatchEvent] = deque(maxlen=history)
        self._alloc = Allocator()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.callback_errors: list[BaseException] = []
        for ns in DEFAULT_NAMESPACES:
            self.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for m in manifests:
            if not m:
                continue  # empty YAML documents
            if str(m.get("kind", "")).endswith("List") and isinstance(m.get("items"), list):
                for item in m["items"]:
                    self.put(item)
            else:
                self.put(m)

    # ------------------------------------------------------------------ helpers

    @property
    def resource_version(self) -> str:
        return str(self._rv)

    def resolve(self, ref: Any) -> ResourceType:
        return self.registry.resolve(ref)

    def _bucket(self, rtype: ResourceType) -> dict[tuple[str, str], dict[str, Any]]:
        return self._objs.setdefault((rtype.group, rtype.plural), {})

    def _key(self, rtype: ResourceType, namespace: str | None, name: str) -> tuple[str, str]:
        return ((namespace or "") if rtype.namespaced else "", name)

    def _rtype_of(self, obj: dict[str, Any]) -> ResourceType:
        if not isinstance(obj, dict):
            raise errors.bad_request("the object must be a JSON object")
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not api_version or not kind:
            raise errors.bad_request("Object 'Kind' is missing in '" + json.dumps(obj)[:200] + "'")
        rtype = self.registry.by_kind(api_version, kind)
        if rtype is None:
            raise errors.bad_request(f'no matches for kind "{kind}" in version "{api_version}"')
        return rtype

    # ------------------------------------------------------------------ reads

    def get(self, ref: Any, namespace: str | None, name: str, default: Any = None) -> dict[str, Any] | None:
        """A deep copy of the object, or ``default`` when it does not exist."""
        rtype = self.resolve(ref)
        with self._lock:
            obj = self._bucket(rtype).get(self._key(rtype, namespace, name))
            return copy.deepcopy(obj) if obj is not None else default

    def list(
        self,
        ref: Any,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        """Deep copies, sorted by (namespace, name) like etcd keys. ``namespace=None``: all."""
        rtype = self.resolve(ref)
        items, _rv, _cont, _rem = self.api_list(rtype, namespace, label_selector, field_selector)
        return items

    def api_get(self, rtype: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        with self._lock:
            obj = self._bucket(rtype).get(self._key(rtype, namespace, name))
            if obj is None:
                raise errors.not_found(rtype.group, rtype.plural, name)
            return copy.deepcopy(obj)

    def api_list(
        self,
        rtype: ResourceType,
        namespace: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> tuple[list[dict[str, Any]], str, str | None, int | None]:
        """→ (items, list resourceVersion, continue token, remainingItemCount)."""
        try:
            lreqs = parse_label_selector(label_selector)
            freqs = parse_field_selector(field_selector, rtype.field_allowed)
        except SelectorError as exc:
            raise errors.bad_request(str(exc)) from None
        start_after: tuple[str, str] | None = None
        if continue_token:
            try:
                tok = json.loads(base64.urlsafe_b64decode(continue_token.encode()).decode())
                start_after = (tok["ns"], tok["name"])
            except (ValueError, KeyError, TypeError):
                raise errors.bad_request("continue key is not valid: invalid continue token") from None
        with self._lock:
            keys = sorted(self._bucket(rtype))
            out = []
            for key in keys:
                if namespace and rtype.namespaced and key[0] != namespace:
                    continue
                if start_after is not None and key <= start_after:
                    continue
                obj = self._bucket(rtype)[key]
                if not labels_match(lreqs, (obj.get("metadata") or {}).get("labels")):
                    continue
                if not fields_match(freqs, obj):
                    continue
                out.append(obj)
            rv = str(self._rv)
            cont = None
            remaining = None
            if limit and limit > 0 and len(out) > limit:
                remaining = len(out) - limit
                out = out[:limit]
                last = out[-1]["metadata"]
                cont = base64.urlsafe_b64encode(
                    json.dumps({"ns": last.get("namespace", "") if rtype.namespaced else "", "name": last["name"], "rv": rv}).encode()
                ).decode()
            return copy.deepcopy(out), rv, cont, remaining

    def matches(self, rtype: ResourceType, obj: dict[str, Any], namespace: str | None, lreqs: list, freqs: list) -> bool:
        meta = obj.get("metadata") or {}
        if namespace and rtype.namespaced and meta.get("namespace") != namespace:
            return False
        return labels_match(lreqs, meta.get("labels")) and fields_match(freqs, obj)

    def open_watch(
        self, rtype: ResourceType, listener: Callable[[WatchEvent], None], since: int | None
    ) -> tuple[list[WatchEvent] | None, int]:
        """Register ``listener`` (called with every later WatchEvent, in the writer's thread)
        and return, atomically, the events a watch from ``since`` must replay first:
        synthetic ADDED events for the current objects when ``since`` is None, the history
        after ``since`` otherwise (None when it is too old). Also returns the current RV."""
        key = (rtype.group, rtype.plural)
        with self._lock:
            cur = self._rv
            if since is None:
                objs = [self._bucket(rtype)[k] for k in sorted(self._bucket(rtype))]
                replay: list[WatchEvent] | None = [
                    WatchEvent(cur, key, "ADDED", copy.deepcopy(o), None) for o in objs
                ]
            else:
                hist = self.history_since(since)
                replay = None if hist is None else [e for e in hist if e.key == key]
            if replay is not None:
                self._listeners.append(listener)
            return replay, cur

    def close_watch(self, listener: Callable[[WatchEvent], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def history_since(self, rv: int) -> list[WatchEvent] | None:
        """Events with resourceVersion > rv, or None when the history no longer reaches rv."""
        with self._lock:
            if rv >= self._rv:
                return []
            if self._history and self._history[0].rv > rv + 1:
                return None
            if not self._history and rv < self._rv:
                return None
            return [e for e in self._history if e.rv > rv]

    # ------------------------------------------------------------------ subscriptions

    def subscribe(self, callback: Callback, kinds: Iterable[str] | None = None) -> Callable[[], None]:
        """``callback(event_type, obj, old)`` after each successful write. ``kinds`` filters by
        ``kind`` (e.g. ``{"Deployment", "Pod"}``). Async callbacks are scheduled as tasks.
        Returns a function that unsubscribes."""
        entry = (callback, frozenset(kinds) if kinds is not None else None)
        with self._lock:
            self._subs.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subs:
                    self._subs.remove(entry)

        return unsubscribe

    def _notify(self, events: list[WatchEvent]) -> None:
        # Writes made by a subscriber while it handles an event are queued and delivered after
        # the current event has reached every subscriber: everyone sees events in RV order.
        pending: deque[WatchEvent] | None = getattr(self._dispatch, "pending", None)
        if pending is not None:
            pending.extend(events)
            return
        pending = self._dispatch.pending = deque(events)
        try:
            while pending:
                self._deliver(pending.popleft())
        finally:
            self._dispatch.pending = None

    def _deliver(self, ev: WatchEvent) -> None:
        with self._lock:
            subs = list(self._subs)
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(ev)
            except Exception:  # pragma: no cover - a closed watch
                log.exception("kubeapi watch listener failed")
        kind = ev.obj.get("kind")
        for cb, kinds in subs:
            if kinds is not None and kind not in kinds:
                continue
            try:
                res = cb(ev.type, copy.deepcopy(ev.obj), copy.deepcopy(ev.old) if ev.old is not None else None)
                if inspect.isawaitable(res):
                    self._schedule(res)
            except Exception as exc:
                self.callback_errors.append(exc)
                log.exception("kubeapi subscriber %r failed on %s %s", cb, ev.type, kind)

    def _schedule(self, awaitable: Any) -> None:
        async def runner() -> None:
            try:
                await awaitable
            except Exception as exc:
                self.callback_errors.append(exc)
                log.exception("kubeapi async subscriber failed")

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            task = loop.create_task(runner())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif self.loop is not None and not self.loop.is_closed():
            asyncio.run_coroutine_threadsafe(runner(), self.loop)
        else:
            asyncio.run(runner())

    # ------------------------------------------------------------------ the write path

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _ensure_namespace(self, rtype: ResourceType, namespace: str | None, privileged: bool, events: list[WatchEvent]) -> None:
        if not rtype.namespaced or not namespace:
            return
        ns_type = self.registry.resolve(("", "v1", "Namespace"))
        if self._key(ns_type, None, namespace) in self._bucket(ns_type):
            return
        if not privileged:
            raise errors.not_found("", "namespaces", namespace)
        events.extend(
            self._commit(ns_type, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                         None, privileged=True, dry_run=False)
        )

    def _commit(
        self,
        rtype: ResourceType,
        new: dict[str, Any],
        old: dict[str, Any] | None,
        *,
        privileged: bool,
        dry_run: bool,
        subresource: str | None = None,
        result: list[dict[str, Any]] | None = None,
    ) -> list[WatchEvent]:
        """Create (old is None) or update. Caller holds the lock. Appends the stored object to
        ``result`` and returns the events to notify."""
        new = _normalized(rtype, new)
        if old is None:
            _stamp_new(rtype, new["metadata"], new, privileged=privileged)
        else:
            new = _carry_over(rtype, new, old, privileged=privileged, subresource=subresource)
        meta = new["metadata"]
        self._validate(rtype, new, old)

        name = meta["name"]
        ns = meta.get("namespace") if rtype.namespaced else None
        key = self._key(rtype, ns, name)
        bucket = self._bucket(rtype)
        if old is None and key in bucket:
            raise errors.already_exists(rtype.group, rtype.plural, name)

        if old is not None and _same(old, new):
            if result is not None:
                result.append(copy.deepcopy(old))
            return []
        events: list[WatchEvent] = []
        if old is None:
            self._ensure_namespace(rtype, ns, privileged, events)
        if dry_run:
            meta["resourceVersion"] = old["metadata"].get("resourceVersion", "") if old else ""
            if result is not None:
                result.append(new)
            return []
        events.append(self._write(rtype, bucket, key, new, old))
        if result is not None:
            result.append(copy.deepcopy(new))
        return events

    def _validate(self, rtype: ResourceType, new: dict[str, Any], old: dict[str, Any] | None) -> None:
        """Defaults first, then the API server's validation (and immutability on update): 422 Invalid."""
        apply_defaults(rtype, new, self._alloc, old)
        causes = validate(rtype, new)
        if old is not None:
            causes += validate_immutable(rtype, old, new)
        if causes:
            raise errors.invalid(rtype.kind, rtype.group, new["metadata"].get("name"), causes)

    def _write(self, rtype: ResourceType, bucket: dict[tuple[str, str], dict[str, Any]], key: tuple[str, str],
               new: dict[str, Any], old: dict[str, Any] | None) -> WatchEvent:
        """Store ``new`` with the next resourceVersion and record the watch event."""
        meta = new["metadata"]
        meta["resourceVersion"] = self._next_rv()
        # Like the API server, record when the object was last written (probes compare this with
        # pod start times). One entry instead of one per field manager: the lab has no managers.
        meta["managedFields"] = [{"manager": "ppdoctor-lab", "operation": "Update", "apiVersion": new["apiVersion"],
                                  "time": now_rfc3339(), "fieldsType": "FieldsV1", "fieldsV1": {}}]
        bucket[key] = new
        ev = WatchEvent(self._rv, (rtype.group, rtype.plural), "ADDED" if old is None else "MODIFIED",
                        copy.deepcopy(new), copy.deepcopy(old) if old is not None else None)
        self._history.append(ev)
        return ev

    def _remove(self, rtype: ResourceType, key: tuple[str, str], *, dry_run: bool) -> tuple[dict[str, Any], list[WatchEvent]]:
        bucket = self._bucket(rtype)
        old = bucket[key]
        events: list[WatchEvent] = []
        if rtype.kind == "Namespace" and rtype.group == "":
            for other in list(self.registry):
                if not other.namespaced:
                    continue
                ob = self._bucket(other)
                for k in [k for k in ob if k[0] == key[1]]:
                    _o, evs = self._remove(other, k, dry_run=dry_run)
                    events.extend(evs)
        gone = copy.deepcopy(old)
        if dry_run:
            return gone, events
        del bucket[key]
        gone["metadata"]["resourceVersion"] = self._next_rv()
        ev = WatchEvent(self._rv, (rtype.group, rtype.plural), "DELETED", copy.deepcopy(gone), copy.deepcopy(old))
        self._history.append(ev)
        events.append(ev)
        return gone, events

    # ------------------------------------------------------------------ API face

    def api_create(self, rtype: ResourceType, namespace: str | None, body: Any, *, dry_run: bool = False) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        body = copy.deepcopy(body)
        self._check_body_type(rtype, body)
        if body.get("metadata") is None:
            body["metadata"] = {}
        check_meta_types(body)
        meta = body["metadata"]
        if rtype.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        out: list[dict[str, Any]] = []
        with self._lock:
            events = self._commit(rtype, body, None, privileged=False, dry_run=dry_run, result=out)
        self._notify(events)
        return out[0]

    def api_replace(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        body = copy.deepcopy(body)
        self._check_body_type(rtype, body)
        check_meta_types(body)
        meta = body.get("metadata") or {}
        body["metadata"] = meta
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        if rtype.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        out: list[dict[str, Any]] = []
        with self._lock:
            key = self._key(rtype, namespace, name)
            old = self._bucket(rtype).get(key)
            if old is None:
                raise errors.not_found(rtype.group, rtype.plural, name)
            rv = meta.get("resourceVersion")
            if rv:
                if rv != old["metadata"]["resourceVersion"]:
                    raise errors.conflict(rtype.group, rtype.plural, name)
            elif rtype.custom:
                raise errors.invalid(
                    rtype.kind, rtype.group, name,
                    [("FieldValueInvalid", "metadata.resourceVersion", "Invalid value: 0x0: must be specified for an update")],
                )
            meta["name"] = name
            if rtype.namespaced:
                meta["namespace"] = namespace
            events = self._commit(rtype, body, old, privileged=False, dry_run=dry_run,
                                  subresource=subresource, result=out)
        self._notify(events)
        return out[0]

    def api_patch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        patch: Any,
        content_type: str,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        privileged: bool = False,
    ) -> dict[str, Any]:
        ptype = normalize_patch_type(content_type)
        if ptype == STRATEGIC and rtype.custom:
            raise errors.unsupported_media_type(
                content_type,
                ["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"],
            )
        out: list[dict[str, Any]] = []
        with self._lock:
            key = self._key(rtype, namespace, name)
            old = self._bucket(rtype).get(key)
            if old is None:
                raise errors.not_found(rtype.group, rtype.plural, name)
            try:
                new = apply_patch(old, patch, ptype, rtype.kind)
            except PatchError as exc:
                if exc.code == 400:
                    raise errors.bad_request(str(exc)) from None
                if exc.code == 415:
                    raise errors.unsupported_media_type(content_type, [
                        "application/json-patch+json", "application/merge-patch+json",
                        "application/strategic-merge-patch+json"]) from None
                raise errors.ApiError(422, "Invalid", str(exc)) from None
            if not isinstance(new.get("metadata"), dict):
                raise errors.bad_request("the patch removed metadata")
            nmeta = new["metadata"]
            if nmeta.get("name") != name:
                raise errors.bad_request(
                    f"the name of the object ({nmeta.get('name')}) does not match the name on the URL ({name})"
                )
            if rtype.namespaced and nmeta.get("namespace") != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            rv = nmeta.get("resourceVersion")
            if rv and rv != old["metadata"].get("resourceVersion"):
                raise errors.conflict(rtype.group, rtype.plural, name)
            events = self._commit(rtype, new, old, privileged=privileged, dry_run=dry_run,
                                  subresource=subresource, result=out)
        self._notify(events)
        return out[0]

    def api_delete(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        *,
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        with self._lock:
            key = self._key(rtype, namespace, name)
            old = self._bucket(rtype).get(key)
            if old is None:
                raise errors.not_found(rtype.group, rtype.plural, name)
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
                raise errors.conflict(
                    rtype.group, rtype.plural, name,
                    f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {old['metadata']['uid']}",
                )
            if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise errors.conflict(
                    rtype.group, rtype.plural, name,
                    f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                    f"ResourceVersion in object meta: {old['metadata']['resourceVersion']}",
                )
            gone, events = self._remove(rtype, key, dry_run=dry_run)
        self._notify(events)
        return gone

    def api_delete_collection(
        self,
        rtype: ResourceType,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
        *,
        dry_run: bool = False,
    ) -> list[dict[str, Any]]:
        items, _rv, _c, _r = self.api_list(rtype, namespace, label_selector, field_selector)
        events: list[WatchEvent] = []
        gone_all = []
        with self._lock:
            for item in items:
                md = item["metadata"]
                key = self._key(rtype, md.get("namespace"), md["name"])
                if key in self._bucket(rtype):
                    gone, evs = self._remove(rtype, key, dry_run=dry_run)
                    gone_all.append(gone)
                    events.extend(evs)
        self._notify(events)
        return gone_all

    def _check_body_type(self, rtype: ResourceType, body: dict[str, Any]) -> None:
        av, kind = body.get("apiVersion"), body.get("kind")
        if av and av not in _accepted_versions(rtype):
            raise errors.bad_request(
                f"the API version in the data ({av}) does not match the expected API version ({rtype.api_version()})"
            )
        if kind and kind != rtype.kind:
            raise errors.bad_request(
                f"the object provided is unrecognized (must be of type {rtype.kind}): "
                f"kind {kind!r} does not match"
            )

    # ------------------------------------------------------------------ supervisor face

    @staticmethod
    def _default_ns(rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        if rtype.namespaced and not (obj.get("metadata") or {}).get("namespace"):
            obj = copy.deepcopy(obj)
            if not isinstance(obj.get("metadata"), dict):
                obj["metadata"] = {}
            obj["metadata"]["namespace"] = "default"
        return obj

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create; raises ApiError AlreadyExists. Status kept as given; namespace auto-created."""
        rtype = self._rtype_of(obj)
        obj = self._default_ns(rtype, obj)
        out: list[dict[str, Any]] = []
        with self._lock:
            events = self._commit(rtype, obj, None, privileged=True, dry_run=False, result=out)
        self._notify(events)
        return out[0]

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace unconditionally (resourceVersion in ``obj`` is ignored).
        uid and creationTimestamp of an existing object are kept; status is taken from ``obj``."""
        rtype = self._rtype_of(obj)
        obj = self._default_ns(rtype, obj)
        meta = obj.get("metadata") or {}
        out: list[dict[str, Any]] = []
        with self._lock:
            old = None
            if meta.get("name"):
                old = self._bucket(rtype).get(self._key(rtype, meta.get("namespace"), meta["name"]))
            events = self._commit(rtype, obj, old, privileged=True, dry_run=False, result=out)
        self._notify(events)
        return out[0]

    def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Replace an existing object; if ``obj`` carries a resourceVersion it must be current (409)."""
        rtype = self._rtype_of(obj)
        obj = self._default_ns(rtype, obj)
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        out: list[dict[str, Any]] = []
        with self._lock:
            old = self._bucket(rtype).get(self._key(rtype, meta.get("namespace"), name or ""))
            if old is None:
                raise errors.not_found(rtype.group, rtype.plural, name or "")
            rv = meta.get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rtype.group, rtype.plural, name or "")
            events = self._commit(rtype, obj, old, privileged=True, dry_run=False, result=out)
        self._notify(events)
        return out[0]

    def patch(
        self,
        ref: Any,
        namespace: str | None,
        name: str,
        patch: Any,
        patch_type: str = "strategic",
    ) -> dict[str, Any]:
        """``patch_type``: "merge", "strategic", "json" or a content type. Privileged (may touch status)."""
        rtype = self.resolve(ref)
        ptype = normalize_patch_type(patch_type)
        if ptype == STRATEGIC and rtype.custom:
            ptype = normalize_patch_type("merge")
        return self.api_patch(rtype, namespace, name, patch, ptype, privileged=True)

    def update_status(
        self,
        ref: Any,
        namespace: str | None,
        name: str,
        status: dict[str, Any] | Callable[[dict[str, Any]], Any],
        *,
        replace: bool = False,
    ) -> dict[str, Any]:
        """Change ``status`` only. A dict is merged (RFC 7386: ``None`` deletes a key) unless
        ``replace=True``; a callable gets the status dict to mutate (or returns a new one)."""
        rtype = self.resolve(ref)
        out: list[dict[str, Any]] = []
        with self._lock:
            old = self._bucket(rtype).get(self._key(rtype, namespace, name))
            if old is None:
                raise errors.not_found(rtype.group, rtype.plural, name)
            new = copy.deepcopy(old)
            cur = new.get("status") or {}
            if callable(status):
                res = status(cur)
                cur = res if isinstance(res, dict) else cur
            elif replace:
                cur = copy.deepcopy(status)
            else:
                from .patch import merge_patch

                cur = merge_patch(cur, status)
            new["status"] = cur
            events = self._commit(rtype, new, old, privileged=True, dry_run=False,
                                  subresource="status", result=out)
        self._notify(events)
        return out[0]

    def mutate(
        self, ref: Any, namespace: str | None, name: str, fn: Callable[[dict[str, Any]], Any]
    ) -> dict[str, Any]:
        """Read-modify-write under the store lock: ``fn(obj)`` mutates a copy (or returns a new dict)."""
        rtype = self.resolve(ref)
        out: list[dict[str, Any]] = []
        with self._lock:
            old = self._bucket(rtype).get(self._key(rtype, namespace, name))
            if old is None:
                raise errors.not_found(rtype.group, rtype.plural, name)
            new = copy.deepcopy(old)
            res = fn(new)
            if isinstance(res, dict):
                new = res
            events = self._commit(rtype, new, old, privileged=True, dry_run=False, result=out)
        self._notify(events)
        return out[0]

    def delete(self, ref: Any, namespace: str | None, name: str) -> dict[str, Any] | None:
        """Delete; returns the deleted object or None when it did not exist."""
        rtype = self.resolve(ref)
        with self._lock:
            key = self._key(rtype, namespace, name)
            if key not in self._bucket(rtype):
                return None
            gone, events = self._remove(rtype, key, dry_run=False)
        self._notify(events)
        return gone


def _accepted_versions(rtype: ResourceType) -> set[str]:
    return {rtype.api_version(v) for v in rtype.versions}


def _strip_volatile(obj: dict[str, Any]) -> dict[str, Any]:
    o = dict(obj)
    md = dict(o.get("metadata") or {})
    md.pop("resourceVersion", None)
    md.pop("managedFields", None)
    o["metadata"] = md
    return o


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return _strip_volatile(a) == _strip_volatile(b)


def _normalized(rtype: ResourceType, new: dict[str, Any]) -> dict[str, Any]:
    """A copy of a written object with its types checked and the fields the server owns reset."""
    new = copy.deepcopy(new)
    check_meta_types(new)
    if rtype.kind == "ConfigMap":
        check_configmap_types(new)
    new["apiVersion"] = rtype.api_version()
    new["kind"] = rtype.kind
    meta = new.setdefault("metadata", {})
    if meta is None:
        meta = new["metadata"] = {}
    if not rtype.namespaced:
        meta.pop("namespace", None)
    meta.pop("managedFields", None)
    meta.pop("selfLink", None)
    return new


def _stamp_new(rtype: ResourceType, meta: dict[str, Any], new: dict[str, Any], *, privileged: bool) -> None:
    """Create: a name from generateName, a fresh uid and timestamp, generation 1; status only when privileged."""
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = meta["generateName"] + name_suffix()
    if not privileged and rtype.has_status():
        new.pop("status", None)
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now_rfc3339()
    if rtype.generation:
        meta["generation"] = 1
    else:
        meta.pop("generation", None)
    meta.pop("resourceVersion", None)
    meta.pop("deletionTimestamp", None)


def _carry_over(rtype: ResourceType, new: dict[str, Any], old: dict[str, Any], *, privileged: bool,
                subresource: str | None) -> dict[str, Any]:
    """Update: keep what the writer may not change (identity, status or spec by subresource); bump generation."""
    meta = new["metadata"]
    if subresource == "status":
        status = new.get("status")
        new = copy.deepcopy(old)
        if status is None:
            new.pop("status", None)
        else:
            new["status"] = status
        meta = new["metadata"]
    elif not privileged and rtype.has_status():
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        else:
            new.pop("status", None)
    omd = old["metadata"]
    meta["uid"] = omd["uid"]
    meta["creationTimestamp"] = omd["creationTimestamp"]
    meta["name"] = omd["name"]
    if rtype.namespaced:
        meta["namespace"] = omd.get("namespace")
    if rtype.generation:
        gen = omd.get("generation", 1)
        if _spec_changed(rtype, old, new):
            gen += 1
        meta["generation"] = gen
    else:
        meta.pop("generation", None)
    return new


def _spec_changed(rtype: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> bool:
    if rtype.custom:
        def strip(o: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in o.items() if k not in ("metadata", "status")}

        return strip(old) != strip(new)
    return old.get("spec") != new.get("spec")
