"""An in-process DNS cache in front of any resolver.

It keeps answers for their TTL (clamped to a floor and a ceiling), keeps NXDOMAIN and NODATA
for their negative TTL (RFC 2308 §5), never keeps temporary failures, holds at most
`max_entries` names (least recently used go first), and turns identical queries in flight into
one query whose outcome every caller gets.

Every look-up is counted (`mailwarden_dns_cache_total`: hit, miss, coalesced) and every query
sent is counted and timed by outcome (`mailwarden_dns_queries_total`, `..._query_seconds`), so
every front end's DNS shows in the metrics without code of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from mailwarden import metrics
from mailwarden.runtime import running_eagerly, start

from .names import normalize
from .types import Answer, DNSError, NoData, NXDomain, RdType, Resolver, TemporaryFailure

_Key = tuple[str, RdType]
T = TypeVar("T")


async def gather_lookups(resolver: Resolver, *works: Awaitable[T]) -> list[T]:
    """`asyncio.gather(*works)` for look-ups through `resolver`. Behind a `CachingResolver`,
    each starts at once (`runtime.start`; the cache gives a query of its own task): when every
    answer is cached, no task and no turn of the loop. Any other resolver: asyncio.gather."""
    if not isinstance(resolver, CachingResolver):
        return list(await asyncio.gather(*works))
    started = [start(work) for work in works]
    if all(f.done() and not f.cancelled() and f.exception() is None for f in started):
        return [f.result() for f in started]
    return list(await asyncio.gather(*started))  # a wait, a failure: as gather does


class CachingResolver:
    """Resolver wrapper with a TTL cache and in-flight query coalescing."""

    def __init__(
        self,
        inner: Resolver,
        *,
        max_entries: int = 10_000,
        min_ttl: int = 5,
        max_ttl: int = 86_400,
        max_negative_ttl: int = 3_600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.max_entries = max_entries
        self.min_ttl = min_ttl
        self.max_ttl = max_ttl
        self.max_negative_ttl = max_negative_ttl
        self.clock = clock
        self._entries: OrderedDict[_Key, tuple[float, Answer | DNSError]] = OrderedDict()
        self._in_flight: dict[_Key, asyncio.Future[Answer]] = {}
        self.hits = 0
        self.misses = 0
        self.coalesced = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def resolve(self, name: str, rdtype: RdType) -> Answer:
        """A cached outcome while it lives (the Answer's ttl is what remains), else a query."""
        key = (normalize(name), rdtype)
        cached = self._lookup(key)
        if cached is not None:
            self.hits += 1
            metrics.dns_cache("hit")
            expires, outcome = cached
            if isinstance(outcome, DNSError):
                raise type(outcome)(outcome.name, outcome.rdtype, outcome.detail, outcome.ttl)
            remaining = max(0, int(expires - self.clock()))
            return Answer(outcome.name, outcome.rdtype, outcome.records, remaining)
        pending = self._in_flight.get(key)
        if pending is not None:
            self.coalesced += 1
            metrics.dns_cache("coalesced")
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if pending.cancelled() and task is not None and not task.cancelling():
                    return await self.resolve(name, rdtype)  # the first asker gave up, not us
                raise
        self.misses += 1
        metrics.dns_cache("miss")
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        started = time.perf_counter()
        try:
            if running_eagerly():  # in a caller's task: the inner resolver gets its own
                answer = await _own_task(self.inner.resolve(name, rdtype))
            else:
                answer = await self.inner.resolve(name, rdtype)
        except (NXDomain, NoData) as exc:
            metrics.dns_query(rdtype, _outcome(exc), time.perf_counter() - started)
            self._store(key, exc, self._clamp(exc.ttl, self.max_negative_ttl))
            self._settle(key, future, exc)
            raise
        except BaseException as exc:  # temporary failures and cancellation are not cached
            # a query its asker stopped waiting for (a stage's deadline) is `abandoned`
            failed = _outcome(exc) if isinstance(exc, DNSError) else "abandoned"
            metrics.dns_query(rdtype, failed, time.perf_counter() - started)
            self._settle(key, future, exc)
            raise
        metrics.dns_query(rdtype, "answer", time.perf_counter() - started)
        self._store(key, answer, self._clamp(answer.ttl, self.max_ttl))
        self._settle(key, future, answer)
        return answer

    def _lookup(self, key: _Key) -> tuple[float, Answer | DNSError] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def _clamp(self, ttl: int, ceiling: int) -> int:
        return max(self.min_ttl, min(ttl, ceiling))

    def _store(self, key: _Key, outcome: Answer | DNSError, ttl: int) -> None:
        self._entries[key] = (self.clock() + ttl, outcome)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def _settle(self, key: _Key, future: asyncio.Future[Answer], outcome: object) -> None:
        """Hand the outcome to coalesced waiters; nobody waiting means nothing is logged."""
        self._in_flight.pop(key, None)
        if future.done():
            return
        if isinstance(outcome, Answer):
            future.set_result(outcome)
        elif isinstance(outcome, asyncio.CancelledError | GeneratorExit):
            # the asker gave up (cancelled) or its coroutine was closed unfinished: the
            # waiters ask again themselves, none is handed the other's exit
            future.cancel()
        elif isinstance(outcome, BaseException):
            future.set_exception(outcome)
            future.exception()  # mark retrieved: waiters re-raise it themselves


async def _own_task(query: Coroutine[Any, Any, Answer]) -> Answer:
    """`query` in a task of its own, which goes with its asker: an asker that gives up (its
    task cancelled, or its coroutine closed unfinished) cancels it, or reads its outcome
    when it had just ended (asyncio would log an unread NXDOMAIN as an error)."""
    task = asyncio.ensure_future(query)
    try:
        return await task
    except BaseException:
        if not task.done():
            task.cancel()
        elif not task.cancelled():
            task.exception()
        raise


def _outcome(error: DNSError) -> str:
    """The metrics' word for a query that got no answer."""
    if isinstance(error, NXDomain):
        return "nxdomain"
    if isinstance(error, NoData):
        return "nodata"
    if isinstance(error, TemporaryFailure) and "timeout" in error.detail.lower():
        return "timeout"
    return "error"
