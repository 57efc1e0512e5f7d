"""The Istio release of a proxy, read from its image tag, and what each release supports.

Istio publishes the proxy as ``istio/proxyv2:<release>[-variant]`` (``1.27.1``,
``1.27.1-distroless``); pilot-agent and the Envoy build are those of that release. A tag that
is not a release (a digest, ``latest``, a private build) gives ``None``: unknown.
"""

from __future__ import annotations

import re

# ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL: istio/istio PR #55986 (fixes #39868), released in Istio 1.27.
STATUS_PORT_PP_ENV = "ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL"
STATUS_PORT_PP_SINCE = (1, 27)

_TAG = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:[-.].*)?$")


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    """``"1.27.1-distroless"`` → (1, 27, 1); anything else → None."""
    m = _TAG.match((text or "").strip())
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def image_version(image: str | None) -> tuple[int, int, int] | None:
    """The release in an image reference: ``docker.io/istio/proxyv2:1.27.1`` → (1, 27, 1)."""
    if not image or "@" in image.split("/")[-1] and ":" not in image.split("/")[-1].split("@")[0]:
        return None
    last = image.split("/")[-1].split("@")[0]
    _, sep, tag = last.partition(":")
    return parse_version(tag) if sep else None


def supports_status_port_pp(version: tuple[int, int, int] | None) -> bool | None:
    """Does this release honour ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL? None when the release is unknown."""
    if version is None:
        return None
    return version[:2] >= STATUS_PORT_PP_SINCE


def env_true(value: object) -> bool:
    """pilot-agent reads boolean env with Go's strconv.ParseBool."""
    return str(value or "").strip() in ("1", "t", "T", "true", "TRUE", "True")
