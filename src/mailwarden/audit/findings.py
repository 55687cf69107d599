"""What a domain audit finds: typed findings with a severity and a concrete fix, grouped by
check, and the small DNS helper every check uses to tell "not found" from "timed out"."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mailwarden.dns import Answer, NoData, NXDomain, RdType, Resolver, TemporaryFailure

__all__ = [
    "Finding",
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


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing found. `code` is stable (for scripts); `fix` says what to change ("" for ok)."""

    check: str  # mx, spf, dkim, dmarc, bimi
    code: str
    severity: Severity
    message: str
    fix: str = ""
    subject: str = ""  # the name, address or selector it is about

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "code": self.code,
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
        self, code: str, severity: Severity, message: str, fix: str = "", subject: str = ""
    ) -> None:
        self.findings.append(Finding(self.check, code, severity, message, fix, subject))

    def timeout(self, name: str, rdtype: RdType, detail: str, subject: str = "") -> None:
        """A DNS lookup that gave no answer: reported as such, never as "not found"."""
        self.add(
            f"{self.check}-dns-timeout",
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
