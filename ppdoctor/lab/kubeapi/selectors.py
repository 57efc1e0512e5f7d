"""Label and field selectors with the semantics of ``k8s.io/apimachinery/pkg/labels`` / ``fields``.

Label selectors: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k`` (exists),
``!k`` (does not exist), ``k>N`` / ``k<N`` (numeric). ``!=`` and ``notin`` also match objects
without the label, as in Kubernetes.

Field selectors: ``path=v``, ``path==v``, ``path!=v``; which paths are allowed is decided by the
resource type (the server answers ``field label not supported`` otherwise).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_KEY_RE = re.compile(rf"^(({_PREFIX})/)?{_NAME}$")
_VALUE_RE = re.compile(rf"^({_NAME})?$")

_SET_RE = re.compile(r"^(?P<key>[^\s!=<>(),]+)\s+(?P<op>in|notin)\s*\((?P<vals>[^()]*)\)$")
_CMP_RE = re.compile(r"^(?P<key>[^\s!=<>(),]+)\s*(?P<op>==|=|!=|>|<)\s*(?P<val>[^\s,()!=<>]*)$")
_EXISTS_RE = re.compile(r"^(?P<neg>!)?\s*(?P<key>[^\s!=<>(),]+)$")


class SelectorError(ValueError):
    """The selector text does not parse; the server answers 400 BadRequest."""


def valid_label_key(key: str) -> bool:
    if not _KEY_RE.match(key):
        return False
    prefix, _, name = key.rpartition("/")
    return len(name) <= 63 and len(prefix) <= 253


def valid_label_value(value: str) -> bool:
    return len(value) <= 63 and bool(_VALUE_RE.match(value))


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", ">", "<"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        has = self.key in labels
        val = labels.get(self.key)
        if self.op == "exists":
            return has
        if self.op == "!":
            return not has
        if self.op in ("=", "in"):
            return has and val in self.values
        if self.op in ("!=", "notin"):
            return (not has) or val not in self.values
        if self.op in (">", "<"):
            if not has:
                return False
            try:
                lv = int(val)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                return False
            rv = int(self.values[0])
            return lv > rv if self.op == ">" else lv < rv
        return False  # pragma: no cover


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError("unable to parse requirement: unbalanced ')'")
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise SelectorError("unable to parse requirement: unbalanced '('")
    parts.append("".join(cur))
    return parts


def _check_key(key: str) -> None:
    if not valid_label_key(key):
        raise SelectorError(
            f'unable to parse requirement: values[0][{key}]: Invalid value: "{key}": '
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character"
        )


def _check_value(key: str, value: str) -> None:
    if not valid_label_value(value):
        raise SelectorError(
            f'unable to parse requirement: values[0][{key}]: Invalid value: "{value}": '
            "a valid label must be an empty string or consist of alphanumeric characters, "
            "'-', '_' or '.', and must start and end with an alphanumeric character"
        )


def parse_label_selector(text: str | None) -> list[Requirement]:
    if text is None or not text.strip():
        return []
    reqs: list[Requirement] = []
    for raw in _split_top(text):
        part = raw.strip()
        if not part:
            raise SelectorError("unable to parse requirement: found ',', expected: identifier")
        m = _SET_RE.match(part)
        if m:
            key = m["key"]
            _check_key(key)
            vals = tuple(v.strip() for v in m["vals"].split(",")) if m["vals"].strip() else ()
            if m["op"] == "in" and not vals:
                raise SelectorError(
                    f"unable to parse requirement: values: Invalid value: {key}: for 'in', "
                    "'notin' operators, values set can't be empty"
                )
            for v in vals:
                _check_value(key, v)
            reqs.append(Requirement(key, m["op"], vals))
            continue
        m = _CMP_RE.match(part)
        if m:
            key, op, val = m["key"], m["op"], m["val"]
            _check_key(key)
            if op == "==":
                op = "="
            if op in (">", "<"):
                try:
                    int(val)
                except ValueError:
                    raise SelectorError(
                        f"unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer: {val!r}"
                    ) from None
            else:
                _check_value(key, val)
            reqs.append(Requirement(key, op, (val,)))
            continue
        m = _EXISTS_RE.match(part)
        if m:
            _check_key(m["key"])
            reqs.append(Requirement(m["key"], "!" if m["neg"] else "exists"))
            continue
        raise SelectorError(f"unable to parse requirement: {part!r}")
    return reqs


def labels_match(reqs: Iterable[Requirement], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    return all(r.matches(labels) for r in reqs)


def selector_from_match_labels(selector: dict[str, Any] | None) -> list[Requirement]:
    """A ``LabelSelector`` object (matchLabels + matchExpressions) as requirements."""
    if not selector:
        return []
    reqs = [Requirement(k, "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        op = str(expr.get("operator", ""))
        key = str(expr.get("key", ""))
        vals = tuple(str(v) for v in expr.get("values") or ())
        mapped = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}.get(op)
        if mapped is None:
            raise SelectorError(f"{op!r} is not a valid label selector operator")
        reqs.append(Requirement(key, mapped, vals))
    return reqs


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    op: str  # "=" or "!="
    value: str

    def matches(self, obj: dict[str, Any]) -> bool:
        actual = field_value(obj, self.path)
        return (actual == self.value) if self.op == "=" else (actual != self.value)


def field_value(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            cur = None
            break
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if isinstance(cur, list):  # status.podIPs: match any
        return ",".join(str(x.get("ip", x)) if isinstance(x, dict) else str(x) for x in cur)
    return str(cur)


def parse_field_selector(
    text: str | None, allowed: Callable[[str], bool] | None = None
) -> list[FieldRequirement]:
    if text is None or not text.strip():
        return []
    out: list[FieldRequirement] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        for op, norm in (("!=", "!="), ("==", "="), ("=", "=")):  # noqa: B007 (norm is read after the break)
            if op in part:
                path, _, value = part.partition(op)
                path = path.strip()
                value = value.strip()
                break
        else:
            raise SelectorError(f"invalid selector: '{part}'; can't understand '{part}'")
        if not path:
            raise SelectorError(f"invalid selector: '{part}'")
        if allowed is not None and not allowed(path):
            raise SelectorError(f'field label not supported: {path}')
        out.append(FieldRequirement(path, norm, value))
    return out


def fields_match(reqs: Iterable[FieldRequirement], obj: dict[str, Any]) -> bool:
    return all(r.matches(obj) for r in reqs)
