"""mailwarden.ratelimit: counters over sliding windows, and sets that remember members.

The state behind rate limits, brute-force protection and the history a detector learns from,
for every front end that needs it (the submission server now, the Postfix policy service
later): `CounterStore.charge` adds to several counters at once only when every limit still
holds (atomically, even between processes), `count` and `history` read them, `mark` says
which members of a set are new. Memory, SQLite (the default, in the data directory) and Redis
(several servers sharing one view) implement the same `CounterStore` protocol and pass one
test suite. Time always comes from the caller, so an injected clock works everywhere.
"""

from .redis_store import RedisCounterStore
from .sqlite import SQLiteCounterStore
from .store import CounterStore, MemoryCounterStore
from .window import DAY, HOUR, MINUTE, Charge, Window

__all__ = [
    "DAY",
    "HOUR",
    "MINUTE",
    "Charge",
    "CounterStore",
    "MemoryCounterStore",
    "RedisCounterStore",
    "SQLiteCounterStore",
    "Window",
]
