"""The report store: its interface and the plain records it keeps.

One store holds what reporting needs: the DMARC evaluations recorded by the front ends, the
aggregate reports built from them (kept byte for byte, so a re-send carries the same Report-ID
and file name), their deliveries, what each destination did with them, what was sent when
(the budgets), failure-report incidents, and the reports others sent us (imported once each).
`SQLiteStore` (the data directory, the default) and `PostgresStore` (several gateways
reporting as one) implement it with the same SQL and pass one shared test suite.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from .evaluation import Evaluation
from .model import AggregateReport, FailureReport, ReportRow

__all__ = [
    "Delivery",
    "DeliveryStatus",
    "DestinationState",
    "ImportedRow",
    "Incident",
    "OutgoingReport",
    "ReportStore",
    "Reputation",
]


class DeliveryStatus(StrEnum):
    """Where one report stands with one destination."""

    PENDING = "pending"  # waiting for its time (sends are spread) or for a budget
    SENDING = "sending"  # claimed by a sender now
    RETRY = "retry"  # a temporary failure: tried again later, never in a tight loop
    SENT = "sent"  # the relay took it
    WRITTEN = "written"  # dry run: written to the directory instead
    UNAUTHORIZED = "unauthorized"  # an external destination that did not authorize us
    SUPPRESSED = "suppressed"  # the destination bounced or refused: left alone for a while
    FAILED = "failed"  # refused for good, or undelivered after give_up_days


@dataclass(frozen=True, slots=True)
class OutgoingReport:
    """One report as built: `payload` is the attachment exactly as sent (gzip for aggregate
    reports, the ARF message for failure reports)."""

    report_id: str
    kind: str  # "aggregate" or "failure"
    domain: str
    begin: int
    end: int
    part: int
    parts: int
    filename: str
    payload: bytes
    messages: int
    created: float


@dataclass(frozen=True, slots=True)
class Delivery:
    report_id: str
    destination: str  # the mailto address
    status: DeliveryStatus
    attempts: int = 0
    not_before: float = 0.0
    last_error: str = ""
    updated: float = 0.0


@dataclass(frozen=True, slots=True)
class DestinationState:
    """What one report address did with our reports. `token` tags the return path of the
    reports sent to it, so a bounce names the destination that bounced."""

    address: str
    token: str
    failures: int = 0
    first_failure: float | None = None
    suppressed_until: float = 0.0
    dropped_until: float = 0.0
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class Incident:
    """Failures alike (same domain, source, author domain and failure) awaiting a failure
    report; `count` since the first, `reported` of them already sent (ARF Incidents)."""

    key: str
    domain: str
    record: str
    count: int
    reported: int
    first: float
    last: float
    evaluation: str  # JSON of the first failure's facts
    headers: bytes  # its header section, redacted as the settings said when it was kept
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Reputation:
    """How a domain's mail went with us (the reputation gate of outgoing reports)."""

    messages: int  # evaluations of its mail in the window
    passed: int  # of which DMARC passed
    spam: int  # DMARC-passing mail our policy refused or quarantined
    good_exchange: bool  # ever a DMARC-passing message we accepted

    @property
    def spam_share(self) -> float:
        return self.spam / self.passed if self.passed else 0.0


@dataclass(frozen=True, slots=True)
class ImportedRow:
    """One row of an imported aggregate report, with the report it came from."""

    reporter: str  # org_name
    report_id: str
    begin: int
    end: int
    domain: str
    row: ReportRow


class ReportStore(Protocol):
    """Where reporting state lives. Every method is atomic on its own; the claims make two
    gateways sharing one store build each period once and send each report once."""

    # -- recording ---------------------------------------------------------------------
    async def add_evaluations(self, evaluations: Sequence[Evaluation]) -> None: ...

    async def evaluations(
        self, since: float, until: float, *, domain: str | None = None
    ) -> list[Evaluation]:
        """Evaluations in [since, until), oldest first; `domain`: of that Policy Domain."""
        ...

    async def reputation(self, domain: str, since: float) -> Reputation: ...

    async def purge(self, now: float, *, keep: float, keep_imported: float) -> int:
        """Drop evaluations and outgoing reports older than `keep` seconds, imported reports
        older than `keep_imported`; how many rows went."""
        ...

    # -- building ----------------------------------------------------------------------
    async def claim_period(self, begin: int, now: float, *, stale: float = 3600.0) -> bool:
        """True for the one caller that is to build the period starting at `begin`."""
        ...

    async def finish_period(self, begin: int, now: float) -> None: ...

    async def add_outgoing(self, report: OutgoingReport, deliveries: Sequence[Delivery]) -> bool:
        """Keep a built report and its deliveries; False if its id was there already."""
        ...

    async def outgoing(self, report_id: str) -> OutgoingReport | None: ...

    async def deliveries(self, *, report_id: str | None = None) -> list[Delivery]: ...

    async def due(self, now: float, *, limit: int = 100) -> list[Delivery]:
        """Pending and retrying deliveries whose time has come, earliest first."""
        ...

    async def claim(self, delivery: Delivery, now: float, *, stale: float = 3600.0) -> bool:
        """Mark it sending; False when another sender has it (or it moved on)."""
        ...

    async def update_delivery(self, delivery: Delivery) -> None: ...

    # -- destinations and budgets --------------------------------------------------------
    async def destination(self, address: str) -> DestinationState | None: ...

    async def destination_by_token(self, token: str) -> DestinationState | None: ...

    async def save_destination(self, state: DestinationState) -> None: ...

    async def log_send(self, now: float, destination: str, size: int, kind: str) -> None: ...

    async def sent_since(
        self, since: float, *, destination: str | None = None, kind: str | None = None
    ) -> tuple[int, int]:
        """(reports, bytes) sent since `since`, to one destination or to all."""
        ...

    # -- failure reports -----------------------------------------------------------------
    async def add_incident(self, incident: Incident) -> None:
        """A new incident, or one more of an existing key (count + 1, last updated)."""
        ...

    async def incidents(self) -> list[Incident]:
        """Incidents with failures not yet reported."""
        ...

    async def mark_reported(self, key: str, count: int) -> None: ...

    # -- imported reports ----------------------------------------------------------------
    async def add_aggregate(self, report: AggregateReport, source: str, now: float) -> bool:
        """Keep an imported aggregate report; False when it was imported already (same
        reporter and report id)."""
        ...

    async def add_failure(self, report: FailureReport, source: str, now: float) -> bool: ...

    async def imported_rows(
        self, *, domain: str | None = None, since: float = 0.0
    ) -> list[ImportedRow]:
        """Rows of imported aggregate reports whose period ends after `since`."""
        ...

    async def imported_failures(
        self, *, domain: str | None = None, since: float = 0.0
    ) -> list[FailureReport]: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
