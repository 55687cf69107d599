"""The store of recent transactions: one interface, in memory, SQLite and PostgreSQL.

Every store keeps records for `keep_days` and at most `max_rows` of them (`prune`), looks one
up by queue id or Message-ID, and sums a window of time for the dashboard (`summary`). They
pass one shared test suite (tests/transactions/test_store.py).
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from typing import Protocol

from .model import DomainCount, Summary, TransactionRecord, normalize_key

__all__ = ["MemoryStore", "TransactionStore", "summarize"]

TOP = 10


class TransactionStore(Protocol):
    """Where recent transactions are kept."""

    async def add(self, records: list[TransactionRecord]) -> None:
        """Keep `records` (a batch: stores write it in one transaction)."""
        ...

    async def lookup(self, key: str) -> TransactionRecord | None:
        """The newest transaction whose queue id or Message-ID is `key`."""
        ...

    async def summary(
        self, since: float, until: float, bucket: float, *, top: int = TOP
    ) -> Summary: ...

    async def prune(self, now: float, keep_days: float, max_rows: int) -> int:
        """Delete transactions older than `keep_days` and all but the newest `max_rows`;
        how many were deleted."""
        ...

    async def count(self) -> int: ...

    async def close(self) -> None: ...


def _top(counter: Counter[str], top: int) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:top]


def summarize(
    records: list[TransactionRecord], since: float, until: float, bucket: float, top: int = TOP
) -> Summary:
    """The summary of `records` (any order) over [since, until): the memory store's, and the
    reference the SQL stores are tested against."""
    timeline: dict[int, dict[str, int]] = defaultdict(dict)
    actions: Counter[str] = Counter()
    symbols: Counter[str] = Counter()
    domains: Counter[str] = Counter()
    passed: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    greylist: Counter[str] = Counter()
    timed_out = total = 0
    for r in records:
        if not since <= r.time < until:
            continue
        total += 1
        index = int((r.time - since) // bucket)
        timeline[index][r.action] = timeline[index].get(r.action, 0) + 1
        actions[r.action] += 1
        symbols.update(r.symbols)
        if r.sender_domain:
            domains[r.sender_domain] += 1
            passed[r.sender_domain] += r.dmarc == "pass"
        if r.reply_code >= 500:
            refused[r.client_ip] += 1
        if r.greylist:
            greylist[r.greylist] += 1
        timed_out += bool(r.timed_out)
    return Summary(
        since=since,
        until=until,
        bucket=bucket,
        timeline=dict(timeline),
        actions=dict(actions),
        total=total,
        symbols=_top(symbols, top),
        domains=[DomainCount(d, n, passed[d]) for d, n in _top(domains, top)],
        refused_clients=_top(refused, top),
        greylist={"deferred": greylist["deferred"], "passed": greylist["passed"]},
        timed_out=timed_out,
    )


class MemoryStore:
    """Transactions in this process's memory, oldest first (tests; `backend = "memory"`)."""

    def __init__(self) -> None:
        self._records: list[TransactionRecord] = []
        self._times: list[float] = []

    async def add(self, records: list[TransactionRecord]) -> None:
        for record in records:
            record = record.bounded()
            at = bisect.bisect_right(self._times, record.time)
            self._times.insert(at, record.time)
            self._records.insert(at, record)

    async def lookup(self, key: str) -> TransactionRecord | None:
        key = normalize_key(key)
        if not key:
            return None
        for record in reversed(self._records):
            if key in (record.queue_id, record.message_id):
                return record
        return None

    async def summary(
        self, since: float, until: float, bucket: float, *, top: int = TOP
    ) -> Summary:
        start = bisect.bisect_left(self._times, since)
        return summarize(self._records[start:], since, until, bucket, top)

    async def prune(self, now: float, keep_days: float, max_rows: int) -> int:
        cut = bisect.bisect_left(self._times, now - keep_days * 86400)
        cut = max(cut, len(self._records) - max_rows)
        del self._records[:cut], self._times[:cut]
        return max(cut, 0)

    async def count(self) -> int:
        return len(self._records)

    async def close(self) -> None:
        pass
