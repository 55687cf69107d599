"""The store contract, one suite for memory, SQLite and Redis."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mailwarden.greylist import (
    AllowEntry,
    Attempt,
    AttemptResult,
    Entry,
    GreylistConfig,
    GreylistStore,
    NetworkEntry,
    RedisStore,
    SQLiteStore,
    TripletField,
    TripletKey,
)

NOW = 1_700_000_000.0
CONFIG = GreylistConfig()
A = TripletKey("net:192.0.2.0/24", "a@example.com", "b@example.net")
B = TripletKey("spf:example.org", "c@example.org", "d@example.net")
C = TripletKey("net:192.0.2.0/24", "e@other.example", "b@example.net")
NET = "net:192.0.2.0/24"
PROBE = TripletKey("probe", "p@probe.example", "p@probe.example")


async def touch(
    store: GreylistStore, key: TripletKey, now: float, config: GreylistConfig = CONFIG
) -> tuple[Entry | None, Entry]:
    result = await store.attempt(Attempt(key, NET, ()), now, config)
    assert result.allowed is None
    assert result.new is not None
    return result.old, result.new


async def passes(store: GreylistStore, network: str, now: float) -> int:
    """The live pass count of `network`, as the auto-allow check sees it."""
    probe = GreylistConfig(auto_allow_after=1)
    result = await store.attempt(Attempt(PROBE, network, ()), now, probe)
    if result.new is not None:  # not auto-allowed: the count is below one; undo the probe
        await store.forget_triplets(TripletField.ORIGIN, PROBE.origin)
    return result.passes


async def test_update_returns_old_and_new(store: GreylistStore) -> None:
    old, new = await touch(store, A, NOW)
    assert old is None
    assert new == Entry(A, NOW, NOW, 1, None, NOW + CONFIG.retry_window)
    old2, new2 = await touch(store, A, NOW + 10)
    assert old2 == new
    assert (new2.attempts, new2.first_seen, new2.last_seen) == (2, NOW, NOW + 10)
    _, passed = await touch(store, A, NOW + 400)
    assert passed.passed_at == NOW + 400
    assert passed.expires_at == NOW + 400 + CONFIG.pass_ttl


async def test_expired_entries_are_absent(store: GreylistStore) -> None:
    await touch(store, A, NOW)
    old, new = await touch(store, A, NOW + CONFIG.retry_window + 1)
    assert old is None
    assert new.attempts == 1
    assert await store.entries(NOW + CONFIG.retry_window * 3) == []


async def test_entries_lists_live_triplets_newest_first(store: GreylistStore) -> None:
    await touch(store, A, NOW)
    await touch(store, B, NOW + 1)
    await touch(store, C, NOW + 2)
    listed = await store.entries(NOW + 3)
    assert [e.key for e in listed] == [C, B, A]
    assert [e.key for e in await store.entries(NOW + 3, limit=2)] == [C, B]


async def test_forget_triplets_by_each_field(store: GreylistStore) -> None:
    for key in (A, B, C):
        await touch(store, key, NOW)
    assert await store.forget_triplets(TripletField.SENDER_DOMAIN, "example.org") == 1
    assert await store.forget_triplets(TripletField.RECIPIENT, "nobody@example.net") == 0
    assert await store.forget_triplets(TripletField.SENDER, "a@example.com") == 1
    assert [e.key for e in await store.entries(NOW)] == [C]
    assert await store.forget_triplets(TripletField.ORIGIN, "net:192.0.2.0/24") == 1
    assert await store.entries(NOW) == []


async def test_pass_counters_and_auto_allow(store: GreylistStore) -> None:
    config = GreylistConfig(auto_allow_after=3)
    keys = [TripletKey(NET, f"s{c}@example.com", "r@example.net") for c in "abcd"]
    for key in keys:
        await touch(store, key, NOW, config)
    for i, key in enumerate(keys[:3]):
        _, new = await touch(store, key, NOW + 400 + i, config)
        assert new.passed
    assert await store.networks(NOW + 500) == [NetworkEntry(NET, 3, NOW + 402 + CONFIG.pass_ttl)]
    # Three passes: the fourth triplet is not even looked at.
    result = await store.attempt(Attempt(keys[3], NET, ()), NOW + 500, config)
    assert (result.allowed, result.passes, result.old, result.new) == (None, 3, None, None)
    assert await passes(store, NET, NOW + 500) == 3
    # The counter expires pass_ttl after the last pass, and then restarts.
    later = NOW + 402 + CONFIG.pass_ttl + 1
    assert await passes(store, NET, later) == 0
    assert await store.forget_network(NET)
    assert not await store.forget_network(NET)


async def test_allow_entries(store: GreylistStore) -> None:
    forever = AllowEntry("net:203.0.113.0/24", NOW, None, "relay")
    brief = AllowEntry("domain:example.com", NOW, NOW + 60, "")
    await store.allow(forever)
    await store.allow(brief)
    targets = ("net:203.0.113.9/32", "domain:example.com", "net:203.0.113.0/24")
    attempt = Attempt(A, NET, targets)
    found = await store.attempt(attempt, NOW + 1, CONFIG)
    assert found == AttemptResult(allowed=brief)  # the first match in the order asked
    found = await store.attempt(attempt, NOW + 61, CONFIG)
    assert found == AttemptResult(allowed=forever)
    assert await store.entries(NOW + 61) == []  # allowed attempts leave no triplet
    assert await store.allowed(NOW + 1) == [brief, forever]
    assert await store.allowed(NOW + 61) == [forever]
    assert await store.forget_allow("net:203.0.113.0/24")
    result = await store.attempt(attempt, NOW + 61, CONFIG)
    assert result.allowed is None
    assert result.new is not None


async def test_purge(store: GreylistStore) -> None:
    await touch(store, A, NOW)
    await touch(store, A, NOW + 400)  # passed: a network counter too
    await store.allow(AllowEntry("domain:x.example", NOW, NOW + 10))
    await store.allow(AllowEntry("domain:y.example", NOW, None))
    later = NOW + 400 + CONFIG.pass_ttl + 1
    purged = await store.purge(later)
    if isinstance(store, RedisStore):
        assert purged == 0  # Redis expires by TTL itself
    else:
        assert purged == 3
    assert await store.entries(later) == []
    assert [a.target for a in await store.allowed(later)] == ["domain:y.example"]


async def test_concurrent_updates_are_not_lost(store: GreylistStore) -> None:
    await asyncio.gather(*(touch(store, A, NOW + i / 1000) for i in range(40)))
    (entry,) = await store.entries(NOW + 1)
    assert entry.attempts == 40
    keys = [TripletKey(NET, f"u{c}@example.com", "r@example.net") for c in "abcdefghij"]
    for key in keys:
        await touch(store, key, NOW, GreylistConfig(auto_allow_after=0))
    results = await asyncio.gather(
        *(touch(store, key, NOW + 400, GreylistConfig(auto_allow_after=0)) for key in keys)
    )
    assert all(new.passed for _, new in results)
    assert [n.passes for n in await store.networks(NOW + 400)] == [10]


async def test_two_redis_clients_share_one_view(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    first = RedisStore.from_url(redis_url, prefix=prefix)
    second = RedisStore.from_url(redis_url, prefix=prefix)
    try:
        await asyncio.gather(
            *(touch(first if i % 2 else second, A, NOW + i / 1000) for i in range(30))
        )
        (entry,) = await second.entries(NOW + 1)
        assert entry.attempts == 30
        ttl = await first.redis.ttl(first._triplet_key(A))
        assert 0 < ttl <= CONFIG.retry_window + 1  # Redis forgets it by itself
    finally:
        await first.close()
        await second.close()


def test_sqlite_is_safe_for_several_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite3")
    root = Path(__file__).resolve().parents[2]

    async def prepare() -> None:
        # The shared triplet has passed already, so each worker attempt is one more pass.
        store = SQLiteStore(path)
        shared = Attempt(A, "net:other", ())
        await store.attempt(shared, NOW - 10, GreylistConfig(min_delay=0.5, auto_allow_after=0))
        await store.attempt(shared, NOW - 5, GreylistConfig(min_delay=0.5, auto_allow_after=0))
        await store.close()

    asyncio.run(prepare())
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.greylist.sqlite_worker", path, str(w), "40"], cwd=root
        )
        for w in range(4)
    ]
    assert [p.wait(timeout=60) for p in workers] == [0, 0, 0, 0]

    async def check() -> None:
        store = SQLiteStore(path)
        entries = {e.key.origin: e for e in await store.entries(NOW)}
        assert entries["net:192.0.2.0/24"].attempts == 162  # the one shared triplet
        counters = [(n.network, n.passes) for n in await store.networks(NOW)]
        assert counters == [("net:other", 161), ("net:shared", 80)]  # no update lost
        await store.close()

    asyncio.run(check())


async def test_sqlite_uses_wal(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "g.sqlite3")
    await touch(store, A, NOW)
    mode = await store.file.run(lambda db: db.execute("PRAGMA journal_mode").fetchone()[0])
    timeout = await store.file.run(lambda db: db.execute("PRAGMA busy_timeout").fetchone()[0])
    await store.close()
    assert mode == "wal"
    assert timeout >= 1000


@pytest.mark.parametrize("expires", [math.inf, -math.inf, math.nan, 1e300])
async def test_allow_with_a_time_that_is_not_a_time_is_refused(
    store: GreylistStore, expires: float
) -> None:
    """Validated before writing: `greylist allow --days inf` once stored an infinite expiry
    that broke every later listing."""
    with pytest.raises(ValueError, match="is not a time"):
        await store.allow(AllowEntry("net:192.0.2.1/32", NOW, expires, ""))
    with pytest.raises(ValueError, match="is not a time"):
        await store.allow(AllowEntry("net:192.0.2.2/32", expires, None, ""))
    assert await store.allowed(NOW) == []


def _write_sqlite_rows(path: Path) -> None:
    """Rows an older version (an infinite expiry) or a person (text) may have left."""
    db = sqlite3.connect(path)
    db.executescript(
        "INSERT INTO allowed VALUES ('net:192.0.2.1/32', 1700000000.0, 9e999, 'inf');"
        "INSERT INTO allowed VALUES ('net:192.0.2.2/32', 'yesterday', 'soon', '');"
        "INSERT INTO triplets VALUES ('net:192.0.2.0/24', 'a@example.com', 'b@example.net',"
        " 'x', 1700000000.0, 'many', NULL, 9e999);"
        "INSERT INTO networks VALUES ('net:192.0.2.0/24', 'lots', 'later');"
    )
    db.commit()
    db.close()


async def _write_redis_rows(store: RedisStore) -> None:
    prefix = store.prefix
    await store.redis.set(
        f"{prefix}a:net:192.0.2.1/32",
        '{"target": "net:192.0.2.1/32", "added_at": 1700000000.0, "expires_at": Infinity, '
        '"note": "inf"}',
    )
    await store.redis.set(f"{prefix}a:net:192.0.2.2/32", "not json at all")
    await store.redis.hset(
        f"{prefix}t:net:192.0.2.0/24|a@example.com|b@example.net",
        mapping={"origin": "net:192.0.2.0/24", "sender": "a@example.com", "first": "x",
                 "last": "1700000000.0", "attempts": "many", "passed": "", "expires": "inf"},
    )  # fmt: skip
    await store.redis.hset(
        f"{prefix}n:net:192.0.2.0/24", mapping={"passes": "lots", "expires": "?"}
    )


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_bad_rows_are_listed_never_fatal(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A store holding rows whose times or counts are not numbers still lists them (NaN, -1,
    flagged by the command line) instead of failing the whole listing."""
    store: GreylistStore
    if kind == "sqlite":
        store = SQLiteStore(tmp_path / "g.sqlite3")
        await store.allowed(NOW)  # creates the tables
        _write_sqlite_rows(tmp_path / "g.sqlite3")
    else:
        redis_store = RedisStore.from_url(
            request.getfixturevalue("redis_url"), prefix=f"test:{uuid.uuid4().hex}:"
        )
        await _write_redis_rows(redis_store)
        store = redis_store
    try:
        allowed = {a.target: a for a in await store.allowed(NOW)}
        assert allowed["net:192.0.2.1/32"].expires_at == math.inf
        assert math.isnan(allowed["net:192.0.2.2/32"].added_at)
        [entry] = await store.entries(NOW)
        assert entry.key.sender == "a@example.com"
        assert math.isnan(entry.first_seen)
        assert entry.attempts == -1
        [network] = await store.networks(NOW)
        assert network.passes == -1
        assert math.isnan(network.expires_at)
    finally:
        await store.close()


async def test_sqlite_decides_afresh_on_an_unreadable_triplet(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "g.sqlite3")
    await store.allowed(NOW)
    _write_sqlite_rows(tmp_path / "g.sqlite3")
    key = TripletKey("net:192.0.2.0/24", "a@example.com", "b@example.net")
    try:
        result = await store.attempt(Attempt(key, "net:198.51.100.0/24", ()), NOW, CONFIG)
        assert result.old is None  # the unreadable row is replaced by a first attempt
        assert result.new is not None
        assert result.new.attempts == 1
    finally:
        await store.close()
