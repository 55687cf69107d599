"""Typed DNS answers and the three outcomes a lookup can have besides an answer.

Exception tree (every check must tell these apart, and each protocol maps them its own way)::

    DNSError
    ├── NXDomain          the name does not exist (RCODE 3)
    ├── NoData            the name exists but has no record of that type
    └── TemporaryFailure  timeout, SERVFAIL, REFUSED, network error: try again later
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from mailwarden.frozen import quick_init

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class RdType(StrEnum):
    """The record types mailwarden queries."""

    A = "A"
    AAAA = "AAAA"
    CNAME = "CNAME"
    MX = "MX"
    NS = "NS"
    PTR = "PTR"
    SOA = "SOA"
    TXT = "TXT"


@dataclass(frozen=True, slots=True)
class MX:
    """One MX record: lower preference is tried first."""

    preference: int
    exchange: str


@dataclass(frozen=True, slots=True)
class TXT:
    """One TXT record: the character-strings exactly as published."""

    strings: tuple[bytes, ...]

    @property
    def joined(self) -> bytes:
        """The strings concatenated without separator (RFC 7208 §3.3, RFC 6376 §3.6.2.2)."""
        return b"".join(self.strings)


# A/AAAA records are addresses; CNAME/NS/PTR/SOA(mname) records are names (no trailing dot).
RData = IPAddress | MX | TXT | str


@quick_init
@dataclass(frozen=True, slots=True)
class Answer:
    """A positive answer: at least one record of the queried type."""

    name: str
    rdtype: RdType
    records: tuple[RData, ...]
    ttl: int

    def addresses(self) -> list[IPAddress]:
        return [
            r for r in self.records if isinstance(r, ipaddress.IPv4Address | ipaddress.IPv6Address)
        ]

    def mx(self) -> list[MX]:
        return [r for r in self.records if isinstance(r, MX)]

    def txt(self) -> list[TXT]:
        return [r for r in self.records if isinstance(r, TXT)]

    def names(self) -> list[str]:
        return [r for r in self.records if isinstance(r, str)]


class DNSError(Exception):
    """A lookup that produced no answer. `ttl` is how long the outcome may be cached."""

    def __init__(self, name: str, rdtype: RdType, detail: str = "", ttl: int = 0) -> None:
        self.name = name
        self.rdtype = rdtype
        self.detail = detail
        self.ttl = ttl
        super().__init__(name, rdtype, detail)

    def __str__(self) -> str:  # formatted when shown, not on every (cached) raise
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.name}/{self.rdtype}: {self.kind}{detail}"

    kind = "dns error"


class NXDomain(DNSError):
    """The name does not exist (RCODE 3, RFC 8020: nor does anything below it)."""

    kind = "no such domain"


class NoData(DNSError):
    """The name exists but holds no record of the queried type."""

    kind = "no records of that type"


class TemporaryFailure(DNSError):
    """No usable answer now (timeout, SERVFAIL, REFUSED, network error)."""

    kind = "temporary failure"


class Resolver(Protocol):
    """The one DNS seam every check uses.

    `resolve` returns an `Answer` with at least one record, or raises `NXDomain`, `NoData` or
    `TemporaryFailure`. Names are given without trailing dot, in A-label form.
    """

    async def resolve(self, name: str, rdtype: RdType) -> Answer: ...
