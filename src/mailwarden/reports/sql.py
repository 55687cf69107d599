"""The report store in SQL, one implementation for SQLite and PostgreSQL.

The statements are written once with `?` placeholders in the subset both databases share
(ON CONFLICT upserts, RETURNING); a `Dialect` supplies the column types and the placeholder.
The blocking driver calls run on one worker thread per store, never on the event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from .evaluation import Disposition, Evaluation, MessageKind
from .model import AggregateReport, AuthResult, FailureReport, ReportRow
from .store import (
    Delivery,
    DeliveryStatus,
    DestinationState,
    ImportedRow,
    Incident,
    OutgoingReport,
    Reputation,
)

__all__ = ["Connection", "Dialect", "SQLStore"]

T = TypeVar("T")

REFUSED = ("reject", "soft_reject")

SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluations (
    id {serial},
    time {real} NOT NULL,
    source_ip TEXT NOT NULL,
    header_from TEXT NOT NULL,
    envelope_from TEXT NOT NULL,
    envelope_to TEXT NOT NULL,
    policy_domain TEXT NOT NULL,
    record TEXT NOT NULL,
    discovery TEXT NOT NULL,
    result TEXT NOT NULL,
    dkim_aligned {int} NOT NULL,
    spf_aligned {int} NOT NULL,
    policy TEXT NOT NULL,
    disposition TEXT NOT NULL,
    override TEXT NOT NULL,
    override_comment TEXT NOT NULL,
    spf_domain TEXT NOT NULL,
    spf_result TEXT NOT NULL,
    spf_scope TEXT NOT NULL,
    dkim TEXT NOT NULL,
    kind TEXT NOT NULL,
    action TEXT NOT NULL,
    spam {int} NOT NULL,
    org_domain TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS evaluations_time ON evaluations (time);
CREATE INDEX IF NOT EXISTS evaluations_domain ON evaluations (policy_domain, time);
CREATE TABLE IF NOT EXISTS good_domains (
    domain TEXT PRIMARY KEY,
    first_seen {real} NOT NULL,
    last_seen {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS periods (
    begin_time {int} PRIMARY KEY,
    claimed {real} NOT NULL,
    built {real}
);
CREATE TABLE IF NOT EXISTS outgoing (
    report_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    domain TEXT NOT NULL,
    begin_time {int} NOT NULL,
    end_time {int} NOT NULL,
    part {int} NOT NULL,
    parts {int} NOT NULL,
    filename TEXT NOT NULL,
    payload {blob} NOT NULL,
    messages {int} NOT NULL,
    created {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS outgoing_created ON outgoing (created);
CREATE TABLE IF NOT EXISTS deliveries (
    report_id TEXT NOT NULL,
    destination TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts {int} NOT NULL,
    not_before {real} NOT NULL,
    last_error TEXT NOT NULL,
    updated {real} NOT NULL,
    PRIMARY KEY (report_id, destination)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, not_before);
CREATE TABLE IF NOT EXISTS destinations (
    address TEXT PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    failures {int} NOT NULL,
    first_failure {real},
    suppressed_until {real} NOT NULL,
    dropped_until {real} NOT NULL,
    last_error TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sends (
    time {real} NOT NULL,
    destination TEXT NOT NULL,
    size {int} NOT NULL,
    kind TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sends_time ON sends (time);
CREATE TABLE IF NOT EXISTS incidents (
    key TEXT PRIMARY KEY,
    domain TEXT NOT NULL,
    record TEXT NOT NULL,
    count {int} NOT NULL,
    reported {int} NOT NULL,
    first_time {real} NOT NULL,
    last_time {real} NOT NULL,
    evaluation TEXT NOT NULL,
    headers {blob} NOT NULL,
    body {blob} NOT NULL
);
CREATE TABLE IF NOT EXISTS imported (
    id {serial},
    kind TEXT NOT NULL,
    reporter TEXT NOT NULL,
    report_id TEXT NOT NULL,
    org_name TEXT NOT NULL,
    domain TEXT NOT NULL,
    begin_time {int} NOT NULL,
    end_time {int} NOT NULL,
    messages {int} NOT NULL,
    details TEXT NOT NULL,
    source TEXT NOT NULL,
    imported {real} NOT NULL,
    UNIQUE (kind, reporter, report_id)
);
CREATE INDEX IF NOT EXISTS imported_domain ON imported (domain, end_time);
CREATE TABLE IF NOT EXISTS imported_rows (
    report {bigint} NOT NULL,
    domain TEXT NOT NULL,
    end_time {int} NOT NULL,
    source_ip TEXT NOT NULL,
    count {int} NOT NULL,
    disposition TEXT NOT NULL,
    dkim TEXT NOT NULL,
    spf TEXT NOT NULL,
    header_from TEXT NOT NULL,
    envelope_from TEXT NOT NULL,
    envelope_to TEXT NOT NULL,
    reasons TEXT NOT NULL,
    dkim_results TEXT NOT NULL,
    spf_results TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS imported_rows_report ON imported_rows (report);
CREATE INDEX IF NOT EXISTS imported_rows_domain ON imported_rows (domain, end_time);
"""

_EVALUATION_COLUMNS = (
    "time, source_ip, header_from, envelope_from, envelope_to, policy_domain, record, "
    "discovery, result, dkim_aligned, spf_aligned, policy, disposition, override, "
    "override_comment, spf_domain, spf_result, spf_scope, dkim, kind, action, spam, org_domain"
)
_OUTGOING_COLUMNS = (
    "report_id, kind, domain, begin_time, end_time, part, parts, filename, payload, messages, "
    "created"
)
_DELIVERY_COLUMNS = "report_id, destination, status, attempts, not_before, last_error, updated"
_DESTINATION_COLUMNS = (
    "address, token, failures, first_failure, suppressed_until, dropped_until, last_error"
)
_INCIDENT_COLUMNS = (
    "key, domain, record, count, reported, first_time, last_time, evaluation, headers, body"
)


class Connection(Protocol):
    """What the store needs of a DB-API connection (sqlite3 and psycopg both fit)."""

    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the databases: column types and the placeholder."""

    serial: str
    real: str
    int: str
    bigint: str
    blob: str
    placeholder: str = "?"

    def schema(self) -> list[str]:
        text = SCHEMA.format(
            serial=self.serial, real=self.real, int=self.int, bigint=self.bigint, blob=self.blob
        )
        return [statement.strip() for statement in text.split(";") if statement.strip()]

    def sql(self, statement: str) -> str:
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)


def _evaluation_row(e: Evaluation) -> tuple[Any, ...]:
    return (
        e.time,
        e.source_ip,
        e.header_from,
        e.envelope_from,
        e.envelope_to,
        e.policy_domain,
        e.record,
        e.discovery,
        e.result,
        int(e.dkim_aligned),
        int(e.spf_aligned),
        e.policy,
        e.disposition.value,
        e.override,
        e.override_comment,
        e.spf_domain,
        e.spf_result,
        e.spf_scope,
        e.dkim_json(),
        e.kind.value,
        e.action,
        int(e.spam),
        e.org_domain,
    )


def _evaluation(row: Sequence[Any]) -> Evaluation:
    return Evaluation(
        time=float(row[0]),
        source_ip=row[1],
        header_from=row[2],
        envelope_from=row[3],
        envelope_to=row[4],
        policy_domain=row[5],
        record=row[6],
        discovery=row[7],
        result=row[8],
        dkim_aligned=bool(row[9]),
        spf_aligned=bool(row[10]),
        policy=row[11],
        disposition=Disposition(row[12]),
        override=row[13],
        override_comment=row[14],
        spf_domain=row[15],
        spf_result=row[16],
        spf_scope=row[17],
        dkim=Evaluation.dkim_from_json(row[18]),
        kind=MessageKind(row[19]),
        action=row[20],
        spam=bool(row[21]),
        org_domain=row[22],
    )


def _outgoing(row: Sequence[Any]) -> OutgoingReport:
    return OutgoingReport(
        row[0],
        row[1],
        row[2],
        int(row[3]),
        int(row[4]),
        int(row[5]),
        int(row[6]),
        row[7],
        bytes(row[8]),
        int(row[9]),
        float(row[10]),
    )


def _delivery(row: Sequence[Any]) -> Delivery:
    return Delivery(
        row[0], row[1], DeliveryStatus(row[2]), int(row[3]), float(row[4]), row[5], float(row[6])
    )


def _destination(row: Sequence[Any]) -> DestinationState:
    return DestinationState(
        row[0],
        row[1],
        int(row[2]),
        None if row[3] is None else float(row[3]),
        float(row[4]),
        float(row[5]),
        row[6],
    )


def _incident(row: Sequence[Any]) -> Incident:
    return Incident(
        row[0],
        row[1],
        row[2],
        int(row[3]),
        int(row[4]),
        float(row[5]),
        float(row[6]),
        row[7],
        bytes(row[8]),
        bytes(row[9]),
    )


def _auth_json(results: Sequence[AuthResult]) -> str:
    return json.dumps([[r.domain, r.result, r.selector, r.scope, r.human_result] for r in results])


def _auth(text: str) -> tuple[AuthResult, ...]:
    return tuple(AuthResult(*map(str, item)) for item in json.loads(text))


class SQLStore:
    """The report store over one database connection, used from one worker thread.

    Subclasses say how to connect (`_open`) and in which dialect; `_transaction` runs work
    atomically (BEGIN IMMEDIATE on SQLite, so two processes never build one period twice).
    """

    dialect: Dialect

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._db: Connection | None = None

    # -- plumbing ----------------------------------------------------------------------
    def _open(self) -> Connection:
        raise NotImplementedError

    def _create_tables(self, db: Connection) -> None:
        for statement in self.dialect.schema():
            db.execute(statement)

    def _connect(self) -> Connection:
        if self._db is None:
            db = self._open()
            self._create_tables(db)
            self._db = db
        return self._db

    def _x(self, sql: str, params: Sequence[Any] = ()) -> Any:
        assert self._db is not None
        return self._db.execute(self.dialect.sql(sql), params)

    def _transaction(self, work: Callable[[], T]) -> T:
        raise NotImplementedError

    async def _run(self, work: Callable[[], T], *, atomic: bool = False) -> T:
        def job() -> T:
            self._connect()
            return self._transaction(work) if atomic else work()

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, job)

    # -- recording ---------------------------------------------------------------------
    async def add_evaluations(self, evaluations: Sequence[Evaluation]) -> None:
        if not evaluations:
            return
        marks = ", ".join("?" * len(_EVALUATION_COLUMNS.split(",")))
        rows = [_evaluation_row(e) for e in evaluations]
        good: dict[str, float] = {}
        for e in evaluations:
            domain = e.policy_domain or e.header_from
            if (
                domain
                and e.passed
                and not e.spam
                and e.action not in REFUSED
                and e.kind is MessageKind.MESSAGE
            ):
                good[domain] = max(good.get(domain, 0.0), e.time)

        def work() -> None:
            self._insert_many(
                f"INSERT INTO evaluations ({_EVALUATION_COLUMNS}) VALUES ({marks})", rows
            )
            for domain, seen in sorted(good.items()):
                self._x(
                    "INSERT INTO good_domains (domain, first_seen, last_seen) VALUES (?, ?, ?) "
                    "ON CONFLICT (domain) DO UPDATE SET last_seen = "
                    "CASE WHEN excluded.last_seen > good_domains.last_seen "
                    "THEN excluded.last_seen ELSE good_domains.last_seen END",
                    (domain, seen, seen),
                )

        await self._run(work, atomic=True)

    def _insert_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Many rows at once (the driver's executemany)."""
        raise NotImplementedError

    async def evaluations(
        self, since: float, until: float, *, domain: str | None = None
    ) -> list[Evaluation]:
        where, params = "time >= ? AND time < ?", list[Any]([since, until])
        if domain is not None:
            where += " AND policy_domain = ?"
            params.append(domain)

        def work() -> list[Evaluation]:
            rows = self._x(
                f"SELECT {_EVALUATION_COLUMNS} FROM evaluations WHERE {where} ORDER BY time, id",
                params,
            ).fetchall()
            return [_evaluation(row) for row in rows]

        return await self._run(work)

    async def reputation(self, domain: str, since: float) -> Reputation:
        def work() -> Reputation:
            row = self._x(
                "SELECT COUNT(*), "
                "COALESCE(SUM(CASE WHEN result = 'pass' THEN 1 ELSE 0 END), 0), "
                "COALESCE(SUM(CASE WHEN result = 'pass' AND spam = 1 THEN 1 ELSE 0 END), 0) "
                "FROM evaluations WHERE policy_domain = ? AND time >= ? AND kind = 'message'",
                (domain, since),
            ).fetchone()
            good = self._x("SELECT 1 FROM good_domains WHERE domain = ?", (domain,)).fetchone()
            return Reputation(int(row[0]), int(row[1]), int(row[2]), good is not None)

        return await self._run(work)

    async def purge(self, now: float, *, keep: float, keep_imported: float) -> int:
        def work() -> int:
            before = now - keep
            count = int(self._x("DELETE FROM evaluations WHERE time < ?", (before,)).rowcount)
            old = "SELECT report_id FROM outgoing WHERE created < ?"
            count += int(
                self._x(f"DELETE FROM deliveries WHERE report_id IN ({old})", (before,)).rowcount
            )
            count += int(self._x("DELETE FROM outgoing WHERE created < ?", (before,)).rowcount)
            count += int(self._x("DELETE FROM sends WHERE time < ?", (now - 3 * 86400,)).rowcount)
            count += int(self._x("DELETE FROM periods WHERE begin_time < ?", (before,)).rowcount)
            count += int(
                self._x(
                    "DELETE FROM incidents WHERE last_time < ? AND reported >= count", (before,)
                ).rowcount
            )
            ancient = now - keep_imported
            gone = "SELECT id FROM imported WHERE end_time < ?"
            count += int(
                self._x(f"DELETE FROM imported_rows WHERE report IN ({gone})", (ancient,)).rowcount
            )
            count += int(self._x("DELETE FROM imported WHERE end_time < ?", (ancient,)).rowcount)
            return count

        return await self._run(work, atomic=True)

    # -- building ----------------------------------------------------------------------
    async def claim_period(self, begin: int, now: float, *, stale: float = 3600.0) -> bool:
        def work() -> bool:
            if self._x(
                "INSERT INTO periods (begin_time, claimed, built) VALUES (?, ?, NULL) "
                "ON CONFLICT (begin_time) DO NOTHING",
                (begin, now),
            ).rowcount:
                return True
            # claimed but never built: its builder died
            return bool(
                self._x(
                    "UPDATE periods SET claimed = ? "
                    "WHERE begin_time = ? AND built IS NULL AND claimed < ?",
                    (now, begin, now - stale),
                ).rowcount
            )

        return await self._run(work, atomic=True)

    async def finish_period(self, begin: int, now: float) -> None:
        await self._run(
            lambda: self._x("UPDATE periods SET built = ? WHERE begin_time = ?", (now, begin))
        )

    async def add_outgoing(self, report: OutgoingReport, deliveries: Sequence[Delivery]) -> bool:
        def work() -> bool:
            inserted = self._x(
                f"INSERT INTO outgoing ({_OUTGOING_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (report_id) DO NOTHING",
                (
                    report.report_id,
                    report.kind,
                    report.domain,
                    report.begin,
                    report.end,
                    report.part,
                    report.parts,
                    report.filename,
                    report.payload,
                    report.messages,
                    report.created,
                ),
            ).rowcount
            if not inserted:
                return False
            for d in deliveries:
                self._x(
                    f"INSERT INTO deliveries ({_DELIVERY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (report_id, destination) DO NOTHING",
                    (
                        d.report_id,
                        d.destination,
                        d.status.value,
                        d.attempts,
                        d.not_before,
                        d.last_error,
                        d.updated,
                    ),
                )
            return True

        return await self._run(work, atomic=True)

    async def outgoing(self, report_id: str) -> OutgoingReport | None:
        def work() -> OutgoingReport | None:
            row = self._x(
                f"SELECT {_OUTGOING_COLUMNS} FROM outgoing WHERE report_id = ?", (report_id,)
            ).fetchone()
            return None if row is None else _outgoing(row)

        return await self._run(work)

    async def deliveries(self, *, report_id: str | None = None) -> list[Delivery]:
        where, params = ("WHERE report_id = ?", [report_id]) if report_id else ("", [])

        def work() -> list[Delivery]:
            rows = self._x(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries {where} "
                "ORDER BY not_before, report_id, destination",
                params,
            ).fetchall()
            return [_delivery(row) for row in rows]

        return await self._run(work)

    async def due(self, now: float, *, limit: int = 100) -> list[Delivery]:
        def work() -> list[Delivery]:
            rows = self._x(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries "
                "WHERE status IN ('pending', 'retry') AND not_before <= ? "
                "ORDER BY not_before, report_id, destination LIMIT ?",
                (now, limit),
            ).fetchall()
            return [_delivery(row) for row in rows]

        return await self._run(work)

    async def claim(self, delivery: Delivery, now: float, *, stale: float = 3600.0) -> bool:
        def work() -> bool:
            changed = self._x(
                "UPDATE deliveries SET status = 'sending', updated = ? "
                "WHERE report_id = ? AND destination = ? AND "
                "(status IN ('pending', 'retry') OR (status = 'sending' AND updated < ?))",
                (now, delivery.report_id, delivery.destination, now - stale),
            ).rowcount
            return bool(changed)

        return await self._run(work, atomic=True)

    async def update_delivery(self, delivery: Delivery) -> None:
        d = delivery
        await self._run(
            lambda: self._x(
                "UPDATE deliveries SET status = ?, attempts = ?, not_before = ?, last_error = ?, "
                "updated = ? WHERE report_id = ? AND destination = ?",
                (
                    d.status.value,
                    d.attempts,
                    d.not_before,
                    d.last_error[:1000],
                    d.updated,
                    d.report_id,
                    d.destination,
                ),
            )
        )

    # -- destinations and budgets --------------------------------------------------------
    async def destination(self, address: str) -> DestinationState | None:
        return await self._destination_where("address", address)

    async def destination_by_token(self, token: str) -> DestinationState | None:
        return await self._destination_where("token", token)

    async def _destination_where(self, column: str, value: str) -> DestinationState | None:
        def work() -> DestinationState | None:
            row = self._x(
                f"SELECT {_DESTINATION_COLUMNS} FROM destinations WHERE {column} = ?", (value,)
            ).fetchone()
            return None if row is None else _destination(row)

        return await self._run(work)

    async def save_destination(self, state: DestinationState) -> None:
        s = state
        await self._run(
            lambda: self._x(
                f"INSERT INTO destinations ({_DESTINATION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (address) DO UPDATE SET failures = excluded.failures, "
                "first_failure = excluded.first_failure, "
                "suppressed_until = excluded.suppressed_until, "
                "dropped_until = excluded.dropped_until, last_error = excluded.last_error",
                (
                    s.address,
                    s.token,
                    s.failures,
                    s.first_failure,
                    s.suppressed_until,
                    s.dropped_until,
                    s.last_error[:1000],
                ),
            )
        )

    async def log_send(self, now: float, destination: str, size: int, kind: str) -> None:
        await self._run(
            lambda: self._x(
                "INSERT INTO sends (time, destination, size, kind) VALUES (?, ?, ?, ?)",
                (now, destination, size, kind),
            )
        )

    async def sent_since(
        self, since: float, *, destination: str | None = None, kind: str | None = None
    ) -> tuple[int, int]:
        where, params = "time >= ?", list[Any]([since])
        if destination is not None:
            where += " AND destination = ?"
            params.append(destination)
        if kind is not None:
            where += " AND kind = ?"
            params.append(kind)

        def work() -> tuple[int, int]:
            row = self._x(
                f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM sends WHERE {where}", params
            ).fetchone()
            return int(row[0]), int(row[1])

        return await self._run(work)

    # -- failure reports -----------------------------------------------------------------
    async def add_incident(self, incident: Incident) -> None:
        i = incident
        await self._run(
            lambda: self._x(
                f"INSERT INTO incidents ({_INCIDENT_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET count = incidents.count + 1, "
                "last_time = excluded.last_time, record = excluded.record",
                (i.key, i.domain, i.record, 1, 0, i.first, i.last, i.evaluation, i.headers, i.body),
            )
        )

    async def incidents(self) -> list[Incident]:
        def work() -> list[Incident]:
            rows = self._x(
                f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE count > reported "
                "ORDER BY first_time, key"
            ).fetchall()
            return [_incident(row) for row in rows]

        return await self._run(work)

    async def mark_reported(self, key: str, count: int) -> None:
        await self._run(
            lambda: self._x("UPDATE incidents SET reported = ? WHERE key = ?", (count, key))
        )

    # -- imported reports ----------------------------------------------------------------
    async def add_aggregate(self, report: AggregateReport, source: str, now: float) -> bool:
        details = json.dumps(
            {
                "email": report.email,
                "version": report.version,
                "generator": report.generator,
                "extra_contact_info": report.extra_contact_info,
                "errors": list(report.errors),
                "policy": [
                    report.policy.p,
                    report.policy.sp,
                    report.policy.np,
                    report.policy.adkim,
                    report.policy.aspf,
                    report.policy.discovery_method,
                    report.policy.fo,
                    report.policy.testing,
                    report.policy.pct,
                ],
            }
        )
        rows = [
            (
                row.source_ip,
                row.count,
                row.disposition,
                row.dkim,
                row.spf,
                row.header_from,
                row.envelope_from,
                row.envelope_to,
                json.dumps([list(r) for r in row.reasons]),
                _auth_json(row.dkim_results),
                _auth_json(row.spf_results),
            )
            for row in report.rows
        ]

        def work() -> bool:
            found = self._x(
                "INSERT INTO imported (kind, reporter, report_id, org_name, domain, begin_time, "
                "end_time, messages, details, source, imported) "
                "VALUES ('aggregate', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (kind, reporter, report_id) DO NOTHING RETURNING id",
                (
                    report.reporter,
                    report.report_id,
                    report.org_name,
                    report.domain,
                    report.begin,
                    report.end,
                    report.messages,
                    details,
                    source,
                    now,
                ),
            ).fetchone()
            if found is None:
                return False
            report_key = int(found[0])
            self._insert_many(
                "INSERT INTO imported_rows (report, domain, end_time, source_ip, count, "
                "disposition, dkim, spf, header_from, envelope_from, envelope_to, reasons, "
                "dkim_results, spf_results) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(report_key, report.domain, report.end, *row) for row in rows],
            )
            return True

        return await self._run(work, atomic=True)

    async def add_failure(self, report: FailureReport, source: str, now: float) -> bool:
        details = json.dumps(
            {
                "source_ip": report.source_ip,
                "arrival": report.arrival,
                "feedback_type": report.feedback_type,
                "auth_failure": report.auth_failure,
                "delivery_result": report.delivery_result,
                "identity_alignment": report.identity_alignment,
                "incidents": report.incidents,
                "original_mail_from": report.original_mail_from,
                "original_rcpt_to": report.original_rcpt_to,
                "header_from": report.header_from,
                "subject": report.subject,
                "message_id": report.message_id,
                "authentication_results": report.authentication_results,
                "user_agent": report.user_agent,
                "fields": [list(f) for f in report.fields],
            }
        )
        moment = int(report.arrival if report.arrival is not None else now)

        def work() -> bool:
            found = self._x(
                "INSERT INTO imported (kind, reporter, report_id, org_name, domain, begin_time, "
                "end_time, messages, details, source, imported) "
                "VALUES ('failure', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (kind, reporter, report_id) DO NOTHING RETURNING id",
                (
                    report.reporter.lower(),
                    report.report_id,
                    report.reporter,
                    report.domain,
                    moment,
                    moment,
                    report.messages,
                    details,
                    source,
                    now,
                ),
            ).fetchone()
            return found is not None

        return await self._run(work, atomic=True)

    async def imported_rows(
        self, *, domain: str | None = None, since: float = 0.0
    ) -> list[ImportedRow]:
        where, params = "r.end_time >= ?", list[Any]([since])
        if domain is not None:
            where += " AND r.domain = ?"
            params.append(domain)

        def work() -> list[ImportedRow]:
            rows = self._x(
                "SELECT CASE WHEN i.org_name = '' THEN i.reporter ELSE i.org_name END, "
                "i.report_id, i.begin_time, i.end_time, r.domain, "
                "r.source_ip, r.count, r.disposition, r.dkim, r.spf, r.header_from, "
                "r.envelope_from, r.envelope_to, r.reasons, r.dkim_results, r.spf_results "
                "FROM imported_rows r JOIN imported i ON i.id = r.report "
                f"WHERE {where} ORDER BY i.begin_time, i.id, r.source_ip",
                params,
            ).fetchall()
            return [
                ImportedRow(
                    row[0],
                    row[1],
                    int(row[2]),
                    int(row[3]),
                    row[4],
                    ReportRow(
                        row[5],
                        int(row[6]),
                        row[7],
                        row[8],
                        row[9],
                        row[10],
                        row[11],
                        row[12],
                        tuple((str(a), str(b)) for a, b in json.loads(row[13])),
                        _auth(row[14]),
                        _auth(row[15]),
                    ),
                )
                for row in rows
            ]

        return await self._run(work)

    async def imported_failures(
        self, *, domain: str | None = None, since: float = 0.0
    ) -> list[FailureReport]:
        where, params = "kind = 'failure' AND end_time >= ?", list[Any]([since])
        if domain is not None:
            where += " AND domain = ?"
            params.append(domain)

        def work() -> list[FailureReport]:
            rows = self._x(
                f"SELECT report_id, org_name, domain, details FROM imported WHERE {where} "
                "ORDER BY end_time, id",
                params,
            ).fetchall()
            out = []
            for report_id, reporter, dom, details in rows:
                data = json.loads(details)
                fields = tuple((str(a), str(b)) for a, b in data.pop("fields"))
                out.append(FailureReport(report_id, reporter, dom, fields=fields, **data))
            return out

        return await self._run(work)

    async def ping(self) -> None:
        await self._run(lambda: self._x("SELECT 1").fetchone())

    async def close(self) -> None:
        def work() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, work)
        self._executor.shutdown(wait=True)
