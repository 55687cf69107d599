"""CachingResolver: TTLs with floor and ceiling, negative caching, bounds, coalescing."""

from __future__ import annotations

import asyncio
import gc

import pytest

from mailwarden import runtime
from mailwarden.dns import (
    Answer,
    NoData,
    NXDomain,
    RdType,
    Resolver,
    StaticResolver,
    TemporaryFailure,
)
from mailwarden.dns.cache import CachingResolver, gather_lookups


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Counting:
    """A resolver that counts what reaches it, optionally after a pause."""

    def __init__(self, inner: StaticResolver, delay: float = 0.0) -> None:
        self.inner = inner
        self.delay = delay
        self.calls: list[tuple[str, RdType]] = []

    async def resolve(self, name: str, rdtype: RdType) -> Answer:
        self.calls.append((name, rdtype))
        if self.delay:
            await asyncio.sleep(self.delay)
        return await self.inner.resolve(name, rdtype)


def zone(ttl: int = 300) -> StaticResolver:
    static = StaticResolver(ttl=ttl)
    static.add("example.test", "A", "192.0.2.1")
    static.add("example.test", "TXT", "v=spf1 -all")
    static.add("sub.example.test", "A", "192.0.2.2")
    return static


async def test_answers_live_for_their_ttl() -> None:
    clock = Clock()
    inner = Counting(zone(ttl=300))
    cache = CachingResolver(inner, clock=clock)
    first = await cache.resolve("example.test", RdType.A)
    clock.now += 100
    second = await cache.resolve("EXAMPLE.test.", RdType.A)  # same key after normalising
    assert len(inner.calls) == 1
    assert first.ttl == 300
    assert second.ttl == 200  # what remains
    clock.now += 200
    await cache.resolve("example.test", RdType.A)
    assert len(inner.calls) == 2  # expired, asked again
    assert (cache.hits, cache.misses) == (1, 2)


async def test_ttl_floor_and_ceiling() -> None:
    clock = Clock()
    inner = Counting(zone(ttl=0))
    cache = CachingResolver(inner, clock=clock, min_ttl=30, max_ttl=60)
    await cache.resolve("example.test", RdType.A)
    clock.now += 29
    await cache.resolve("example.test", RdType.A)
    assert len(inner.calls) == 1  # a TTL of 0 is raised to the floor
    clock.now += 2
    await cache.resolve("example.test", RdType.A)
    assert len(inner.calls) == 2

    long_lived = Counting(zone(ttl=86_400))
    capped = CachingResolver(long_lived, clock=clock, max_ttl=60)
    await capped.resolve("example.test", RdType.A)
    clock.now += 61
    await capped.resolve("example.test", RdType.A)
    assert len(long_lived.calls) == 2  # a day is cut to the ceiling


async def test_negative_answers_are_cached() -> None:
    """RFC 2308: NXDOMAIN and NODATA are kept for their negative TTL, and keep their kind."""
    clock = Clock()
    inner = Counting(zone(ttl=120))
    cache = CachingResolver(inner, clock=clock, max_negative_ttl=100)
    for _ in range(3):
        with pytest.raises(NXDomain):
            await cache.resolve("missing.example.test", RdType.A)
        with pytest.raises(NoData):
            await cache.resolve("example.test", RdType.MX)
    assert len(inner.calls) == 2
    clock.now += 101  # the negative ceiling, below the TTL of 120
    with pytest.raises(NXDomain):
        await cache.resolve("missing.example.test", RdType.A)
    assert len(inner.calls) == 3


async def test_temporary_failures_are_not_cached() -> None:
    static = zone()
    static.fail("example.test", "A")
    inner = Counting(static)
    cache = CachingResolver(inner, clock=Clock())
    for _ in range(3):
        with pytest.raises(TemporaryFailure):
            await cache.resolve("example.test", RdType.A)
    assert len(inner.calls) == 3


async def test_bounded_size_drops_least_recently_used() -> None:
    inner = Counting(zone())
    cache = CachingResolver(inner, clock=Clock(), max_entries=2)
    await cache.resolve("example.test", RdType.A)
    await cache.resolve("sub.example.test", RdType.A)
    await cache.resolve("example.test", RdType.A)  # now the most recently used
    await cache.resolve("example.test", RdType.TXT)  # evicts sub.example.test
    assert len(cache) == 2
    await cache.resolve("example.test", RdType.A)
    assert len(inner.calls) == 3
    await cache.resolve("sub.example.test", RdType.A)
    assert len(inner.calls) == 4


async def test_identical_queries_in_flight_become_one() -> None:
    inner = Counting(zone(), delay=0.05)
    cache = CachingResolver(inner, clock=Clock())
    answers = await asyncio.gather(*(cache.resolve("example.test", RdType.A) for _ in range(20)))
    assert len(inner.calls) == 1
    assert cache.coalesced == 19
    assert {a.records for a in answers} == {answers[0].records}


async def test_coalesced_waiters_share_a_failure() -> None:
    static = zone()
    static.fail("example.test", "A", delay=0.05)
    inner = Counting(static)
    cache = CachingResolver(inner, clock=Clock())
    outcomes = await asyncio.gather(
        *(cache.resolve("example.test", RdType.A) for _ in range(5)), return_exceptions=True
    )
    assert len(inner.calls) == 1
    assert all(isinstance(o, TemporaryFailure) for o in outcomes)
    negative = await asyncio.gather(
        *(cache.resolve("nothing.example.test", RdType.A) for _ in range(3)),
        return_exceptions=True,
    )
    assert all(isinstance(o, NXDomain) for o in negative)


async def test_first_asker_cancelled_does_not_cancel_the_others() -> None:
    inner = Counting(zone(), delay=0.05)
    cache = CachingResolver(inner, clock=Clock())
    first = asyncio.create_task(cache.resolve("example.test", RdType.A))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(cache.resolve("example.test", RdType.A))
    await asyncio.sleep(0.01)
    first.cancel()
    answer = await second
    assert answer.addresses()
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_first_asker_closed_does_not_hand_its_waiters_a_generator_exit() -> None:
    """The first asker's coroutine closed while its query is out (dropped, never finished:
    Python throws GeneratorExit into it): the others ask again themselves and get the answer,
    never a GeneratorExit of somebody else's."""
    inner = Counting(zone(), delay=0.05)
    cache = CachingResolver(inner, clock=Clock())
    first = cache.resolve("example.test", RdType.A)
    first.send(None)  # asked: now waiting on the inner resolver
    second = asyncio.create_task(cache.resolve("example.test", RdType.A))
    await asyncio.sleep(0.01)  # joined the query in flight
    first.close()
    answer = await second
    assert answer.addresses()
    assert len(inner.calls) == 2  # asked again, by the one still waiting


async def test_an_eager_asker_cancelled_at_once_leaves_nothing_behind() -> None:
    """A check started in its caller's task (runtime.start) and cancelled before it ran on:
    the query it shared in flight is settled (the next asker is answered, not left waiting),
    and its own query's outcome, an NXDOMAIN, is not left unread for asyncio to log."""
    loop = asyncio.get_running_loop()
    logged: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: logged.append(context))
    inner = Counting(zone())
    cache = CachingResolver(inner, clock=Clock())
    task = runtime.start(cache.resolve("nothing.example.test", RdType.A))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(NXDomain):
        await asyncio.wait_for(cache.resolve("nothing.example.test", RdType.A), 1)
    for _ in range(3):
        await asyncio.sleep(0)
    gc.collect()
    assert logged == []


async def test_cached_lookups_gathered_need_no_task() -> None:
    """`gather_lookups`: answers all cached, no task is made and the loop never turns; a
    miss, a failure or another resolver goes through asyncio.gather, with its outcome."""
    inner = Counting(zone(), delay=0.01)
    cache = CachingResolver(inner)
    names = ["example.test", "sub.example.test"]

    async def address(resolver: Resolver, name: str) -> str:
        return str(next(iter((await resolver.resolve(name, RdType.A)).addresses())))

    assert await gather_lookups(cache, *(address(cache, n) for n in names)) == [
        "192.0.2.1",
        "192.0.2.2",
    ]  # two misses: waited for
    loop = asyncio.get_running_loop()
    made: list[object] = []
    factory = loop.get_task_factory()
    loop.set_task_factory(lambda lp, coro, **kw: made.append(coro) or asyncio.Task(coro, loop=lp))
    try:
        assert await gather_lookups(cache, *(address(cache, n) for n in names)) == [
            "192.0.2.1",
            "192.0.2.2",
        ]
        assert made == []  # cached: no task
        with pytest.raises(NXDomain):
            await gather_lookups(cache, address(cache, "none.example.test"))
        plain = Counting(zone())
        assert await gather_lookups(plain, address(plain, "example.test")) == ["192.0.2.1"]
        assert made  # not a cache: asyncio.gather's tasks
    finally:
        loop.set_task_factory(factory)
    assert len(inner.calls) == 3
