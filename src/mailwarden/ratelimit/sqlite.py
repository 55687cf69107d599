"""Counters in one SQLite file (the default, in the data directory), shared by processes.

As the greylist's store: WAL journaling, a busy timeout, read-modify-write inside BEGIN
IMMEDIATE so two processes charging one counter see each other, and the blocking calls on one
worker thread per store, never on the event loop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from mailwarden.sqlitefile import SQLiteFile, transaction

from .window import Charge, Window

__all__ = ["SQLiteCounterStore"]

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (
    key TEXT NOT NULL,
    window TEXT NOT NULL,
    slot INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (key, window, slot)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS members (
    key TEXT NOT NULL,
    member TEXT NOT NULL,
    seen_at REAL NOT NULL,
    PRIMARY KEY (key, member)
) WITHOUT ROWID;
"""


class SQLiteCounterStore:
    """Counters and sets in the SQLite file at `path` (created with its tables if missing)."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.file = SQLiteFile(self.path, SCHEMA, busy_timeout=busy_timeout, name="counters")

    @staticmethod
    def _count(db: sqlite3.Connection, key: str, window: Window, now: float) -> int:
        row = db.execute(
            "SELECT COALESCE(SUM(count), 0) FROM counters "
            "WHERE key = ? AND window = ? AND slot BETWEEN ? AND ?",
            (key, window.id, window.first_live(now), window.slot(now)),
        ).fetchone()
        return int(row[0])

    async def charge(self, charges: Sequence[Charge], now: float) -> Charge | None:
        def work() -> Charge | None:
            db = self.file.connect()
            for item in charges:
                if item.limit is not None and not item.fits(
                    self._count(db, item.key, item.window, now)
                ):
                    return item
            for item in charges:
                window = item.window
                db.execute(
                    "INSERT INTO counters (key, window, slot, count) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (key, window, slot) DO UPDATE SET count = count + excluded.count",
                    (item.key, window.id, window.slot(now), item.amount),
                )
                db.execute(
                    "DELETE FROM counters WHERE key = ? AND window = ? AND slot < ?",
                    (item.key, window.id, window.first_live(now)),
                )
            return None

        return await self.file.run(lambda db: transaction(db, work))

    async def count(self, key: str, window: Window, now: float) -> int:
        return await self.file.run(lambda db: self._count(db, key, window, now))

    async def history(self, key: str, window: Window, now: float) -> list[int]:
        first = window.first_listed(now)

        def work(db: sqlite3.Connection) -> list[int]:
            rows = db.execute(
                "SELECT slot, count FROM counters "
                "WHERE key = ? AND window = ? AND slot BETWEEN ? AND ?",
                (key, window.id, first, window.slot(now)),
            ).fetchall()
            found = {int(slot): int(count) for slot, count in rows}
            return [found.get(first + i, 0) for i in range(window.slots)]

        return await self.file.run(work)

    async def mark(
        self, key: str, members: Sequence[str], now: float, ttl: float, *, record: bool = True
    ) -> list[str]:
        unique = list(dict.fromkeys(members))

        def work() -> list[str]:
            db = self.file.connect()
            new = []
            for member in unique:
                row = db.execute(
                    "SELECT seen_at FROM members WHERE key = ? AND member = ?", (key, member)
                ).fetchone()
                if row is None or float(row[0]) <= now - ttl:
                    new.append(member)
                if record:
                    db.execute(
                        "INSERT OR REPLACE INTO members (key, member, seen_at) VALUES (?, ?, ?)",
                        (key, member, now),
                    )
            if record:
                db.execute("DELETE FROM members WHERE key = ? AND seen_at <= ?", (key, now - ttl))
            return new

        return await self.file.run(lambda db: transaction(db, work))

    async def forget(self, keys: Sequence[str]) -> None:
        def work() -> None:
            db = self.file.connect()
            for key in keys:
                db.execute("DELETE FROM counters WHERE key = ?", (key,))
                db.execute("DELETE FROM members WHERE key = ?", (key,))

        await self.file.run(lambda db: transaction(db, work))

    async def close(self) -> None:
        await self.file.close()
