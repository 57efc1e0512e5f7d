"""The PROXY protocol error tree: one class per way a header can be wrong, each with a stable ``kind``."""

from __future__ import annotations

from ..errors import PPDoctorError

__all__ = [
    "ProxyProtocolError",
    "IncompleteHeader",
    "InvalidHeader",
    "BadSignature",
    "BadVersion",
    "BadCommand",
    "BadFamily",
    "BadProtocol",
    "LengthTooShort",
    "TLVOverrun",
    "TLVTrailing",
    "CRCMismatch",
    "V1NoCRLF",
    "V1Malformed",
    "HeaderTooLarge",
    "HeaderTimeout",
    "NotPresent",
    "EncodeError",
]


class ProxyProtocolError(PPDoctorError):
    """Anything that goes wrong while reading, decoding or building a PROXY protocol header."""

    kind = "proxy-protocol"
    default_hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint if hint is not None else self.default_hint)


class IncompleteHeader(ProxyProtocolError):
    """More bytes are needed: ``needed`` is a lower bound of how many (exact for v2 once known)."""

    kind = "incomplete"

    def __init__(self, needed: int, message: str | None = None, *, hint: str | None = None) -> None:
        self.needed = needed
        super().__init__(
            message or f"incomplete PROXY header: at least {needed} more byte(s) needed",
            hint=hint,
        )

    def as_dict(self) -> dict:
        out = super().as_dict()
        out["needed"] = self.needed
        return out


class InvalidHeader(ProxyProtocolError):
    """The bytes cannot be a valid PROXY header. ``offset`` points at the offending byte when known."""

    kind = "invalid"
    default_hint = "a receiver (HAProxy, Envoy) closes the connection on such a header"

    def __init__(self, message: str, *, offset: int | None = None, hint: str | None = None) -> None:
        self.offset = offset
        super().__init__(message, hint=hint)

    def as_dict(self) -> dict:
        out = super().as_dict()
        if self.offset is not None:
            out["offset"] = self.offset
        return out


class BadSignature(InvalidHeader):
    kind = "bad-signature"
    default_hint = "the bytes start neither with the v2 signature nor with 'PROXY ' (no header sent?)"


class BadVersion(InvalidHeader):
    kind = "bad-version"


class BadCommand(InvalidHeader):
    kind = "bad-command"


class BadFamily(InvalidHeader):
    kind = "bad-family"


class BadProtocol(InvalidHeader):
    kind = "bad-protocol"


class LengthTooShort(InvalidHeader):
    kind = "length-too-short"


class TLVOverrun(InvalidHeader):
    kind = "tlv-overrun"


class TLVTrailing(InvalidHeader):
    kind = "tlv-trailing"


class CRCMismatch(InvalidHeader):
    """The CRC32C TLV does not match. ``parsed`` holds the decoded header (crc32c="invalid")."""

    kind = "crc-mismatch"
    default_hint = "the header was altered in transit or built with a wrong checksum; HAProxy rejects it"

    def __init__(self, message: str, *, parsed=None, offset: int | None = None, hint: str | None = None) -> None:
        self.parsed = parsed
        super().__init__(message, offset=offset, hint=hint)


class V1NoCRLF(InvalidHeader):
    kind = "v1-no-crlf"


class V1Malformed(InvalidHeader):
    kind = "v1-malformed"


class HeaderTooLarge(InvalidHeader):
    kind = "header-too-large"


class HeaderTimeout(InvalidHeader):
    kind = "timeout"
    default_hint = (
        "the peer sent no complete PROXY header before the deadline "
        "(a server-speaks-first client, or a sender that does not speak PROXY protocol)"
    )


class NotPresent(InvalidHeader):
    kind = "not-present"
    default_hint = (
        "the peer does not send a PROXY header: enable proxy protocol v2 on the sender "
        "(target group attribute proxy_protocol_v2.enabled) or accept connections without it"
    )


class EncodeError(ProxyProtocolError, ValueError):
    """The arguments cannot be encoded as a PROXY header (bad address, port, TLV, combination)."""

    kind = "bad-argument"
