"""`[transactions]`: read like every section, errors naming the key."""

from __future__ import annotations

import pytest

from mailwarden.settings import ConfigError, settings_from_mapping
from mailwarden.transactions import Backend, TransactionSettings


def test_defaults() -> None:
    assert settings_from_mapping({}).transactions == TransactionSettings(
        Backend.SQLITE, 7.0, 200_000, ""
    )


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"backend": "mysql"}, "transactions.backend"),
        ({"backend": "postgres"}, "transactions.dsn"),
        ({"backend": "postgres", "dsn": "mysql://x"}, "transactions.dsn"),
        ({"keep_days": 0}, "transactions.keep_days"),
        ({"keep_days": float("nan")}, "transactions.keep_days"),
        ({"max_rows": 10}, "transactions.max_rows"),
        ({"max_rows": "many"}, "transactions.max_rows"),
        ({"colour": "red"}, "transactions.colour"),
    ],
)
def test_bad_values_name_the_key(table: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({"transactions": table})
    assert key in str(caught.value)


def test_postgres_with_a_dsn() -> None:
    read = settings_from_mapping(
        {"transactions": {"backend": "postgres", "dsn": "postgresql://u@db.example/mw"}}
    )
    assert read.transactions.backend is Backend.POSTGRES
