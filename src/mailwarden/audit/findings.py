"""What a domain audit finds: typed findings with a severity and a concrete fix, grouped by
check, and the small DNS helper every check uses to tell "not found" from "timed out"."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mailwarden.dns import Answer, NoData, NXDomain, RdType, Resolver, TemporaryFailure

__all__ = [
    "DNS_FAILURES",
    "Finding",
    "FindingCode",
    "LookupStatus",
    "Outcome",
    "Section",
    "Severity",
    "query",
]


class Severity(StrEnum):
    """How much a finding matters, least to most."""

    OK = "ok"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.OK: 0, Severity.INFO: 1, Severity.WARNING: 2, Severity.ERROR: 3}


class FindingCode(StrEnum):
    """The stable code of a finding (for scripts): `<check>-<what>`."""

    BIMI_DECLINED = "bimi-declined"
    BIMI_DMARC_NOT_ENFORCED = "bimi-dmarc-not-enforced"
    BIMI_DNS_TIMEOUT = "bimi-dns-timeout"
    BIMI_LOGO_NOT_HTTPS = "bimi-logo-not-https"
    BIMI_MULTIPLE = "bimi-multiple"
    BIMI_NO_CERTIFICATE = "bimi-no-certificate"
    BIMI_NONE = "bimi-none"
    BIMI_OK = "bimi-ok"
    BIMI_SYNTAX = "bimi-syntax"
    BIMI_VERSION = "bimi-version"
    DKIM_DNS_TIMEOUT = "dkim-dns-timeout"
    DKIM_KEY_OK = "dkim-key-ok"
    DKIM_KEY_OLD = "dkim-key-old"
    DKIM_KEY_TOO_SMALL = "dkim-key-too-small"
    DKIM_KEY_WEAK = "dkim-key-weak"
    DKIM_NONE_FOUND = "dkim-none-found"
    DKIM_NOT_CHECKED = "dkim-not-checked"
    DKIM_NOT_EMAIL = "dkim-not-email"
    DKIM_RECORD_INVALID = "dkim-record-invalid"
    DKIM_REVOKED = "dkim-revoked"
    DKIM_SELECTOR_MISSING = "dkim-selector-missing"
    DKIM_SHA1_ONLY = "dkim-sha1-only"
    DKIM_TESTING = "dkim-testing"
    DMARC_DNS_TIMEOUT = "dmarc-dns-timeout"
    DMARC_ENFORCED = "dmarc-enforced"
    DMARC_INHERITED = "dmarc-inherited"
    DMARC_MULTIPLE_RECORDS = "dmarc-multiple-records"
    DMARC_NO_POLICY = "dmarc-no-policy"
    DMARC_NO_RUA = "dmarc-no-rua"
    DMARC_NONE = "dmarc-none"
    DMARC_NONEXISTENT_NONE = "dmarc-nonexistent-none"
    DMARC_PCT = "dmarc-pct"
    DMARC_POLICY_NONE = "dmarc-policy-none"
    DMARC_PSD = "dmarc-psd"
    DMARC_RECORD_ERROR = "dmarc-record-error"
    DMARC_REPORT_AUTHORIZED = "dmarc-report-authorized"
    DMARC_REPORT_UNAUTHORIZED = "dmarc-report-unauthorized"
    DMARC_REPORT_URI = "dmarc-report-uri"
    DMARC_SUBDOMAINS_NONE = "dmarc-subdomains-none"
    DMARC_TESTING = "dmarc-testing"
    DOMAIN_NXDOMAIN = "domain-nxdomain"
    MX_CNAME = "mx-cname"
    MX_DNS_TIMEOUT = "mx-dns-timeout"
    MX_FCRDNS_FAIL = "mx-fcrdns-fail"
    MX_HOST_OK = "mx-host-ok"
    MX_IMPLICIT = "mx-implicit"
    MX_IP_LITERAL = "mx-ip-literal"
    MX_LISTED = "mx-listed"
    MX_NO_ADDRESS = "mx-no-address"
    MX_NO_PTR = "mx-no-ptr"
    MX_NONE = "mx-none"
    MX_NULL = "mx-null"
    MX_NULL_MIXED = "mx-null-mixed"
    SPF_DNS_TIMEOUT = "spf-dns-timeout"
    SPF_INCLUDE_BROKEN = "spf-include-broken"
    SPF_INCLUDE_LOOP = "spf-include-loop"
    SPF_INCLUDE_MISSING = "spf-include-missing"
    SPF_LOOKUPS_NEAR_LIMIT = "spf-lookups-near-limit"
    SPF_MULTIPLE_RECORDS = "spf-multiple-records"
    SPF_MX_TOO_MANY = "spf-mx-too-many"
    SPF_NEUTRAL_ALL = "spf-neutral-all"
    SPF_NO_ALL = "spf-no-all"
    SPF_NONE = "spf-none"
    SPF_OK = "spf-ok"
    SPF_PASS_ALL = "spf-pass-all"
    SPF_PTR = "spf-ptr"
    SPF_RECORD_SIZE = "spf-record-size"
    SPF_SOFTFAIL_ALL = "spf-softfail-all"
    SPF_SYNTAX = "spf-syntax"
    SPF_TOO_MANY_LOOKUPS = "spf-too-many-lookups"
    SPF_VOID_LOOKUPS = "spf-void-lookups"
    SPF_WIDE_RANGE = "spf-wide-range"


# The codes of "this lookup got no answer" (timeout or SERVFAIL): the check was not done
DNS_FAILURES = frozenset(code for code in FindingCode if code.endswith("-dns-timeout"))


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing found. `code` is stable (for scripts); `fix` says what to change ("" for ok)."""

    check: str  # mx, spf, dkim, dmarc, bimi
    code: FindingCode
    severity: Severity
    message: str
    fix: str = ""
    subject: str = ""  # the name, address or selector it is about

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "code": self.code.value,
            "severity": self.severity.value,
            "subject": self.subject or None,
            "message": self.message,
            "fix": self.fix or None,
        }


@dataclass(slots=True)
class Section:
    """The findings of one check and the data it looked at."""

    check: str
    findings: list[Finding] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add(
        self, code: FindingCode, severity: Severity, message: str, fix: str = "", subject: str = ""
    ) -> None:
        self.findings.append(Finding(self.check, code, severity, message, fix, subject))

    def timeout(self, name: str, rdtype: RdType, detail: str, subject: str = "") -> None:
        """A DNS lookup that gave no answer: reported as such, never as "not found"."""
        self.add(
            FindingCode(f"{self.check}-dns-timeout"),
            Severity.WARNING,
            f"DNS lookup of {name} {rdtype} timed out or failed ({detail}): not checked",
            "Run the check again; if it keeps failing, check the domain's name servers "
            "(all of them must answer, over UDP and TCP).",
            subject or name,
        )

    @property
    def worst(self) -> Severity:
        return max((f.severity for f in self.findings), key=lambda s: s.rank, default=Severity.OK)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.data,
            "status": self.worst.value,
            "findings": [f.to_dict() for f in self.findings],
        }


class LookupStatus(StrEnum):
    FOUND = "found"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One DNS lookup's outcome, with the three failure kinds kept apart."""

    status: LookupStatus
    answer: Answer | None = None
    detail: str = ""

    @property
    def found(self) -> bool:
        return self.answer is not None

    @property
    def timed_out(self) -> bool:
        return self.status is LookupStatus.TIMEOUT


async def query(resolver: Resolver, name: str, rdtype: RdType) -> Outcome:
    """`resolver.resolve` with its outcomes as values (never raises for DNS outcomes)."""
    try:
        return Outcome(LookupStatus.FOUND, await resolver.resolve(name, rdtype))
    except NXDomain:
        return Outcome(LookupStatus.NXDOMAIN, detail="no such domain")
    except NoData:
        return Outcome(LookupStatus.NODATA, detail=f"no {rdtype} records")
    except TemporaryFailure as exc:
        return Outcome(LookupStatus.TIMEOUT, detail=exc.detail or exc.kind)
