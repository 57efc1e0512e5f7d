"""Redaction for everything a report writes: AWS keys, session tokens, bearer/basic credentials, JWTs, and the
values of Authorization/Cookie/Set-Cookie-like headers, as pairs, JSON keys and raw header lines."""

from __future__ import annotations

import os
import re
from typing import Any

REDACTED = "[REDACTED]"

_SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "set-cookie", "x-amz-security-token",
                   "x-api-key")
_PATTERNS = [
    re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]+=*"),
    re.compile(r"(?i)\bbasic\s+[A-Za-z0-9+/]{8,}=*"),
    re.compile(r"(?i)(aws_secret_access_key|aws_session_token|secret_access_key|session_token|token)"
               r"(\s*[=:]\s*[\"']?)([A-Za-z0-9/+=_\-.]{12,})"),
    re.compile(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+"),  # JWTs (service-account tokens)
]
_JSON_HEADER = re.compile(r'(?i)("(?:%s)"\s*:\s*\[?\s*")(?:[^"\\]|\\.)*"' % "|".join(map(re.escape, _SECRET_HEADERS)))
_ENV_SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ACCESS_KEY_ID")


def _env_secrets() -> list[str]:
    return [v for k in _ENV_SECRETS if len(v := os.environ.get(k, "")) >= 8]


def redact_text(text: str, extra: list[str] | None = None) -> str:
    for secret in (extra or []) + _env_secrets():
        text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        if pattern.groups == 3:
            text = pattern.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
        else:
            text = pattern.sub(REDACTED, text)
    # headers inside JSON text kept as evidence ({"Cookie": ["a=b"]} / {"cookie": "a=b"})
    text = _JSON_HEADER.sub(lambda m: m.group(1) + REDACTED + '"', text)
    # header lines inside raw evidence ("Cookie: a=b")
    return re.sub(r"(?im)^((?:%s)\s*:\s*)[^\r\n]*" % "|".join(map(re.escape, _SECRET_HEADERS)),
                  lambda m: m.group(1) + REDACTED, text)


def redact(value: Any, extra: list[str] | None = None) -> Any:
    """Deep copy of ``value`` with secrets removed (header pairs by name, everything else by pattern)."""
    if isinstance(value, str):
        return redact_text(value, extra)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(k, str) and k.lower() in _SECRET_HEADERS + ("aws_secret_access_key", "aws_session_token", "token"):
                out[k] = REDACTED
            else:
                out[k] = redact(v, extra)
        return out
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and isinstance(value[0], str) and value[0].lower() in _SECRET_HEADERS:
            return [value[0], REDACTED]
        return [redact(v, extra) for v in value]
    return value


