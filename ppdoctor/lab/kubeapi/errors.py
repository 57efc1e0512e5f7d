"""API errors of the lab Kubernetes API server, rendered as real ``kind: Status`` bodies.

The messages follow the wording of the real kube-apiserver (``k8s.io/apimachinery``
``pkg/api/errors``) so that code written against a real cluster sees the same strings.
"""

from __future__ import annotations

from typing import Any

# HTTP status → reason used when only a code is given (fault injection).
REASON_BY_CODE: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def qualified(resource: str, group: str) -> str:
    """``deployments.apps`` / ``pods`` — how the apiserver names a group resource."""
    return f"{resource}.{group}" if group else resource


def qualified_kind(kind: str, group: str) -> str:
    return f"{kind}.{group}" if group else kind


class ApiError(Exception):
    """An error that the server answers with a ``Status`` body."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = dict(headers or {})

    def status(self) -> dict[str, Any]:
        return status_body(self.code, self.reason, self.message, self.details)

    def __repr__(self) -> str:
        return f"ApiError({self.code}, {self.reason!r}, {self.message!r})"


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details:
        body["details"] = details
    body["code"] = code
    return body


def success_status(name: str, group: str, resource: str, uid: str | None = None) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    if uid:
        details["uid"] = uid
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


def _details(name: str | None, group: str, kind: str, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    d["kind"] = kind
    d.update({k: v for k, v in extra.items() if v is not None})
    return d


def not_found(group: str, resource: str, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{qualified(resource, group)} "{name}" not found',
        details=_details(name, group, resource),
    )


def already_exists(group: str, resource: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified(resource, group)} "{name}" already exists',
        details=_details(name, group, resource),
    )


def conflict(group: str, resource: str, name: str, why: str | None = None) -> ApiError:
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}',
        details=_details(name, group, resource),
    )


def forbidden_message(
    verb: str,
    group: str,
    resource: str,
    name: str | None,
    namespace: str | None,
    user: str,
    subresource: str | None = None,
) -> str:
    """The RBAC denial text exactly as kube-apiserver words it."""
    target = qualified(resource, group)
    if subresource:
        res_for_rbac = f"{resource}/{subresource}"
    else:
        res_for_rbac = resource
    head = f'{target} "{name}" is forbidden' if name else f"{target} is forbidden"
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    return (
        f'{head}: User "{user}" cannot {verb} resource "{res_for_rbac}" '
        f'in API group "{group}" {scope}'
    )


def forbidden(
    verb: str,
    group: str,
    resource: str,
    name: str | None,
    namespace: str | None,
    user: str,
    subresource: str | None = None,
) -> ApiError:
    return ApiError(
        403,
        "Forbidden",
        forbidden_message(verb, group, resource, name, namespace, user, subresource),
        details=_details(name, group, resource),
    )


def invalid(
    kind: str, group: str, name: str | None, causes: list[tuple[str, str, str]]
) -> ApiError:
    """``causes``: list of (reason, field, message) like ``FieldValueRequired``."""
    parts = [f"{field}: {msg}" for _reason, field, msg in causes]
    if len(parts) == 1:
        summary = parts[0]
    else:
        summary = "[" + ", ".join(parts) + "]"
    return ApiError(
        422,
        "Invalid",
        f'{qualified_kind(kind, group)} "{name or ""}" is invalid: {summary}',
        details=_details(
            name,
            group,
            kind,
            causes=[{"reason": r, "message": m, "field": f} for r, f, m in causes],
        ),
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def unsupported_media_type(content_type: str, accepted: list[str]) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(accepted)}",
    )


def method_not_allowed(verb: str, what: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", f"the server does not allow this method on the requested resource ({verb} {what})")


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def too_many_requests(retry_after: int | None = None) -> ApiError:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    details = {"retryAfterSeconds": retry_after} if retry_after is not None else None
    return ApiError(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
        details=details,
        headers=headers,
    )


def internal_error(why: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {why}", details={"causes": [{"message": why}]})
