"""The outcome of one DKIM-Signature: `DKIMStatus` (RFC 8601 §2.7.1) and `DKIMResult`, with
what Authentication-Results and DMARC need from the signature."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["DKIMResult", "DKIMStatus"]


class DKIMStatus(StrEnum):
    """RFC 8601 §2.7.1 results of one signature (none: the message has no signature)."""

    PASS = "pass"
    FAIL = "fail"
    NEUTRAL = "neutral"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"
    POLICY = "policy"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class DKIMResult:
    """The outcome of one DKIM-Signature, with what Authentication-Results needs."""

    result: DKIMStatus
    reason: str
    domain: str = ""  # d= (header.d)
    selector: str = ""  # s= (header.s)
    algorithm: str = ""  # a= (header.a)
    key_bits: int | None = None
    header_b: str = ""  # shortest prefix of b= (8+ chars) unique in the message (RFC 6008)
    signature_b: str = ""  # the whole b= value
    identity: str = ""  # i= (header.i)
    canonicalization: str = ""
    signed_headers: tuple[str, ...] = ()
    timestamp: int | None = None
    expiration: int | None = None
    body_length: int | None = None  # l=
    body_length_unsigned: int | None = None  # canonical body bytes after l= (not signed)
    testing: bool = False  # the key record has t=y
    warnings: tuple[str, ...] = ()

    def auth_results_clause(self) -> str:
        """This result as an RFC 8601 resinfo: `dkim=pass (2048-bit key) header.d=...`."""
        parts = [f"dkim={self.result}"]
        if self.key_bits:
            parts.append(f"({self.key_bits}-bit key)")
        elif self.reason and self.result is not DKIMStatus.PASS:
            parts.append("(" + self.reason.replace("(", "[").replace(")", "]") + ")")
        for prop, value in (
            ("header.d", self.domain),
            ("header.i", self.identity),
            ("header.s", self.selector),
            ("header.a", self.algorithm),
            ("header.b", self.header_b),
        ):
            if value:
                parts.append(f"{prop}={_ar_value(value)}")
        return " ".join(parts)


def _ar_value(value: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9!#$%&'*+\-./=?^_`{|}~@]+", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
