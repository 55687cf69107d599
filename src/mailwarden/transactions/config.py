"""The `[transactions]` section: the store of recent transactions the dashboard reads."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mailwarden.schema import InvalidSetting, setting

__all__ = ["Backend", "TransactionSettings"]


class Backend(StrEnum):
    """Where recent transactions are kept."""

    SQLITE = "sqlite"  # transactions.sqlite3 in the data directory (the default)
    POSTGRES = "postgres"  # `dsn`: several gateways writing to one place
    MEMORY = "memory"  # this process only, gone at restart
    NONE = "none"  # nothing kept (the dashboard shows no transactions)


def _dsn(text: object) -> str:
    if text == "":
        return ""
    if not isinstance(text, str) or not text.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"expected a postgresql:// URL, got {text!r}")
    return text


@dataclass(frozen=True, slots=True)
class TransactionSettings:
    """`[transactions]`: how many recent transactions are kept, for how long, and where."""

    backend: Backend = setting(Backend.SQLITE)
    keep_days: float = setting(7.0, above=0, max=400)  # older transactions are deleted
    max_rows: int = setting(200_000, min=100, max=100_000_000)  # the newest kept beyond that
    dsn: str = setting("", convert=_dsn)  # PostgreSQL, for backend = "postgres"

    def validate(self) -> None:
        if self.backend is Backend.POSTGRES and not self.dsn:
            raise InvalidSetting("dsn", 'backend = "postgres" needs a postgresql:// dsn')
