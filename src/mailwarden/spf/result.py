"""The outcome of an SPF check: `SPFStatus` (RFC 7208 §2.6), the `Identity` checked (§2.3)
and `SPFResult`."""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from mailwarden.dns import IPAddress

__all__ = ["Identity", "SPFResult", "SPFStatus"]


class SPFStatus(StrEnum):
    """RFC 7208 §2.6 results."""

    NONE = "none"
    NEUTRAL = "neutral"
    PASS = "pass"
    FAIL = "fail"
    SOFTFAIL = "softfail"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


class Identity(StrEnum):
    """RFC 7208 §2.3/§2.4: the identity a check authorizes."""

    MAILFROM = "mailfrom"
    HELO = "helo"


class SPFResult(NamedTuple):
    """The outcome of one check, with enough detail to explain it (immutable; a NamedTuple
    because a warm evaluation takes microseconds and a frozen dataclass costs several)."""

    result: SPFStatus
    identity: Identity
    domain: str  # the domain whose policy was checked (empty when none could be)
    sender: str  # the <sender> of check_host: local-part@domain
    ip: IPAddress
    helo: str
    reason: str  # plain words: what matched, or what went wrong
    mechanism: str | None = None  # the matching term as written, if any
    explanation: str | None = None  # the expanded exp= text (fail only)
    dns_queries: int = 0
    dns_mechanisms: int = 0
    void_lookups: int = 0
