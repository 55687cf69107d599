"""mailwarden.transactions: the store of recent transactions the dashboard reads.

    store = open_store(settings.transactions, data_dir)   # SQLite, PostgreSQL or memory
    recorder = TransactionRecorder(store)                 # queued, written in batches
    recorder.record(TransactionRecord(...))

The pipeline records every transaction of the long-running front ends through it (see
`mailwarden.pipeline.build(..., transactions=True)`); the dashboard reads `summary` and
`lookup`. Bounded by age and size (`keep_days`, `max_rows`).
"""

from __future__ import annotations

from pathlib import Path

from .config import Backend, TransactionSettings
from .model import Check, DomainCount, Summary, TransactionRecord, normalize_key
from .recorder import TransactionRecorder
from .sql import PostgresStore, SQLiteStore
from .store import MemoryStore, TransactionStore, summarize

__all__ = [
    "Backend",
    "Check",
    "DomainCount",
    "MemoryStore",
    "PostgresStore",
    "SQLiteStore",
    "Summary",
    "TransactionRecord",
    "TransactionRecorder",
    "TransactionSettings",
    "TransactionStore",
    "normalize_key",
    "open_store",
    "summarize",
]


def open_store(settings: TransactionSettings, data_dir: str | Path) -> TransactionStore | None:
    """The store the settings name, or None for `backend = "none"`."""
    if settings.backend is Backend.NONE:
        return None
    if settings.backend is Backend.MEMORY:
        return MemoryStore()
    if settings.backend is Backend.POSTGRES:
        return PostgresStore(settings.dsn)
    return SQLiteStore(Path(data_dir) / "transactions.sqlite3")
