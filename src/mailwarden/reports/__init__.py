"""mailwarden.reports: DMARC reports, sent responsibly and read when received.

Recording: the pipeline turns each final verdict into an `Evaluation` and hands it to a
`Recorder`, which writes batches to a `ReportStore` in the background (`SQLiteStore` in the
data directory by default, `PostgresStore` when several gateways report as one).

Aggregate reports (RFC 9990) are built per Policy Domain and day from the store
(`aggregate.build_reports`), validated, gzipped and sent by the `Sender` through the
configured relay with every safeguard of the `[reports]` section; failure reports (RFC 9991)
come from incidents kept at recording time (`failure`). Reports others send us are read by
`incoming.read_reports` (XML plain, gzip or zip, bare or in a message; ARF failure reports)
and summarised (`summary`).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from .config import FailureSettings, Redaction, ReportSettings
from .evaluation import MAX_DKIM_RESULTS, Disposition, DKIMAuth, Evaluation, MessageKind
from .kind import message_kind
from .model import (
    AggregateReport,
    AuthResult,
    FailureReport,
    PolicyPublished,
    ReportKind,
    ReportRow,
)
from .postgres import PostgresStore
from .recorder import Recorder
from .sqlite import SQLiteStore
from .store import (
    Delivery,
    DeliveryStatus,
    DestinationState,
    ImportedRow,
    Incident,
    OutgoingReport,
    ReportStore,
    Reputation,
)

__all__ = [
    "MAX_DKIM_RESULTS",
    "STORE_FILE",
    "AggregateReport",
    "AuthResult",
    "DKIMAuth",
    "Delivery",
    "DeliveryStatus",
    "DestinationState",
    "Disposition",
    "Evaluation",
    "FailureReport",
    "FailureSettings",
    "ImportedRow",
    "Incident",
    "MessageKind",
    "OutgoingReport",
    "PolicyPublished",
    "PostgresStore",
    "Recorder",
    "Redaction",
    "ReportKind",
    "ReportRow",
    "ReportSettings",
    "ReportStore",
    "Reputation",
    "SQLiteStore",
    "message_kind",
    "open_store",
    "store_secret",
]

STORE_FILE = "reports.sqlite3"
SECRET_FILE = "reports.key"


def open_store(settings: ReportSettings, data_dir: str | Path) -> ReportStore:
    """The store the settings name: PostgreSQL when `postgres` is set, else SQLite in the
    data directory (created when missing; nothing is opened until first use)."""
    if settings.postgres:
        return PostgresStore(settings.postgres)
    return SQLiteStore(Path(data_dir) / STORE_FILE)


def store_secret(data_dir: str | Path) -> bytes:
    """The key that hashes redacted local parts (RFC 6590): made once, kept private in the
    data directory, so a repeated address gives the same hash across reports."""
    path = Path(data_dir) / SECRET_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as stream:
        stream.write(key.hex() + "\n")
    return key
