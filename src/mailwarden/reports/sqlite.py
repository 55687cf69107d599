"""The embedded report store: one SQLite file in the data directory (WAL, so the gateway,
`report send` and `report import` may use it at once)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .sql import Connection, Dialect, SQLStore

__all__ = ["SQLiteStore"]

T = TypeVar("T")

SQLITE = Dialect(
    serial="INTEGER PRIMARY KEY", real="REAL", int="INTEGER", bigint="INTEGER", blob="BLOB"
)


class SQLiteStore(SQLStore):
    """Reports in the SQLite file at `path` (":memory:" for a private, in-memory store)."""

    dialect = SQLITE

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0) -> None:
        super().__init__("reports-sqlite")
        self.path = path if path == ":memory:" else Path(path)
        self.busy_timeout = busy_timeout

    def _open(self) -> Connection:
        if isinstance(self.path, Path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        return db

    def _sqlite(self) -> sqlite3.Connection:
        assert isinstance(self._db, sqlite3.Connection)
        return self._db

    def _transaction(self, work: Callable[[], T]) -> T:
        db = self._sqlite()
        db.execute("BEGIN IMMEDIATE")  # the write lock before reading
        try:
            result = work()
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    def _insert_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._sqlite().executemany(self.dialect.sql(sql), rows)
