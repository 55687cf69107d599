"""The shared report store: PostgreSQL, so several gateways record into one place and report
as one receiver (one report per domain and day, whichever gateway saw the mail)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .sql import Connection, Dialect, SQLStore

if TYPE_CHECKING:  # imported when a PostgreSQL store is opened: start-up time
    import psycopg

__all__ = ["PostgresStore"]

T = TypeVar("T")

POSTGRES = Dialect(
    serial="BIGSERIAL PRIMARY KEY",
    real="DOUBLE PRECISION",
    int="BIGINT",
    bigint="BIGINT",
    blob="BYTEA",
    placeholder="%s",
)


class PostgresStore(SQLStore):
    """Reports in the PostgreSQL database at `dsn` (tables created when missing)."""

    dialect = POSTGRES

    def __init__(self, dsn: str, *, connect_timeout: int = 10) -> None:
        super().__init__("reports-postgres")
        self.dsn = dsn
        self.connect_timeout = connect_timeout

    def _open(self) -> Connection:
        import psycopg

        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=self.connect_timeout)

    def _create_tables(self, db: Connection) -> None:
        with self._pg_of(db).transaction():  # gateways starting together create them once
            db.execute("SELECT pg_advisory_xact_lock(1717990)")
            super()._create_tables(db)

    @staticmethod
    def _pg_of(db: Connection) -> psycopg.Connection[Any]:
        import psycopg

        assert isinstance(db, psycopg.Connection)
        return db

    def _pg(self) -> psycopg.Connection[Any]:
        assert self._db is not None
        return self._pg_of(self._db)

    def _transaction(self, work: Callable[[], T]) -> T:
        with self._pg().transaction():
            return work()

    def _insert_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._pg().cursor() as cursor:
            cursor.executemany(self.dialect.sql(sql), rows)
