"""In-process Kubernetes API server of the lab (see docs/lab-kubeapi.md)."""

from __future__ import annotations

from .errors import ApiError
from .faults import FaultRule, RequestInfo
from .kubeconfig import kubeconfig_dict, write_kubeconfig
from .resources import Registry, ResourceType
from .server import KubeApiServer, RequestRecord, ThreadedKubeApiServer
from .store import Store, WatchEvent, name_suffix, now_rfc3339, pod_template_hash

__all__ = [
    "ApiError",
    "FaultRule",
    "KubeApiServer",
    "Registry",
    "RequestInfo",
    "RequestRecord",
    "ResourceType",
    "Store",
    "ThreadedKubeApiServer",
    "WatchEvent",
    "kubeconfig_dict",
    "name_suffix",
    "now_rfc3339",
    "pod_template_hash",
    "write_kubeconfig",
]
