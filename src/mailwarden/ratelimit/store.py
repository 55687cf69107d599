"""The counter store interface, and the in-memory store (tests, a single process)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .window import Charge, Window

__all__ = ["CounterStore", "MemoryCounterStore"]


class CounterStore(Protocol):
    """Counters over sliding windows and sets of members with an expiry. Every method is
    atomic on its own, also against other processes sharing the store."""

    async def charge(self, charges: Sequence[Charge], now: float) -> Charge | None:
        """All or nothing: when every charge fits its limit, add every amount and return
        None; otherwise add nothing and return the first charge that does not fit."""
        ...

    async def count(self, key: str, window: Window, now: float) -> int:
        """The counter's total over the window ending at `now`."""
        ...

    async def history(self, key: str, window: Window, now: float) -> list[int]:
        """The counter's slots over the window ending at `now`, oldest first (`window.slots`
        numbers, the last one the slot holding `now`)."""
        ...

    async def mark(
        self, key: str, members: Sequence[str], now: float, ttl: float, *, record: bool = True
    ) -> list[str]:
        """The members not seen in the set `key` within the last `ttl` seconds, in the order
        given; with `record`, every member is (again) seen at `now`."""
        ...

    async def forget(self, keys: Sequence[str]) -> None:
        """Drop the counters (every window) and sets of these keys."""
        ...

    async def close(self) -> None: ...


class MemoryCounterStore:
    """Dictionaries in one process."""

    def __init__(self) -> None:
        self.counters: dict[tuple[str, str], dict[int, int]] = {}
        self.sets: dict[str, dict[str, float]] = {}

    def _slots(self, key: str, window: Window, now: float) -> dict[int, int]:
        slots = self.counters.setdefault((key, window.id), {})
        first = window.first_live(now)
        for slot in [s for s in slots if s < first]:
            del slots[slot]
        return slots

    async def charge(self, charges: Sequence[Charge], now: float) -> Charge | None:
        for item in charges:
            if not item.fits(await self.count(item.key, item.window, now)):
                return item
        for item in charges:
            slots = self._slots(item.key, item.window, now)
            slot = item.window.slot(now)
            slots[slot] = slots.get(slot, 0) + item.amount
        return None

    async def count(self, key: str, window: Window, now: float) -> int:
        last = window.slot(now)
        return sum(n for s, n in self._slots(key, window, now).items() if s <= last)

    async def history(self, key: str, window: Window, now: float) -> list[int]:
        slots = self._slots(key, window, now)
        first = window.first_listed(now)
        return [slots.get(first + i, 0) for i in range(window.slots)]

    async def mark(
        self, key: str, members: Sequence[str], now: float, ttl: float, *, record: bool = True
    ) -> list[str]:
        seen = self.sets.setdefault(key, {})
        new = [m for m in dict.fromkeys(members) if seen.get(m, -float("inf")) <= now - ttl]
        if record:
            for member in members:
                seen[member] = now
        return new

    async def forget(self, keys: Sequence[str]) -> None:
        doomed = set(keys)
        for pair in [p for p in self.counters if p[0] in doomed]:
            del self.counters[pair]
        for key in doomed:
            self.sets.pop(key, None)

    async def close(self) -> None:
        return None
