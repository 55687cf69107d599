"""One of several processes sharing a SQLite greylist file (run by test_stores.py).

Usage: python -m tests.greylist.sqlite_worker PATH WORKER ROUNDS
"""

from __future__ import annotations

import asyncio
import sys

from mailwarden.greylist import Attempt, GreylistConfig, SQLiteStore, TripletKey

NOW = 1_700_000_000.0
KEY = TripletKey("net:192.0.2.0/24", "a@example.com", "b@example.net")


async def hammer(path: str, worker: int, rounds: int) -> None:
    """Every worker passes one shared, already passed triplet (its attempts and its network
    counter add up) and greylists then passes triplets of its own (a second counter)."""
    store = SQLiteStore(path)
    config = GreylistConfig(min_delay=0.5, auto_allow_after=0)
    for i in range(rounds):
        now = NOW + i
        await store.attempt(Attempt(KEY, "net:other", ()), now, config)
        own = TripletKey("net:shared", f"w{worker}r{i // 2}@example.com", "b@example.net")
        await store.attempt(Attempt(own, "net:shared", ()), now + (i % 2), config)
    await store.close()


if __name__ == "__main__":
    asyncio.run(hammer(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
