"""Fault injection: make chosen requests fail the way a real apiserver fails them.

A rule matches on (verb, resource, name, namespace); ``"*"``/``None`` are wildcards.
Verbs are the RBAC verbs the apiserver derives from the request: ``get``, ``list``,
``watch``, ``create``, ``update``, ``patch``, ``delete``, ``deletecollection``; several may be
given comma-separated (``"get,create"``). Port-forward is ``get`` on ``pods/portforward`` for the
WebSocket GET the official client sends (``create`` for a POST), as on kube-apiserver ≤ 1.34. Resources are plurals, optionally group-qualified
(``deployments.apps``) and/or with a subresource (``pods/portforward``, ``deployments/status``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .errors import REASON_BY_CODE, ApiError

DEFAULT_USER = "system:serviceaccount:default:ppdoctor"


@dataclass(frozen=True)
class RequestInfo:
    """What the apiserver's request-info resolver derives from a resource request."""

    verb: str
    group: str
    version: str
    resource: str
    subresource: str | None
    namespace: str | None
    name: str | None
    kind: str = ""


@dataclass
class FaultRule:
    verb: str = "*"
    resource: str = "*"
    name: str = "*"
    namespace: str | None = None
    status: int = 500
    reason: str | None = None
    message: str | None = None
    times: int | None = None  # None: forever
    retry_after: int | None = None
    delay: float = 0.0
    user: str = DEFAULT_USER
    hits: int = 0
    _id: int = field(default=0, repr=False)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def matches(self, info: RequestInfo) -> bool:
        if self.verb != "*" and info.verb not in {v.strip() for v in self.verb.split(",")}:
            return False
        if self.namespace not in (None, "*", info.namespace):
            return False
        if self.name not in ("*", None) and self.name != info.name:
            return False
        if self.resource == "*":
            return True
        res, _, sub = self.resource.partition("/")
        plural, _, group = res.partition(".")
        if plural != info.resource:
            return False
        if group and group != info.group:
            return False
        return (sub or None) == info.subresource

    def error(self, info: RequestInfo) -> ApiError | None:
        """The error to answer with, or None for a pure delay rule (status 0)."""
        if not self.status:
            return None
        code = self.status
        reason = self.reason or REASON_BY_CODE.get(code, "Unknown")
        if code == 403 and not self.message:
            return errors.forbidden(info.verb, info.group, info.resource, info.name, info.namespace,
                                    self.user, info.subresource)
        if code == 404 and not self.message:
            return errors.not_found(info.group, info.resource, info.name or "")
        if code == 409 and not self.message and reason == "Conflict":
            return errors.conflict(info.group, info.resource, info.name or "")
        if code == 409 and not self.message and reason == "AlreadyExists":
            return errors.already_exists(info.group, info.resource, info.name or "")
        if code == 429 and not self.message:
            return errors.too_many_requests(self.retry_after)
        if code == 500 and not self.message:
            return errors.internal_error("injected fault")
        if code == 401 and not self.message:
            return errors.unauthorized()
        message = self.message or {
            503: "the server is currently unable to handle the request",
            504: "the server was unable to return a response in the time allotted, but may still be processing the request",
            422: f'{info.kind or info.resource} "{info.name or ""}" is invalid: injected fault',
            400: "the server rejected our request for an unknown reason",
        }.get(code, f"injected fault ({code})")
        details: dict[str, Any] = {}
        if info.name:
            details["name"] = info.name
        if info.group:
            details["group"] = info.group
        details["kind"] = info.resource
        headers: dict[str, str] = {}
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
            details["retryAfterSeconds"] = self.retry_after
        return ApiError(code, reason, message, details=details, headers=headers)


class FaultInjector:
    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._next = 0

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._next += 1
            rule._id = self._next
            self._rules.append(rule)
        return rule

    def remove(self, rule: FaultRule) -> None:
        with self._lock:
            if rule in self._rules:
                self._rules.remove(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def take(self, info: RequestInfo) -> FaultRule | None:
        """The first live rule matching ``info``; counts the hit (and retires used-up rules)."""
        with self._lock:
            for rule in self._rules:
                if rule.exhausted or not rule.matches(info):
                    continue
                rule.hits += 1
                if rule.exhausted:
                    self._rules.remove(rule)
                return rule
        return None
