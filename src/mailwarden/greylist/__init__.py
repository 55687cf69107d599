"""mailwarden.greylist: greylisting (RFC 6647) with memory, SQLite and Redis stores.

`Greylister(store, clock=..., config=GreylistConfig(...)).check(client_ip, sender, recipient,
spf_pass_domain=..., authenticated=..., dnswl_hit=...)` returns a `GreylistDecision`: pass, or
defer with the retry delay and the "451 4.7.1" reply. The rules are pure functions (`advance`,
`decide`, `exemption`); stores implement `GreylistStore`.
"""

from .core import (
    AllowEntry,
    Entry,
    GreylistAction,
    GreylistConfig,
    GreylistDecision,
    GreylistStage,
    NetworkEntry,
    TripletKey,
    advance,
    allow_targets,
    check_allow_entry,
    client_network,
    decide,
    exemption,
    is_valid_time,
    normalize_recipient,
    normalize_sender,
    parse_allow_target,
    stored_count,
    stored_time,
)
from .engine import Greylister
from .redis_store import RedisStore
from .sqlite import SQLiteStore
from .store import Attempt, AttemptResult, GreylistStore, MemoryStore, TripletField

__all__ = [
    "AllowEntry",
    "Attempt",
    "AttemptResult",
    "Entry",
    "GreylistAction",
    "GreylistConfig",
    "GreylistDecision",
    "GreylistStage",
    "GreylistStore",
    "Greylister",
    "MemoryStore",
    "NetworkEntry",
    "RedisStore",
    "SQLiteStore",
    "TripletField",
    "TripletKey",
    "advance",
    "allow_targets",
    "check_allow_entry",
    "client_network",
    "decide",
    "exemption",
    "is_valid_time",
    "normalize_recipient",
    "normalize_sender",
    "parse_allow_target",
    "stored_count",
    "stored_time",
]
