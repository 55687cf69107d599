"""The greylist store interface, and the in-memory store (tests, single process).

Every store keeps three things: triplet entries, manual allow entries and per-network pass
counters. Expiry is logical (an entry whose `expires_at` is past is absent) so an injected
clock works everywhere; stores may also drop expired data physically (TTL, `purge`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from .core import (
    AllowEntry,
    Entry,
    GreylistConfig,
    NetworkEntry,
    TripletKey,
    advance,
    check_allow_entry,
)

__all__ = ["Attempt", "AttemptResult", "GreylistStore", "MemoryStore", "TripletField"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt as a store sees it."""

    key: TripletKey
    network: str  # the client network, whose passes are counted ("net:192.0.2.0/24")
    allow_targets: tuple[str, ...]  # allow entries that would cover it, in priority order


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What a store found and did. `allowed`: a live allow entry matched (nothing changed).
    Otherwise `passes` is the network's pass count; `new` is None when the network is
    auto-allowed (nothing changed), else the triplet went from `old` to `new`."""

    allowed: AllowEntry | None = None
    passes: int = 0
    old: Entry | None = None
    new: Entry | None = None


class TripletField(StrEnum):
    """What `forget_triplets` matches on."""

    ORIGIN = "origin"
    SENDER = "sender"
    SENDER_DOMAIN = "sender_domain"
    RECIPIENT = "recipient"


class GreylistStore(Protocol):
    """Where greylisting state lives. Every method is atomic on its own."""

    async def attempt(self, attempt: Attempt, now: float, config: GreylistConfig) -> AttemptResult:
        """Record one delivery attempt, atomically even against other processes:

        1. the first live allow entry among `attempt.allow_targets` ends it;
        2. so does a network pass count of at least `config.auto_allow_after` (if set);
        3. else the triplet's live entry (None if absent or expired) becomes
           `advance(entry, key, now, config)`, and if that passed, the network's pass
           counter grows by one (restarting when expired; it lives `config.pass_ttl`).
        """
        ...

    async def allow(self, entry: AllowEntry) -> None:
        """Add or replace a manual allow entry; ValueError (nothing written) when its times
        are not valid (`check_allow_entry`)."""
        ...

    async def forget_allow(self, target: str) -> bool: ...

    async def forget_network(self, network: str) -> bool: ...

    async def forget_triplets(self, field: TripletField, value: str) -> int:
        """Delete triplets whose `field` equals `value`; how many were deleted."""
        ...

    async def entries(self, now: float, *, limit: int | None = None) -> list[Entry]:
        """Live triplets, most recently seen first."""
        ...

    async def allowed(self, now: float) -> list[AllowEntry]: ...

    async def networks(self, now: float) -> list[NetworkEntry]: ...

    async def purge(self, now: float) -> int:
        """Drop expired data; how many records went."""
        ...

    async def close(self) -> None: ...


def triplet_matches(key: TripletKey, field: TripletField, value: str) -> bool:
    if field is TripletField.SENDER_DOMAIN:
        return key.sender.rpartition("@")[2] == value
    return bool(getattr(key, field.value) == value)


class MemoryStore:
    """Dictionaries in one process: for tests and single-process use."""

    def __init__(self) -> None:
        self.triplets: dict[TripletKey, Entry] = {}
        self.allows: dict[str, AllowEntry] = {}
        self.counters: dict[str, NetworkEntry] = {}

    async def attempt(self, attempt: Attempt, now: float, config: GreylistConfig) -> AttemptResult:
        for target in attempt.allow_targets:
            allowed = self.allows.get(target)
            if allowed is not None and (allowed.expires_at is None or allowed.expires_at > now):
                return AttemptResult(allowed=allowed)
        counter = self.counters.get(attempt.network)
        passes = counter.passes if counter is not None and counter.expires_at > now else 0
        if config.auto_allow_after and passes >= config.auto_allow_after:
            return AttemptResult(passes=passes)
        old = self.triplets.get(attempt.key)
        if old is not None and old.expires_at <= now:
            old = None
        new = advance(old, attempt.key, now, config)
        self.triplets[attempt.key] = new
        if new.passed:
            passes += 1
            self.counters[attempt.network] = NetworkEntry(
                attempt.network, passes, now + config.pass_ttl
            )
        return AttemptResult(None, passes, old, new)

    async def allow(self, entry: AllowEntry) -> None:
        check_allow_entry(entry)
        self.allows[entry.target] = entry

    async def forget_allow(self, target: str) -> bool:
        return self.allows.pop(target, None) is not None

    async def forget_network(self, network: str) -> bool:
        return self.counters.pop(network, None) is not None

    async def forget_triplets(self, field: TripletField, value: str) -> int:
        doomed = [k for k in self.triplets if triplet_matches(k, field, value)]
        for key in doomed:
            del self.triplets[key]
        return len(doomed)

    async def entries(self, now: float, *, limit: int | None = None) -> list[Entry]:
        live = sorted(
            (e for e in self.triplets.values() if e.expires_at > now),
            key=lambda e: e.last_seen,
            reverse=True,
        )
        return live[:limit] if limit is not None else live

    async def allowed(self, now: float) -> list[AllowEntry]:
        return sorted(
            (a for a in self.allows.values() if a.expires_at is None or a.expires_at > now),
            key=lambda a: a.target,
        )

    async def networks(self, now: float) -> list[NetworkEntry]:
        return sorted(
            (n for n in self.counters.values() if n.expires_at > now), key=lambda n: n.network
        )

    async def purge(self, now: float) -> int:
        triplets = [k for k, e in self.triplets.items() if e.expires_at <= now]
        for key in triplets:
            del self.triplets[key]
        counters = [k for k, n in self.counters.items() if n.expires_at <= now]
        for network in counters:
            del self.counters[network]
        allows = [
            k for k, a in self.allows.items() if a.expires_at is not None and a.expires_at <= now
        ]
        for target in allows:
            del self.allows[target]
        return len(triplets) + len(counters) + len(allows)

    async def close(self) -> None:
        return None
