"""Reports as data: the aggregate report of RFC 9990 (also RFC 7489's older form) and the
failure report of RFC 9991 (ARF, RFC 5965), whichever way they came, in or out.

Field names follow the XML elements. Result words are lower case, as parsers of the wild
reports must make them; what a report did not say is "" (or None for numbers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "AggregateReport",
    "AuthResult",
    "FailureReport",
    "PolicyPublished",
    "ReportKind",
    "ReportRow",
]


class ReportKind(StrEnum):
    AGGREGATE = "aggregate"  # RFC 9990 (RFC 7489 §7.2)
    FAILURE = "failure"  # RFC 9991 (RFC 7489 §7.3, RFC 6591)


@dataclass(frozen=True, slots=True)
class AuthResult:
    """One DKIM or SPF result of a row's auth_results (RFC 9990 AuthResultType)."""

    domain: str
    result: str
    selector: str = ""  # DKIM
    scope: str = ""  # SPF: mfrom (or helo in RFC 7489 reports)
    human_result: str = ""


@dataclass(frozen=True, slots=True)
class PolicyPublished:
    """The policy the reporter found (RFC 9990 PolicyPublishedType; pct from RFC 7489)."""

    domain: str
    p: str = ""
    sp: str = ""
    np: str = ""
    adkim: str = ""
    aspf: str = ""
    discovery_method: str = ""
    fo: str = ""
    testing: str = ""
    pct: str = ""


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One record of an aggregate report: messages from one source with one outcome."""

    source_ip: str
    count: int
    disposition: str
    dkim: str  # the DMARC-aligned DKIM outcome: pass or fail
    spf: str  # the DMARC-aligned SPF outcome: pass or fail
    header_from: str
    envelope_from: str = ""
    envelope_to: str = ""
    reasons: tuple[tuple[str, str], ...] = ()  # (override type, comment)
    dkim_results: tuple[AuthResult, ...] = ()
    spf_results: tuple[AuthResult, ...] = ()

    @property
    def passed(self) -> bool:
        """DMARC passed: an aligned DKIM or SPF pass (RFC 9989 §4.4)."""
        return self.dkim == "pass" or self.spf == "pass"


@dataclass(frozen=True, slots=True)
class AggregateReport:
    """One aggregate report (one reporting period, one Policy Domain)."""

    org_name: str
    email: str
    report_id: str
    begin: int
    end: int
    policy: PolicyPublished
    rows: tuple[ReportRow, ...]
    version: str = ""
    extra_contact_info: str = ""
    generator: str = ""
    errors: tuple[str, ...] = ()
    namespace: str = ""  # urn:ietf:params:xml:ns:dmarc-2.0 for RFC 9990 reports

    @property
    def domain(self) -> str:
        return self.policy.domain

    @property
    def messages(self) -> int:
        """The messages the report covers: the sum of its rows' counts."""
        return sum(row.count for row in self.rows)

    @property
    def reporter(self) -> str:
        """Who sent it, for telling reports apart: the contact address, else the name."""
        return (self.email or self.org_name).lower()


@dataclass(frozen=True, slots=True)
class FailureReport:
    """One failure report (ARF auth-failure, or a plain-text report saying the same)."""

    report_id: str  # the report message's Message-ID (else a digest of it)
    reporter: str  # the address or domain it came from
    domain: str  # Reported-Domain (else the original From domain)
    source_ip: str
    arrival: float | None
    feedback_type: str = "auth-failure"
    auth_failure: str = ""  # dmarc, dkim, spf
    delivery_result: str = ""
    identity_alignment: str = ""
    incidents: int = 1
    original_mail_from: str = ""
    original_rcpt_to: str = ""
    header_from: str = ""
    subject: str = ""
    message_id: str = ""
    authentication_results: str = ""
    user_agent: str = ""
    fields: tuple[tuple[str, str], ...] = field(default=())  # every feedback field, as sent

    @property
    def messages(self) -> int:
        return max(1, self.incidents)
