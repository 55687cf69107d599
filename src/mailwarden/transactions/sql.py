"""The transaction store in SQL: one implementation for SQLite and PostgreSQL.

Statements are written once with `?` placeholders; a dialect gives the column types, the
placeholder and the time bucket expression. The blocking drivers run on one worker thread per
store, never on the event loop. Symbols are kept in a table of their own (one row per symbol
and transaction) so the top symbols are one GROUP BY.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from mailwarden.sqlitefile import SQLiteFile, transaction

from .model import Check, DomainCount, Summary, TransactionRecord, normalize_key
from .store import TOP

__all__ = ["PostgresStore", "SQLiteStore"]

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS mw_transactions (
    id {serial},
    time {real} NOT NULL,
    queue_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    helo TEXT NOT NULL,
    mail_from TEXT NOT NULL,
    sender_domain TEXT NOT NULL,
    subject TEXT NOT NULL,
    action TEXT NOT NULL,
    stage TEXT NOT NULL,
    reply_code INTEGER NOT NULL,
    reply TEXT NOT NULL,
    dmarc TEXT NOT NULL,
    greylist TEXT NOT NULL,
    timed_out TEXT NOT NULL,
    symbols TEXT NOT NULL,
    checks TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS mw_transactions_time ON mw_transactions (time);
CREATE INDEX IF NOT EXISTS mw_transactions_queue_id ON mw_transactions (queue_id);
CREATE INDEX IF NOT EXISTS mw_transactions_message_id ON mw_transactions (message_id);
CREATE TABLE IF NOT EXISTS mw_transaction_symbols (
    tx {bigint} NOT NULL,
    time {real} NOT NULL,
    symbol TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS mw_transaction_symbols_time ON mw_transaction_symbols (time);
"""

COLUMNS = (
    "time, queue_id, message_id, client_ip, helo, mail_from, sender_domain, subject, action, "
    "stage, reply_code, reply, dmarc, greylist, timed_out, symbols, checks"
)


@dataclass(frozen=True, slots=True)
class Dialect:
    serial: str
    real: str
    bigint: str
    placeholder: str
    bucket: str  # the bucket index of `time` for a start and a width (two placeholders)

    def sql(self, text: str) -> str:
        return text.replace("?", self.placeholder)

    def schema(self) -> str:
        return SCHEMA.format(serial=self.serial, real=self.real, bigint=self.bigint)


SQLITE = Dialect(
    serial="INTEGER PRIMARY KEY",
    real="REAL",
    bigint="INTEGER",
    placeholder="?",
    bucket="CAST((time - ?) / ? AS INTEGER)",  # times in the window: truncation is floor
)
POSTGRES = Dialect(
    serial="BIGSERIAL PRIMARY KEY",
    real="DOUBLE PRECISION",
    bigint="BIGINT",
    placeholder="%s",
    bucket="CAST(FLOOR((time - %s) / %s) AS BIGINT)",
)


def _row(record: TransactionRecord) -> tuple[Any, ...]:
    return (
        record.time,
        record.queue_id,
        record.message_id,
        record.client_ip,
        record.helo,
        record.mail_from,
        record.sender_domain,
        record.subject,
        record.action,
        record.stage,
        record.reply_code,
        record.reply,
        record.dmarc,
        record.greylist,
        json.dumps(list(record.timed_out)),
        json.dumps(list(record.symbols)),
        json.dumps([[c.name, c.result, c.reason] for c in record.checks]),
    )


def _record(row: Sequence[Any]) -> TransactionRecord:
    return TransactionRecord(
        time=float(row[0]),
        queue_id=row[1],
        message_id=row[2],
        client_ip=row[3],
        helo=row[4],
        mail_from=row[5],
        sender_domain=row[6],
        subject=row[7],
        action=row[8],
        stage=row[9],
        reply_code=int(row[10]),
        reply=row[11],
        dmarc=row[12],
        greylist=row[13],
        timed_out=tuple(json.loads(row[14])),
        symbols=tuple(json.loads(row[15])),
        checks=tuple(Check(*c) for c in json.loads(row[16])),
    )


class _SQLStore:
    """The statements; subclasses connect and run work on their worker thread."""

    dialect: Dialect

    def _run(self, work: Callable[[Any], T]) -> asyncio.Future[T]:
        raise NotImplementedError

    def _write(self, db: Any, work: Callable[[], T]) -> T:
        raise NotImplementedError

    async def add(self, records: list[TransactionRecord]) -> None:
        if not records:
            return
        bounded = [r.bounded() for r in records]
        d = self.dialect
        insert = d.sql(
            f"INSERT INTO mw_transactions ({COLUMNS}) VALUES ({', '.join('?' * 17)}) RETURNING id"
        )
        insert_symbol = d.sql(
            "INSERT INTO mw_transaction_symbols (tx, time, symbol) VALUES (?, ?, ?)"
        )

        def work(db: Any) -> None:
            def write() -> None:
                symbols: list[tuple[int, float, str]] = []
                for record in bounded:
                    (row_id,) = db.execute(insert, _row(record)).fetchone()
                    symbols.extend((row_id, record.time, s) for s in record.symbols)
                if symbols:
                    _executemany(db, insert_symbol, symbols)

            self._write(db, write)

        await self._run(work)

    async def lookup(self, key: str) -> TransactionRecord | None:
        key = normalize_key(key)
        if not key:
            return None
        sql = self.dialect.sql(
            f"SELECT {COLUMNS} FROM mw_transactions WHERE queue_id = ? OR message_id = ? "
            "ORDER BY time DESC, id DESC LIMIT 1"
        )

        def work(db: Any) -> TransactionRecord | None:
            row = db.execute(sql, (key, key)).fetchone()
            return None if row is None else _record(row)

        return await self._run(work)

    async def summary(
        self, since: float, until: float, bucket: float, *, top: int = TOP
    ) -> Summary:
        d = self.dialect
        window = "time >= ? AND time < ?"
        timeline_sql = d.sql(
            f"SELECT {d.bucket} AS b, action, COUNT(*) FROM mw_transactions "
            f"WHERE {window} GROUP BY b, action"
        )
        symbols_sql = d.sql(
            f"SELECT symbol, COUNT(*) AS n FROM mw_transaction_symbols WHERE {window} "
            "GROUP BY symbol ORDER BY n DESC, symbol LIMIT ?"
        )
        domains_sql = d.sql(
            "SELECT sender_domain, COUNT(*) AS n, "
            "SUM(CASE WHEN dmarc = 'pass' THEN 1 ELSE 0 END) FROM mw_transactions "
            f"WHERE {window} AND sender_domain <> '' "
            "GROUP BY sender_domain ORDER BY n DESC, sender_domain LIMIT ?"
        )
        refused_sql = d.sql(
            "SELECT client_ip, COUNT(*) AS n FROM mw_transactions "
            f"WHERE {window} AND reply_code >= 500 "
            "GROUP BY client_ip ORDER BY n DESC, client_ip LIMIT ?"
        )
        counts_sql = d.sql(
            "SELECT COUNT(*), "
            "SUM(CASE WHEN greylist = 'deferred' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN greylist = 'passed' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN timed_out <> '[]' THEN 1 ELSE 0 END) "
            f"FROM mw_transactions WHERE {window}"
        )

        def work(db: Any) -> Summary:
            timeline: dict[int, dict[str, int]] = {}
            actions: dict[str, int] = {}
            for index, action, n in db.execute(timeline_sql, (since, bucket, since, until)):
                timeline.setdefault(int(index), {})[action] = int(n)
                actions[action] = actions.get(action, 0) + int(n)
            symbols = [(s, int(n)) for s, n in db.execute(symbols_sql, (since, until, top))]
            domains = [
                DomainCount(name, int(n), int(p or 0))
                for name, n, p in db.execute(domains_sql, (since, until, top))
            ]
            refused = [(ip, int(n)) for ip, n in db.execute(refused_sql, (since, until, top))]
            total, deferred, passed, timed_out = db.execute(counts_sql, (since, until)).fetchone()
            return Summary(
                since=since,
                until=until,
                bucket=bucket,
                timeline=timeline,
                actions=actions,
                total=int(total),
                symbols=symbols,
                domains=domains,
                refused_clients=refused,
                greylist={"deferred": int(deferred or 0), "passed": int(passed or 0)},
                timed_out=int(timed_out or 0),
            )

        return await self._run(work)

    async def prune(self, now: float, keep_days: float, max_rows: int) -> int:
        d = self.dialect
        oldest = now - keep_days * 86400
        delete_old = d.sql("DELETE FROM mw_transactions WHERE time < ?")
        beyond_sql = d.sql(
            "SELECT time, id FROM mw_transactions ORDER BY time DESC, id DESC LIMIT 1 OFFSET ?"
        )
        delete_beyond = d.sql(
            "DELETE FROM mw_transactions WHERE time < ? OR (time = ? AND id <= ?)"
        )
        delete_old_symbols = d.sql("DELETE FROM mw_transaction_symbols WHERE time < ?")
        delete_beyond_symbols = d.sql(
            "DELETE FROM mw_transaction_symbols WHERE time < ? OR (time = ? AND tx <= ?)"
        )

        def work(db: Any) -> int:
            def write() -> int:
                deleted = _rowcount(db.execute(delete_old, (oldest,)))
                db.execute(delete_old_symbols, (oldest,))
                beyond = db.execute(beyond_sql, (max_rows,)).fetchone()
                if beyond is not None:  # the newest row past `max_rows`, and all older
                    at, row_id = beyond
                    deleted += _rowcount(db.execute(delete_beyond, (at, at, row_id)))
                    db.execute(delete_beyond_symbols, (at, at, row_id))
                return deleted

            return self._write(db, write)

        return await self._run(work)

    async def count(self) -> int:
        def work(db: Any) -> int:
            return int(db.execute("SELECT COUNT(*) FROM mw_transactions").fetchone()[0])

        return await self._run(work)


def _executemany(db: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    if isinstance(db, sqlite3.Connection):
        db.executemany(sql, rows)
    else:
        with db.cursor() as cursor:
            cursor.executemany(sql, rows)


def _rowcount(cursor: Any) -> int:
    return max(int(cursor.rowcount), 0)


class SQLiteStore(_SQLStore):
    """Transactions in the SQLite file at `path` (WAL: several processes may write)."""

    dialect = SQLITE

    def __init__(self, path: str | Path) -> None:
        self.file = SQLiteFile(path, SQLITE.schema(), name="transactions-sqlite")

    def _run(self, work: Callable[[Any], T]) -> asyncio.Future[T]:
        return asyncio.ensure_future(self.file.run(work))

    def _write(self, db: Any, work: Callable[[], T]) -> T:
        return transaction(db, work)

    async def close(self) -> None:
        await self.file.close()


class PostgresStore(_SQLStore):
    """Transactions in the PostgreSQL database at `dsn` (tables made when missing), for
    several gateways writing to one place."""

    dialect = POSTGRES

    def __init__(self, dsn: str, *, connect_timeout: int = 10) -> None:
        self.dsn = dsn
        self.connect_timeout = connect_timeout
        self._executor: ThreadPoolExecutor | None = None
        self._db: Any = None

    def _connect(self) -> Any:
        import psycopg

        if self._db is None or self._db.closed:
            db = psycopg.connect(self.dsn, autocommit=True, connect_timeout=self.connect_timeout)
            with db.transaction():  # gateways starting together make the tables once
                db.execute("SELECT pg_advisory_xact_lock(1717991)")
                for statement in POSTGRES.schema().split(";"):
                    if statement.strip():
                        db.execute(statement)
            self._db = db
        return self._db

    def _run(self, work: Callable[[Any], T]) -> asyncio.Future[T]:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="transactions-postgres")
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, lambda: work(self._connect()))

    def _write(self, db: Any, work: Callable[[], T]) -> T:
        with db.transaction():
            return work()

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return

        def work() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(executor, work)
        executor.shutdown(wait=True)
