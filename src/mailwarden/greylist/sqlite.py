"""The embedded greylist store: one SQLite file, shared safely by several processes.

WAL journaling lets readers and one writer work at once; `busy_timeout` makes a process wait
for another's write instead of failing; read-modify-write runs in a BEGIN IMMEDIATE
transaction, so two processes deciding on one triplet see each other's result. The blocking
sqlite3 calls run on one worker thread per store, never on the event loop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from mailwarden.sqlitefile import SQLiteFile, transaction

from .core import (
    AllowEntry,
    Entry,
    GreylistConfig,
    NetworkEntry,
    TripletKey,
    advance,
    check_allow_entry,
    is_valid_time,
    stored_count,
    stored_time,
)
from .store import Attempt, AttemptResult, TripletField

__all__ = ["SQLiteStore"]

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS triplets (
    origin TEXT NOT NULL,
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    attempts INTEGER NOT NULL,
    passed_at REAL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (origin, sender, recipient)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS triplets_expiry ON triplets (expires_at);
CREATE TABLE IF NOT EXISTS networks (
    network TEXT PRIMARY KEY,
    passes INTEGER NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS allowed (
    target TEXT PRIMARY KEY,
    added_at REAL NOT NULL,
    expires_at REAL,
    note TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
"""

_ENTRY_COLUMNS = "origin, sender, recipient, first_seen, last_seen, attempts, passed_at, expires_at"


def _entry(row: Sequence[object]) -> Entry:
    """A triplet row; values that are not numbers (a hand-edited file) become NaN or -1."""
    origin, sender, recipient, first, last, attempts, passed, expires = row
    return Entry(
        TripletKey(str(origin), str(sender), str(recipient)),
        stored_time(first),
        stored_time(last),
        stored_count(attempts),
        None if passed is None else stored_time(passed),
        stored_time(expires),
    )


def _sound(entry: Entry) -> bool:
    """Every time of the entry is a time: a row that is not is never decided on."""
    return all(
        is_valid_time(t) for t in (entry.first_seen, entry.last_seen, entry.expires_at)
    ) and (entry.passed_at is None or is_valid_time(entry.passed_at))


def _allow(row: Sequence[object]) -> AllowEntry:
    target, added, expires, note = row
    return AllowEntry(
        str(target),
        stored_time(added),
        None if expires is None else stored_time(expires),
        "" if note is None else str(note),
    )


def _network(row: Sequence[object]) -> NetworkEntry:
    network, passes, expires = row
    return NetworkEntry(str(network), stored_count(passes), stored_time(expires))


class SQLiteStore:
    """Greylist state in the SQLite file at `path` (created with its tables if missing)."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.file = SQLiteFile(self.path, SCHEMA, busy_timeout=busy_timeout, name="greylist")

    async def attempt(self, attempt: Attempt, now: float, config: GreylistConfig) -> AttemptResult:
        def work(db: sqlite3.Connection) -> AttemptResult:
            return transaction(db, lambda: self._attempt(db, attempt, now, config))

        return await self.file.run(work)

    @staticmethod
    def _attempt(
        db: sqlite3.Connection, attempt: Attempt, now: float, config: GreylistConfig
    ) -> AttemptResult:
        targets = attempt.allow_targets
        if targets:
            marks = ",".join("?" * len(targets))
            rows = db.execute(
                f"SELECT target, added_at, expires_at, note FROM allowed "
                f"WHERE target IN ({marks}) AND (expires_at IS NULL OR expires_at > ?)",
                (*targets, now),
            ).fetchall()
            if rows:
                by_target = {row[0]: row for row in rows}
                first = next(t for t in targets if t in by_target)
                return AttemptResult(allowed=_allow(by_target[first]))
        row = db.execute(
            "SELECT passes FROM networks WHERE network = ? AND expires_at > ?",
            (attempt.network, now),
        ).fetchone()
        passes = int(row[0]) if row else 0
        if config.auto_allow_after and passes >= config.auto_allow_after:
            return AttemptResult(passes=passes)
        key = attempt.key
        row = db.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM triplets "
            "WHERE origin = ? AND sender = ? AND recipient = ? AND expires_at > ?",
            (key.origin, key.sender, key.recipient, now),
        ).fetchone()
        old = _entry(row) if row else None
        if old is not None and not _sound(old):  # unreadable times: start the triplet afresh
            old = None
        new = advance(old, key, now, config)
        db.execute(
            f"INSERT OR REPLACE INTO triplets ({_ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key.origin,
                key.sender,
                key.recipient,
                new.first_seen,
                new.last_seen,
                new.attempts,
                new.passed_at,
                new.expires_at,
            ),
        )
        if new.passed:
            passes += 1
            db.execute(
                "INSERT OR REPLACE INTO networks (network, passes, expires_at) VALUES (?, ?, ?)",
                (attempt.network, passes, now + config.pass_ttl),
            )
        return AttemptResult(None, passes, old, new)

    async def allow(self, entry: AllowEntry) -> None:
        check_allow_entry(entry)

        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT OR REPLACE INTO allowed (target, added_at, expires_at, note) "
                "VALUES (?, ?, ?, ?)",
                (entry.target, entry.added_at, entry.expires_at, entry.note),
            )

        await self.file.run(work)

    async def forget_allow(self, target: str) -> bool:
        return await self.file.run(
            lambda db: db.execute("DELETE FROM allowed WHERE target = ?", (target,)).rowcount > 0
        )

    async def forget_network(self, network: str) -> bool:
        return await self.file.run(
            lambda db: db.execute("DELETE FROM networks WHERE network = ?", (network,)).rowcount > 0
        )

    async def forget_triplets(self, field: TripletField, value: str) -> int:
        if field is TripletField.SENDER_DOMAIN:
            where, args = "sender LIKE ? ESCAPE '\\'", ("%@" + _like_escape(value),)
        else:
            where, args = f"{field.value} = ?", (value,)
        return await self.file.run(
            lambda db: db.execute(f"DELETE FROM triplets WHERE {where}", args).rowcount
        )

    async def entries(self, now: float, *, limit: int | None = None) -> list[Entry]:
        def work(db: sqlite3.Connection) -> list[Entry]:
            rows = db.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM triplets WHERE expires_at > ? "
                "ORDER BY last_seen DESC LIMIT ?",
                (now, -1 if limit is None else limit),
            ).fetchall()
            return [_entry(row) for row in rows]

        return await self.file.run(work)

    async def allowed(self, now: float) -> list[AllowEntry]:
        def work(db: sqlite3.Connection) -> list[AllowEntry]:
            rows = db.execute(
                "SELECT target, added_at, expires_at, note FROM allowed "
                "WHERE expires_at IS NULL OR expires_at > ? ORDER BY target",
                (now,),
            ).fetchall()
            return [_allow(row) for row in rows]

        return await self.file.run(work)

    async def networks(self, now: float) -> list[NetworkEntry]:
        def work(db: sqlite3.Connection) -> list[NetworkEntry]:
            rows = db.execute(
                "SELECT network, passes, expires_at FROM networks WHERE expires_at > ? "
                "ORDER BY network",
                (now,),
            ).fetchall()
            return [_network(row) for row in rows]

        return await self.file.run(work)

    async def purge(self, now: float) -> int:
        def work(db: sqlite3.Connection) -> int:
            def delete() -> int:
                count = db.execute("DELETE FROM triplets WHERE expires_at <= ?", (now,)).rowcount
                count += db.execute("DELETE FROM networks WHERE expires_at <= ?", (now,)).rowcount
                count += db.execute(
                    "DELETE FROM allowed WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
                ).rowcount
                return count

            return transaction(db, delete)

        return await self.file.run(work)

    async def close(self) -> None:
        await self.file.close()


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
