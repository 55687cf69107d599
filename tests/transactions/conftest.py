"""One test suite for every transaction store: memory, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.postgres_server import postgres_database

from mailwarden.transactions import MemoryStore, PostgresStore, SQLiteStore, TransactionStore


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    with postgres_database() as dsn:
        yield dsn


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TransactionStore]:
    made: TransactionStore
    if request.param == "memory":
        made = MemoryStore()
    elif request.param == "sqlite":
        made = SQLiteStore(tmp_path / "transactions.sqlite3")
    else:
        import psycopg

        dsn = request.getfixturevalue("postgres_dsn")
        made = PostgresStore(dsn)
        await made.count()  # makes the tables
        with psycopg.connect(dsn, autocommit=True) as db:
            db.execute("TRUNCATE mw_transactions, mw_transaction_symbols")
    try:
        yield made
    finally:
        await made.close()
