"""The one exception tree of ppdoctor: every error says what went wrong and what to do next."""

from __future__ import annotations


class PPDoctorError(Exception):
    """Base of every error ppdoctor raises on purpose.

    ``hint`` tells the operator what to do next (an IAM action to grant, an RBAC verb,
    a package to install). Lower-layer exceptions are kept as ``__cause__``.
    """

    kind = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} — {self.hint}"
        return self.message

    def as_dict(self) -> dict[str, str]:
        out = {"kind": self.kind, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        return out


class ConfigError(PPDoctorError):
    kind = "config"


class LabError(PPDoctorError):
    kind = "lab"


class AwsError(PPDoctorError):
    kind = "aws"


class KubeError(PPDoctorError):
    kind = "kube"


class ProbeError(PPDoctorError):
    kind = "probe"
