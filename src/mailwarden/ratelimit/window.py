"""Sliding windows cut into slots, and the charges made against them (pure).

A window of `seconds` is counted in `slots` equal slots: the count of a window at time t is the
sum of the slot holding t and the `slots` slots before it. A window therefore slides one slot
at a time, and what was counted leaves it at most one slot late (one minute for the hour
window), never early: a limit is never lifted before its time. `history` lists the last
`slots` slots (calendar days for a window of days).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DAY", "HOUR", "MINUTE", "Charge", "Window"]


@dataclass(frozen=True, slots=True)
class Window:
    """A sliding window: `seconds` long, counted in `slots` slots."""

    name: str
    seconds: int
    slots: int

    def __post_init__(self) -> None:
        if self.slots < 1 or self.seconds < self.slots or self.seconds % self.slots:
            raise ValueError(f"window {self.name}: {self.seconds}s cannot be cut in {self.slots}")

    @property
    def slot_seconds(self) -> int:
        return self.seconds // self.slots

    @property
    def id(self) -> str:
        """The window in storage keys (two windows of one name never share counters)."""
        return f"{self.name}:{self.seconds}:{self.slots}"

    def slot(self, now: float) -> int:
        """The slot holding the time `now`."""
        return int(now // self.slot_seconds)

    def first_live(self, now: float) -> int:
        """The oldest slot still counted at `now` (the window reaches back into it)."""
        return self.slot(now) - self.slots

    def first_listed(self, now: float) -> int:
        """The oldest of the last `slots` slots (what `history` lists)."""
        return self.slot(now) - self.slots + 1

    def ttl(self) -> int:
        """How long a slot's count must be kept, in seconds."""
        return self.seconds + 2 * self.slot_seconds


MINUTE = Window("minute", 60, 12)  # 5-second slots
HOUR = Window("hour", 3600, 60)  # 1-minute slots
DAY = Window("day", 86_400, 96)  # 15-minute slots


@dataclass(frozen=True, slots=True)
class Charge:
    """Add `amount` to the counter `key` in `window`; with a `limit`, only while the window's
    count plus `amount` stays at most `limit`."""

    key: str
    window: Window
    amount: int = 1
    limit: int | None = None

    def fits(self, count: int) -> bool:
        return self.limit is None or count + self.amount <= self.limit
