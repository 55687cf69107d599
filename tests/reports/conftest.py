"""Fixtures of the report tests: every store kind, the RFC 9990 schema, evaluations."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.postgres_server import postgres_database
from tests.testdata import require_testdata

from mailwarden.reports import PostgresStore, ReportStore, SQLiteStore

STORE_KINDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    with postgres_database() as dsn:
        yield dsn


@pytest.fixture(params=STORE_KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ReportStore]:
    """The same tests run against each store; PostgreSQL tables emptied for each test."""
    made: ReportStore
    if request.param == "sqlite":
        made = SQLiteStore(tmp_path / "reports.sqlite3")
    else:
        import psycopg

        dsn = request.getfixturevalue("postgres_dsn")
        made = PostgresStore(dsn)
        await made.ping()  # creates the tables
        with psycopg.connect(dsn, autocommit=True) as db:
            tables = db.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
            if tables:
                db.execute("TRUNCATE " + ", ".join(t[0] for t in tables))
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture(scope="session")
def schema() -> Any:
    """The RFC 9990 XSD (lxml): every report we produce must validate."""
    from lxml import etree

    path = require_testdata("dmarc-xsd", "dmarc-xml-0.2.xsd")
    return etree.XMLSchema(etree.parse(str(path)))


def validate(schema: Any, xml: bytes) -> None:
    from lxml import etree

    document = etree.fromstring(xml)
    assert schema.validate(document), schema.error_log.filter_from_errors()
