"""Fixtures of the greylist tests: a private Redis server and every store kind."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.greylist.redis_server import redis_server

from mailwarden.greylist import GreylistStore, MemoryStore, RedisStore, SQLiteStore


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


STORE_KINDS = ["memory", "sqlite", "redis"]


@pytest.fixture(params=STORE_KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[GreylistStore]:
    """The same tests run against each store."""
    made: GreylistStore
    if request.param == "memory":
        made = MemoryStore()
    elif request.param == "sqlite":
        made = SQLiteStore(tmp_path / "greylist.sqlite3")
    else:
        url = request.getfixturevalue("redis_url")
        made = RedisStore.from_url(url, prefix=f"test:{uuid.uuid4().hex}:")
    try:
        yield made
    finally:
        await made.close()
