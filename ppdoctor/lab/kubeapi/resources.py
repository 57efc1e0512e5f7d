"""The resource types the lab API server serves, with their defaulting and validation.

Only the subset of real apiserver behaviour that matters to ppdoctor (and to code written
against a real cluster) is modelled: required fields, name syntax, selector/template match,
Service defaults (clusterIP, nodePorts, healthCheckNodePort), Pod phase.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .selectors import (
    SelectorError,
    labels_match,
    selector_from_match_labels,
    valid_label_key,
    valid_label_value,
)


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    versions: tuple[str, ...]  # served versions; the first one is the storage version
    kind: str
    plural: str
    singular: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ("status",)
    custom: bool = False  # CRD semantics (unstructured; no strategic merge; RV needed on PUT)
    categories: tuple[str, ...] = ()
    field_labels: tuple[str, ...] = ()  # field selectors beyond metadata.name/namespace
    generation: bool = True  # maintain metadata.generation

    @property
    def storage_version(self) -> str:
        return self.versions[0]

    def api_version(self, version: str | None = None) -> str:
        v = version or self.storage_version
        return f"{self.group}/{v}" if self.group else v

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def qualified(self) -> str:
        return errors.qualified(self.plural, self.group)

    def field_allowed(self, path: str) -> bool:
        if path in ("metadata.name", "metadata.namespace"):
            return True
        return path in self.field_labels

    def has_status(self) -> bool:
        return "status" in self.subresources


CORE_TYPES: tuple[ResourceType, ...] = (
    ResourceType(
        "", ("v1",), "Namespace", "namespaces", "namespace", namespaced=False,
        short_names=("ns",), subresources=("status",), field_labels=("status.phase",),
        generation=False,
    ),
    ResourceType(
        "", ("v1",), "Service", "services", "service", short_names=("svc",),
        subresources=("status",), field_labels=("spec.clusterIP", "spec.type"),
        categories=("all",), generation=False,
    ),
    ResourceType(
        "", ("v1",), "Pod", "pods", "pod", short_names=("po",),
        subresources=("status", "portforward"),
        field_labels=("spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                      "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
                      "status.podIP", "status.podIPs", "status.nominatedNodeName"),
        categories=("all",),
    ),
    ResourceType(
        "", ("v1",), "ConfigMap", "configmaps", "configmap", short_names=("cm",),
        subresources=(), generation=False,
    ),
    ResourceType(
        "", ("v1",), "Endpoints", "endpoints", "endpoints", short_names=("ep",),
        subresources=(), generation=False,
    ),
    ResourceType(
        "apps", ("v1",), "Deployment", "deployments", "deployment", short_names=("deploy",),
        subresources=("status",), categories=("all",),
    ),
)

ISTIO_VERSIONS = ("v1", "v1beta1", "v1alpha3")
CUSTOM_TYPES: tuple[ResourceType, ...] = (
    ResourceType(
        "networking.istio.io", ISTIO_VERSIONS, "EnvoyFilter", "envoyfilters", "envoyfilter",
        custom=True, categories=("istio-io", "networking-istio-io"),
    ),
    ResourceType(
        "networking.istio.io", ISTIO_VERSIONS, "Gateway", "gateways", "gateway",
        short_names=("gw",), custom=True, categories=("istio-io", "networking-istio-io"),
    ),
    ResourceType(
        "networking.istio.io", ISTIO_VERSIONS, "VirtualService", "virtualservices",
        "virtualservice", short_names=("vs",), custom=True,
        categories=("istio-io", "networking-istio-io"),
    ),
    ResourceType(  # Gateway API (gateway.networking.k8s.io), the lab's second gateway
        "gateway.networking.k8s.io", ("v1", "v1beta1"), "Gateway", "gateways", "gateway",
        custom=True, categories=("gateway-api",),
    ),
    ResourceType(
        "elbv2.k8s.aws", ("v1beta1",), "TargetGroupBinding", "targetgroupbindings",
        "targetgroupbinding", custom=True, categories=("all",),
    ),
)

DEFAULT_TYPES = CORE_TYPES + CUSTOM_TYPES


class Registry:
    """Resource types by (group, plural) plus lookup by the many ways people name them."""

    def __init__(self, types: Iterable[ResourceType] = DEFAULT_TYPES) -> None:
        self._types: dict[tuple[str, str], ResourceType] = {}
        for t in types:
            self.register(t)

    def register(self, rtype: ResourceType) -> None:
        self._types[(rtype.group, rtype.plural)] = rtype

    def __iter__(self):
        return iter(self._types.values())

    def groups(self) -> dict[str, list[str]]:
        """group → served versions (preferred first), core group excluded."""
        out: dict[str, list[str]] = {}
        for t in self._types.values():
            if not t.group:
                continue
            vs = out.setdefault(t.group, [])
            for v in t.versions:
                if v not in vs:
                    vs.append(v)
        return out

    def for_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self._types.values() if t.group == group and version in t.versions]

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        t = self._types.get((group, plural))
        if t is None or version not in t.versions:
            return None
        return t

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for t in self._types.values():
            if t.group == group and t.kind == kind and version in t.versions:
                return t
        return None

    def resolve(self, ref: Any) -> ResourceType:
        """Accepts a ResourceType, ``"Deployment"``, ``"deployments"``, ``"deploy"``,
        ``"deployments.apps"``, ``"apps/v1/Deployment"``, ``"v1/Pod"``, ``"apps/v1/deployments"``,
        or a tuple ``(group, version, kind_or_plural)``."""
        if isinstance(ref, ResourceType):
            return ref
        if isinstance(ref, tuple):
            group, version, name = ref
            for t in self._types.values():
                if t.group == group and version in t.versions and name in (t.kind, t.plural):
                    return t
            raise KeyError(f"unknown resource {ref!r}")
        if not isinstance(ref, str) or not ref:
            raise KeyError(f"unknown resource {ref!r}")
        if "/" in ref:
            head, _, name = ref.rpartition("/")
            if "/" in head:
                group, _, version = head.rpartition("/")
            else:
                group, version = ("", head) if head.startswith("v") and head[1:2].isdigit() else (head, "")
            for t in self._types.values():
                if t.group == group and (not version or version in t.versions) and name in (t.kind, t.plural):
                    return t
            raise KeyError(f"unknown resource {ref!r}")
        name, _, group = ref.partition(".")
        lname = name.lower()
        candidates = []
        for t in self._types.values():
            if group and t.group != group:
                continue
            if name == t.kind or lname in (t.plural, t.singular) or lname in t.short_names:
                candidates.append(t)
        if not candidates:
            raise KeyError(f"unknown resource {ref!r}")
        # prefer the core group, then the first registered
        candidates.sort(key=lambda t: t.group != "")
        return candidates[0]


# --------------------------------------------------------------------------- validation

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

Cause = tuple[str, str, str]  # (reason, field, message)


def _required(path: str, why: str = "") -> Cause:
    return ("FieldValueRequired", path, "Required value" + (f": {why}" if why else ""))


def _invalid(path: str, value: Any, why: str) -> Cause:
    return ("FieldValueInvalid", path, f"Invalid value: {_go_repr(value)}: {why}")


def _go_repr(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, dict):
        inner = ", ".join(f'"{k}":"{v}"' for k, v in value.items())
        return "map[string]string{" + inner + "}"
    return repr(value)


def check_meta_types(obj: dict[str, Any]) -> None:
    """Type errors a Go decoder would reject before validation (400 BadRequest)."""
    meta = obj.get("metadata")
    if meta is None:
        return
    if not isinstance(meta, dict):
        raise errors.bad_request(
            f"json: cannot unmarshal {_json_type(meta)} into Go struct field .metadata of type v1.ObjectMeta"
        )
    for fld in ("labels", "annotations"):
        m = meta.get(fld)
        if m is None:
            continue
        if not isinstance(m, dict):
            raise errors.bad_request(
                f"json: cannot unmarshal {_json_type(m)} into Go struct field ObjectMeta.metadata.{fld} "
                "of type map[string]string"
            )
        for v in m.values():
            if not isinstance(v, str):
                raise errors.bad_request(
                    f"json: cannot unmarshal {_json_type(v)} into Go struct field "
                    f"ObjectMeta.metadata.{fld} of type string"
                )
    for fld in ("name", "namespace", "generateName", "resourceVersion", "uid"):
        v = meta.get(fld)
        if v is not None and not isinstance(v, str):
            raise errors.bad_request(
                f"json: cannot unmarshal {_json_type(v)} into Go struct field ObjectMeta.metadata.{fld} "
                "of type string"
            )


def check_configmap_types(obj: dict[str, Any]) -> None:
    data = obj.get("data")
    if data is None:
        return
    if not isinstance(data, dict) or any(not isinstance(v, str) for v in data.values()):
        raise errors.bad_request(
            "json: cannot unmarshal non-string into Go struct field ConfigMap.data of type string"
        )


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def validate(rtype: ResourceType, obj: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not name:
        causes.append(_required("metadata.name", "name or generateName is required"))
    else:
        if rtype.kind in ("Namespace", "Service"):
            pattern, what = (
                (_DNS1035_LABEL, "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
                if rtype.kind == "Service"
                else (_DNS1123_LABEL, "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
            )
            if not pattern.match(name) or len(name) > 63:
                causes.append(_invalid("metadata.name", name, what))
        elif not _DNS1123_SUBDOMAIN.match(name) or len(name) > 253:
            causes.append(
                _invalid(
                    "metadata.name",
                    name,
                    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                    "'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
                    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                )
            )
    if rtype.namespaced and not meta.get("namespace"):
        causes.append(_required("metadata.namespace"))
    for k, v in (meta.get("labels") or {}).items():
        if not valid_label_key(k):
            causes.append(_invalid("metadata.labels", k, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"))
        elif not valid_label_value(v):
            causes.append(_invalid("metadata.labels", v, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"))
    for k in (meta.get("annotations") or {}):
        if not valid_label_key(k):
            causes.append(_invalid("metadata.annotations", k, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"))

    if rtype.custom:
        return causes
    kind = rtype.kind
    spec = obj.get("spec")
    if kind == "Deployment":
        spec = spec if isinstance(spec, dict) else {}
        sel = spec.get("selector")
        tmpl = spec.get("template") if isinstance(spec.get("template"), dict) else {}
        tlabels = ((tmpl.get("metadata") or {}).get("labels")) or {}
        if not sel:
            causes.append(_required("spec.selector"))
        else:
            try:
                reqs = selector_from_match_labels(sel)
            except SelectorError as exc:
                causes.append(_invalid("spec.selector", sel, str(exc)))
                reqs = None
            if reqs is not None and not reqs:
                causes.append(_invalid("spec.selector", sel, "empty selector is invalid for deployment"))
            elif reqs is not None and not labels_match(reqs, tlabels):
                causes.append(
                    _invalid("spec.template.metadata.labels", tlabels, "`selector` does not match template `labels`")
                )
        causes.extend(_validate_pod_spec(tmpl.get("spec"), "spec.template.spec"))
        replicas = spec.get("replicas")
        if replicas is not None and (not isinstance(replicas, int) or replicas < 0):
            causes.append(_invalid("spec.replicas", replicas, "must be greater than or equal to 0"))
    elif kind == "Pod":
        causes.extend(_validate_pod_spec(spec, "spec"))
    elif kind == "Service":
        spec = spec if isinstance(spec, dict) else {}
        stype = spec.get("type", "ClusterIP")
        if stype not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
            causes.append(("FieldValueNotSupported", "spec.type", f'Unsupported value: "{stype}": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'))
        headless = spec.get("clusterIP") == "None"
        ports = spec.get("ports") or []
        if not ports and stype != "ExternalName" and not headless:
            causes.append(_required("spec.ports"))
        seen = set()
        for i, p in enumerate(ports):
            if not isinstance(p, dict):
                causes.append(_invalid(f"spec.ports[{i}]", p, "must be an object"))
                continue
            port = p.get("port")
            if not isinstance(port, int) or not 1 <= port <= 65535:
                causes.append(_invalid(f"spec.ports[{i}].port", port, "must be between 1 and 65535, inclusive"))
            if len(ports) > 1 and not p.get("name"):
                causes.append(_required(f"spec.ports[{i}].name"))
            key = (port, p.get("protocol", "TCP"))
            if key in seen:
                causes.append(("FieldValueDuplicate", f"spec.ports[{i}]", f"Duplicate value: {_go_repr(key)}"))
            seen.add(key)
        etp = spec.get("externalTrafficPolicy")
        if etp is not None and etp not in ("Cluster", "Local"):
            causes.append(("FieldValueNotSupported", "spec.externalTrafficPolicy", f'Unsupported value: "{etp}": supported values: "Cluster", "Local"'))
    return causes


def _validate_pod_spec(spec: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(spec, dict):
        return [_required(f"{path}.containers")]
    containers = spec.get("containers")
    if not containers:
        return [_required(f"{path}.containers")]
    names = set()
    for i, c in enumerate(containers):
        if not isinstance(c, dict):
            causes.append(_invalid(f"{path}.containers[{i}]", c, "must be an object"))
            continue
        if not c.get("name"):
            causes.append(_required(f"{path}.containers[{i}].name"))
        elif c["name"] in names:
            causes.append(("FieldValueDuplicate", f"{path}.containers[{i}].name", f"Duplicate value: {_go_repr(c['name'])}"))
        names.add(c.get("name"))
        if not c.get("image"):
            causes.append(_required(f"{path}.containers[{i}].image"))
        for j, p in enumerate(c.get("ports") or []):
            cp = p.get("containerPort") if isinstance(p, dict) else None
            if not isinstance(cp, int) or not 1 <= cp <= 65535:
                causes.append(_invalid(f"{path}.containers[{i}].ports[{j}].containerPort", cp, "must be between 1 and 65535, inclusive"))
    return causes


def validate_immutable(rtype: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    if rtype.kind == "Deployment":
        a = (old.get("spec") or {}).get("selector")
        b = (new.get("spec") or {}).get("selector")
        if a != b:
            causes.append(_invalid("spec.selector", b, "field is immutable"))
    if rtype.kind == "Service":
        a = (old.get("spec") or {}).get("clusterIP")
        b = (new.get("spec") or {}).get("clusterIP")
        if a and b != a:
            causes.append(_invalid("spec.clusterIP", b, "field is immutable"))
    return causes


# --------------------------------------------------------------------------- defaulting


@dataclass
class Allocator:
    """Cluster IPs and node ports, like the apiserver's service allocators."""

    cidr: str = "10.96.0.0/16"
    _ips: Any = None
    _node_ports: Any = None
    used_ips: set[str] = field(default_factory=set)
    used_ports: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        net = ipaddress.ip_network(self.cidr)
        self._ips = itertools.islice(net.hosts(), 10, None)
        self._node_ports = iter(range(30000, 32768))

    def ip(self) -> str:
        for cand in self._ips:
            s = str(cand)
            if s not in self.used_ips:
                self.used_ips.add(s)
                return s
        raise errors.internal_error("the cluster IP range is full")

    def node_port(self) -> int:
        for p in self._node_ports:
            if p not in self.used_ports:
                self.used_ports.add(p)
                return p
        raise errors.internal_error("the node port range is full")

    def reserve(self, svc: dict[str, Any]) -> None:
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        if ip and ip != "None":
            self.used_ips.add(ip)
        for p in spec.get("ports") or []:
            if isinstance(p, dict) and isinstance(p.get("nodePort"), int):
                self.used_ports.add(p["nodePort"])
        if isinstance(spec.get("healthCheckNodePort"), int):
            self.used_ports.add(spec["healthCheckNodePort"])


def apply_defaults(rtype: ResourceType, obj: dict[str, Any], alloc: Allocator, old: dict[str, Any] | None) -> None:
    kind = rtype.kind
    if rtype.custom:
        return
    if rtype.has_status() and not isinstance(obj.get("status"), dict):
        obj["status"] = {}  # a Go struct, never absent on built-in types
    if kind == "Deployment":
        for cond in (obj.get("status") or {}).get("conditions") or []:
            if isinstance(cond, dict):
                cond.setdefault("type", "")
                cond.setdefault("status", "")
    spec = obj.get("spec")
    if kind == "Service":
        spec = obj.setdefault("spec", {})
        stype = spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        old_spec = (old or {}).get("spec") or {}
        if stype != "ExternalName":
            if not spec.get("clusterIP"):
                spec["clusterIP"] = old_spec.get("clusterIP") or alloc.ip()
            if spec["clusterIP"] != "None":
                spec.setdefault("clusterIPs", [spec["clusterIP"]])
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p for p in old_spec.get("ports") or [] if isinstance(p, dict)}
        for p in spec.get("ports") or []:
            if not isinstance(p, dict):
                continue
            p.setdefault("protocol", "TCP")
            if "targetPort" not in p and "port" in p:
                p["targetPort"] = p["port"]
            if stype in ("NodePort", "LoadBalancer") and not p.get("nodePort"):
                prev = old_ports.get((p.get("port"), p["protocol"]), {}).get("nodePort")
                p["nodePort"] = prev or alloc.node_port()
        if stype in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if stype == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
            if spec.get("externalTrafficPolicy") == "Local" and not spec.get("healthCheckNodePort"):
                spec["healthCheckNodePort"] = old_spec.get("healthCheckNodePort") or alloc.node_port()
        if stype == "LoadBalancer" or old is None:
            obj.setdefault("status", {}).setdefault("loadBalancer", {})
        alloc.reserve(obj)
    elif kind == "Deployment" and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strat = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if isinstance(strat, dict) and strat.get("type", "RollingUpdate") == "RollingUpdate":
            strat.setdefault("type", "RollingUpdate")
            strat.setdefault("rollingUpdate", {"maxUnavailable": "25%", "maxSurge": "25%"})
        tmpl = spec.get("template")
        if isinstance(tmpl, dict):
            _default_pod_spec(tmpl.get("spec"))
    elif kind == "Pod":
        _default_pod_spec(spec)
        if old is None:
            obj.setdefault("status", {}).setdefault("phase", "Pending")
            obj["status"].setdefault("qosClass", "BestEffort")
        _go_zero_values_pod_status(obj.get("status"))
    elif kind == "Namespace":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
        obj.setdefault("metadata", {}).setdefault("labels", {})
        obj["metadata"]["labels"].setdefault("kubernetes.io/metadata.name", obj["metadata"].get("name", ""))


def _go_zero_values_pod_status(status: Any) -> None:
    """Fields the Go structs serialise even when empty (no ``omitempty``): the apiserver always
    returns them, and the official client's models require them (``imageID`` …)."""
    if not isinstance(status, dict):
        return
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for cs in status.get(key) or []:
            if isinstance(cs, dict):
                cs.setdefault("name", "")
                cs.setdefault("ready", False)
                cs.setdefault("restartCount", 0)
                cs.setdefault("image", "")
                cs.setdefault("imageID", "")
    for cond in status.get("conditions") or []:
        if isinstance(cond, dict):
            cond.setdefault("type", "")
            cond.setdefault("status", "")


def _default_pod_spec(spec: Any) -> None:
    if not isinstance(spec, dict):
        return
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for c in spec.get("containers") or []:
        if not isinstance(c, dict):
            continue
        c.setdefault("imagePullPolicy", "Always" if str(c.get("image", "")).endswith(":latest") or ":" not in str(c.get("image", "")) else "IfNotPresent")
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault("resources", {})
        for p in c.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
