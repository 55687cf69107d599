"""mailwarden.pipeline: every check, built once from the settings, for every front end.

    pipeline = build(settings, resolver)
    verdict = await pipeline.check(message, ip=..., helo=..., mail_from=...)   # at once
    session = SessionChecks(pipeline, client_ip)                                # by stage

`build` is the one factory: the CLI's `check` and `analyze`, the gateway and every later front
end (milter, policy service, HTTP API, submission) get their checks from it, so the same
settings give the same verdict everywhere. `parse` reads a message once (fields, author, the
body hashes DKIM and ARC share); verdicts carry unfolded header values that only front ends
fold. Imports run one way: protocols, then policy, settings and this package, then front ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from mailwarden.dns import Resolver
from mailwarden.greylist import Greylister, GreylistStore, RedisStore, SQLiteStore
from mailwarden.reports import Recorder, ReportStore, open_store, store_secret
from mailwarden.settings import Settings
from mailwarden.transactions import TransactionRecorder, TransactionStore
from mailwarden.transactions import open_store as open_transaction_store

from .checks import Pipeline
from .forged import forged_fields
from .parsed import ParsedMessage, parse
from .resolver import build_resolver
from .results import ConnectionFacts, HeloFacts, MessageDecision, MessageVerdict
from .stages import SessionChecks, TransactionChecks

__all__ = [
    "ConnectionFacts",
    "HeloFacts",
    "MessageDecision",
    "MessageVerdict",
    "ParsedMessage",
    "Pipeline",
    "SessionChecks",
    "TransactionChecks",
    "build",
    "build_resolver",
    "forged_fields",
    "greylist_store",
    "parse",
]


def build(
    settings: Settings,
    resolver: Resolver | None = None,
    *,
    clock: Callable[[], float] = time.time,
    network_checks: bool = True,
    greylist: bool | GreylistStore = False,
    reports: bool | ReportStore = False,
    transactions: bool | TransactionStore = False,
) -> Pipeline:
    """The pipeline of `settings`. `resolver` defaults to the one `settings.dns` describes.
    `greylist` True opens the store the settings name (SQLite in the data directory, or
    Redis); a store uses that one; False (the default, for one-shot front ends such as the
    CLI) greylists nothing. `reports` alike: True records every final DMARC evaluation into
    the report store the settings name (when `reports.record` is on), for the long-running
    front ends. `transactions` alike: True keeps every transaction the stage objects answer
    in the store `[transactions]` names (SQLite in the data directory by default), written
    in batches off the SMTP path, for the dashboard. Raises ConfigError for settings that
    cannot be used."""
    if resolver is None:
        resolver = build_resolver(settings.dns, settings.source)
    greylister = None
    if greylist is not False and settings.greylist.enabled:
        store = greylist_store(settings) if greylist is True else greylist
        greylister = Greylister(store, config=settings.greylist.config, clock=clock)
    recorder = None
    if reports is not False and settings.reports.record:
        data_dir = settings.gateway.data_dir
        kept = open_store(settings.reports, data_dir) if reports is True else reports
        # the key hashing redacted local parts: only failure reports need it
        secret = store_secret(data_dir) if settings.reports.failure.enabled else b""
        recorder = Recorder(kept, settings.reports, secret=secret, clock=clock)
    kept_transactions = None
    if transactions is not False:
        tx_store = (
            open_transaction_store(settings.transactions, settings.gateway.data_dir)
            if transactions is True
            else transactions
        )
        if tx_store is not None:
            kept_transactions = TransactionRecorder(
                tx_store,
                keep_days=settings.transactions.keep_days,
                max_rows=settings.transactions.max_rows,
                clock=clock,
            )
    return Pipeline(
        settings,
        resolver,
        clock=clock,
        network_checks=network_checks,
        greylister=greylister,
        recorder=recorder,
        transactions=kept_transactions,
    )


def greylist_store(settings: Settings) -> GreylistStore:
    """The greylist store the settings name: Redis when `greylist.redis` is set, else SQLite
    in the data directory (created when missing)."""
    if settings.greylist.redis:
        return RedisStore.from_url(settings.greylist.redis)
    data_dir = Path(settings.gateway.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    return SQLiteStore(data_dir / "greylist.sqlite3")
