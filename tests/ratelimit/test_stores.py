"""The counter store contract, one suite for memory, SQLite and Redis (injected clock)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwarden.ratelimit import (
    DAY,
    HOUR,
    MINUTE,
    Charge,
    CounterStore,
    MemoryCounterStore,
    SQLiteCounterStore,
    Window,
)

NOW = 1_700_000_000.0
TEN_DAYS = Window("history", 10 * 86_400, 10)


async def test_charge_counts_and_refuses_at_the_limit(counters: CounterStore) -> None:
    for n in range(3):
        assert await counters.charge([Charge("u", MINUTE, 1, 3)], NOW + n) is None
    refused = await counters.charge([Charge("u", MINUTE, 1, 3)], NOW + 3)
    assert refused == Charge("u", MINUTE, 1, 3)
    assert await counters.count("u", MINUTE, NOW + 3) == 3  # the refusal added nothing


async def test_an_amount_larger_than_what_is_left_is_refused(counters: CounterStore) -> None:
    assert await counters.charge([Charge("u", HOUR, 8, 10)], NOW) is None
    assert await counters.charge([Charge("u", HOUR, 3, 10)], NOW) is not None
    assert await counters.charge([Charge("u", HOUR, 2, 10)], NOW) is None
    assert await counters.count("u", HOUR, NOW) == 10


async def test_all_or_nothing_across_keys_and_windows(counters: CounterStore) -> None:
    charges = [Charge("a", MINUTE, 1, 100), Charge("a", DAY, 1, 100), Charge("b", HOUR, 1, 1)]
    assert await counters.charge(charges, NOW) is None
    refused = await counters.charge(charges, NOW + 1)
    assert refused == charges[2]
    assert await counters.count("a", MINUTE, NOW + 1) == 1  # the fitting ones were not added
    assert await counters.count("a", DAY, NOW + 1) == 1


async def test_unlimited_charges_always_count(counters: CounterStore) -> None:
    for _ in range(5):
        assert await counters.charge([Charge("x", HOUR, 2)], NOW) is None
    assert await counters.count("x", HOUR, NOW) == 10


async def test_a_negative_amount_refunds(counters: CounterStore) -> None:
    await counters.charge([Charge("r", DAY, 5)], NOW)
    await counters.charge([Charge("r", DAY, -2)], NOW + 1)
    assert await counters.count("r", DAY, NOW + 1) == 3


async def test_counts_leave_the_window_when_it_slides(counters: CounterStore) -> None:
    await counters.charge([Charge("s", MINUTE, 1, 2)], NOW)
    await counters.charge([Charge("s", MINUTE, 1, 2)], NOW + 30)
    assert await counters.charge([Charge("s", MINUTE, 1, 2)], NOW + 59) is not None
    # the first charge leaves the window within one slot (5 s) after its minute
    assert await counters.charge([Charge("s", MINUTE, 1, 2)], NOW + 65) is None
    assert await counters.count("s", MINUTE, NOW + 200) == 0


async def test_windows_and_keys_are_independent(counters: CounterStore) -> None:
    await counters.charge([Charge("k", MINUTE, 4)], NOW)
    assert await counters.count("k", HOUR, NOW) == 0
    assert await counters.count("k2", MINUTE, NOW) == 0
    assert await counters.count("k:x", MINUTE, NOW) == 0


async def test_history_lists_slots_oldest_first(counters: CounterStore) -> None:
    day = 86_400
    for back, amount in ((9, 1), (3, 7), (0, 2)):
        await counters.charge([Charge("h", TEN_DAYS, amount)], NOW - back * day)
    history = await counters.history("h", TEN_DAYS, NOW)
    assert len(history) == 10
    assert history[0] == 1
    assert history[6] == 7
    assert history[9] == 2
    assert sum(history) == 10
    later = await counters.history("h", TEN_DAYS, NOW + day)
    assert later[-1] == 0
    assert sum(later) == 9


async def test_mark_says_which_members_are_new(counters: CounterStore) -> None:
    assert await counters.mark("seen", ["a", "b", "a"], NOW, 100) == ["a", "b"]
    assert await counters.mark("seen", ["b", "c"], NOW + 1, 100) == ["c"]
    # a member not seen for longer than the ttl is new again
    assert await counters.mark("seen", ["a", "c"], NOW + 100.5, 100) == ["a"]
    # without record nothing changes
    assert await counters.mark("seen", ["d"], NOW + 102, 100, record=False) == ["d"]
    assert await counters.mark("seen", ["d"], NOW + 103, 100, record=False) == ["d"]
    assert await counters.mark("seen", [], NOW, 100) == []


async def test_forget_drops_counters_and_sets_of_a_key(counters: CounterStore) -> None:
    await counters.charge([Charge("f", MINUTE, 3), Charge("f", DAY, 3), Charge("g", DAY, 1)], NOW)
    await counters.mark("f", ["m"], NOW, 100)
    await counters.forget(["f"])
    assert await counters.count("f", MINUTE, NOW) == 0
    assert await counters.count("f", DAY, NOW) == 0
    assert await counters.count("g", DAY, NOW) == 1
    assert await counters.mark("f", ["m"], NOW, 100) == ["m"]


async def test_hostile_keys_and_members_are_plain_data(counters: CounterStore) -> None:
    keys = ["*", "a*", "user:a\x00b", "'; DROP TABLE counters; --", "ü" * 300, "[x]"]
    for index, key in enumerate(keys):
        await counters.charge([Charge(key, HOUR, index + 1)], NOW)
        await counters.mark(key, [key, "%", "_"], NOW, 10)
    await counters.forget(["*"])
    for index, key in enumerate(keys):
        expected = 0 if key == "*" else index + 1
        assert await counters.count(key, HOUR, NOW) == expected


async def test_concurrent_charges_never_pass_the_limit(counters: CounterStore) -> None:
    results = await asyncio.gather(
        *(counters.charge([Charge("c", HOUR, 1, 25)], NOW) for _ in range(60))
    )
    assert sum(r is None for r in results) == 25
    assert await counters.count("c", HOUR, NOW) == 25


async def test_two_sqlite_stores_on_one_file_share_counters(tmp_path: Path) -> None:
    first = SQLiteCounterStore(tmp_path / "c.sqlite3")
    second = SQLiteCounterStore(tmp_path / "c.sqlite3")
    try:
        await first.charge([Charge("p", DAY, 2, 3)], NOW)
        assert await second.charge([Charge("p", DAY, 2, 3)], NOW) is not None
        assert await second.charge([Charge("p", DAY, 1, 3)], NOW) is None
        assert await first.count("p", DAY, NOW) == 3
    finally:
        await first.close()
        await second.close()


def test_window_rejects_uneven_slots() -> None:
    with pytest.raises(ValueError, match="cannot be cut"):
        Window("odd", 100, 7)
    with pytest.raises(ValueError, match="cannot be cut"):
        Window("none", 100, 0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 7200), st.integers(1, 5), st.integers(0, 20)),
        min_size=1,
        max_size=30,
    )
)
def test_memory_store_agrees_with_a_naive_model(events: list[tuple[int, int, int]]) -> None:
    """Whatever the order of charges, the count is the sum of what was accepted in the last
    hour's live slots, and nothing accepted ever makes it pass the limit."""

    async def run() -> None:
        store = MemoryCounterStore()
        accepted: list[tuple[float, int]] = []
        now = NOW
        for step, amount, limit in events:
            now += step
            first = HOUR.first_live(now) * HOUR.slot_seconds
            live = sum(a for t, a in accepted if t >= first)
            refused = await store.charge([Charge("m", HOUR, amount, limit)], now)
            assert (refused is None) == (live + amount <= limit)
            if refused is None:
                accepted.append((now, amount))
            assert await store.count("m", HOUR, now) == sum(a for t, a in accepted if t >= first)

    asyncio.run(run())
