"""One SQLite file shared by processes, for the stores that keep state on disk.

WAL journaling and a busy timeout (another process's write is waited for, not failed on);
read-modify-write inside BEGIN IMMEDIATE (the write lock taken before reading, so two
processes updating one row see each other); every call on the file's own worker thread, never
on the event loop. The greylist and rate-limit stores (and any later one) are built on it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

__all__ = ["SQLiteFile", "transaction"]

T = TypeVar("T")


def transaction(db: sqlite3.Connection, work: Callable[[], T]) -> T:
    """`work` inside BEGIN IMMEDIATE: committed when it returns, rolled back when it raises."""
    db.execute("BEGIN IMMEDIATE")  # take the write lock before reading
    try:
        result = work()
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return result


class SQLiteFile:
    """The SQLite file at `path`, created with `schema` (a script) on first use."""

    def __init__(
        self, path: str | Path, schema: str, *, busy_timeout: float = 10.0, name: str = "sqlite"
    ) -> None:
        self.path = Path(path)
        self.schema = schema
        self.busy_timeout = busy_timeout
        self.name = name
        self._executor: ThreadPoolExecutor | None = None  # made on first use, again after close
        self._db: sqlite3.Connection | None = None

    def connect(self) -> sqlite3.Connection:
        """The connection (on the worker thread: call it inside `run`)."""
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; safe with WAL
            db.executescript(self.schema)
            self._db = db
        return self._db

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(connection)` on the file's worker thread."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: work(self.connect()))

    async def close(self) -> None:
        """Close the connection and stop the worker thread (the file stays)."""

        def work() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        executor, self._executor = self._executor, None
        if executor is None:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(executor, work)
        executor.shutdown(wait=True)
