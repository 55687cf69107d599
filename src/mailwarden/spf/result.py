"""The outcome of an SPF check: `SPFStatus` (RFC 7208 §2.6), the `Identity` checked (§2.3)
and `SPFResult`."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple

from mailwarden.dns import IPAddress

__all__ = ["Identity", "SPFReason", "SPFResult", "SPFStatus"]


class SPFStatus(StrEnum):
    """RFC 7208 §2.6 results."""

    NONE = "none"
    NEUTRAL = "neutral"
    PASS = "pass"
    FAIL = "fail"
    SOFTFAIL = "softfail"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


class SPFReason(StrEnum):
    """Why a check gave its result, in RFC 7208's terms (beside the reason in words)."""

    MATCHED = "matched"  # §4.6.2: a mechanism matched; its qualifier gives the result
    DEFAULT = "default"  # §4.7: nothing matched and no redirect: neutral
    INVALID_DOMAIN = "invalid-domain"  # §4.3: not a valid multi-label domain: none
    NO_RECORD = "no-record"  # §4.5: no SPF record: none
    DNS_ERROR = "dns-error"  # §4.4, §5: a DNS timeout or SERVFAIL: temperror
    MULTIPLE_RECORDS = "multiple-records"  # §4.5: permerror
    SYNTAX_ERROR = "syntax-error"  # §4.6: permerror
    DNS_LIMIT = "dns-limit"  # §4.6.4: more than 10 DNS-querying terms: permerror
    VOID_LIMIT = "void-limit"  # §4.6.4: more than 2 void lookups: permerror
    MX_LIMIT = "mx-limit"  # §4.6.4: more than 10 MX records: permerror
    INCLUDE_NONE = "include-none"  # §5.2: an included domain has no record: permerror
    REDIRECT_NONE = "redirect-none"  # §6.1: the redirect target has no record: permerror


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
    reason_code: SPFReason  # the same, as a code
    mechanism: str | None = None  # the matching term as written, if any
    explanation: str | None = None  # the expanded exp= text (fail only)
    dns_queries: int = 0
    dns_mechanisms: int = 0
    void_lookups: int = 0

    def to_dict(self, receiver: str | None = None) -> dict[str, Any]:
        """The JSON object of this result, for every command that shows one; with `receiver`
        (our host name) it also holds the Received-SPF field (RFC 7208 §9.1) it gives."""
        from .header import received_spf  # the header module formats results: no cycle

        out: dict[str, Any] = {
            "identity": self.identity.value,
            "result": self.result.value,
            "explanation": self.explanation,
            "domain": self.domain,
            "dns_queries": self.dns_queries,
        }
        if receiver is not None:
            out["received_spf"] = received_spf(self, receiver)
        out.update(
            reason=self.reason,
            reason_code=self.reason_code.value,
            mechanism=self.mechanism,
            sender=self.sender,
            ip=str(self.ip),
            dns_mechanisms=self.dns_mechanisms,
            void_lookups=self.void_lookups,
        )
        return out
