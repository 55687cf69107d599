"""Fixtures of the counter store tests: every store kind, a private Redis server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.greylist.redis_server import redis_server

from mailwarden.ratelimit import (
    CounterStore,
    MemoryCounterStore,
    RedisCounterStore,
    SQLiteCounterStore,
)

STORE_KINDS = ["memory", "sqlite", "redis"]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


async def open_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> CounterStore:
    if kind == "memory":
        return MemoryCounterStore()
    if kind == "sqlite":
        return SQLiteCounterStore(tmp_path / "counters.sqlite3")
    url = request.getfixturevalue("redis_url")
    return RedisCounterStore.from_url(url, prefix=f"test:{uuid.uuid4().hex}:")


@pytest.fixture(params=STORE_KINDS)
async def counters(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CounterStore]:
    """The same tests run against each store."""
    made = await open_store(request.param, request, tmp_path)
    try:
        yield made
    finally:
        await made.close()
