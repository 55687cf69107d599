"""Counters in one SQLite file (the default, in the data directory), shared by processes.

As the greylist's store: WAL journaling, a busy timeout, read-modify-write inside BEGIN
IMMEDIATE so two processes charging one counter see each other, and the blocking calls on one
worker thread per store, never on the event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

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
        self.busy_timeout = busy_timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="counters-sqlite")
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.executescript(SCHEMA)
            self._db = db
        return self._db

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: work(self._connect()))

    @staticmethod
    def _transaction(db: sqlite3.Connection, work: Callable[[], T]) -> T:
        db.execute("BEGIN IMMEDIATE")  # take the write lock before reading
        try:
            result = work()
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

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
            db = self._connect()
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

        return await self._run(lambda db: self._transaction(db, work))

    async def count(self, key: str, window: Window, now: float) -> int:
        return await self._run(lambda db: self._count(db, key, window, now))

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

        return await self._run(work)

    async def mark(
        self, key: str, members: Sequence[str], now: float, ttl: float, *, record: bool = True
    ) -> list[str]:
        unique = list(dict.fromkeys(members))

        def work() -> list[str]:
            db = self._connect()
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

        return await self._run(lambda db: self._transaction(db, work))

    async def forget(self, keys: Sequence[str]) -> None:
        def work() -> None:
            db = self._connect()
            for key in keys:
                db.execute("DELETE FROM counters WHERE key = ?", (key,))
                db.execute("DELETE FROM members WHERE key = ?", (key,))

        await self._run(lambda db: self._transaction(db, work))

    async def close(self) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.close()

        if self._db is not None:
            await self._run(work)
            self._db = None
        self._executor.shutdown(wait=True)
