"""Every store keeps, finds, sums and bounds transactions the same way (the memory store's
`summarize` is the reference); hostile field values are kept as text, never run."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailwarden.transactions import (
    Check,
    MemoryStore,
    TransactionRecord,
    TransactionStore,
    normalize_key,
    summarize,
)

NOW = 1_800_000_000.0
HOUR = 3600.0


def record(i: int, **changes: object) -> TransactionRecord:
    fields: dict[str, object] = {
        "time": NOW - HOUR + i,
        "queue_id": f"Q{i:04d}",
        "message_id": f"<m{i}@a.example>",
        "client_ip": f"192.0.2.{i % 5}",
        "helo": "mail.a.example",
        "mail_from": f"s{i}@a.example",
        "sender_domain": ["a.example", "b.example", "c.example"][i % 3],
        "subject": f"message {i}",
        "action": ["accept", "reject", "add_header", "greylist"][i % 4],
        "stage": "data",
        "reply_code": [0, 550, 0, 451][i % 4],
        "reply": ["", "550 5.7.1 DMARC reject", "", "451 4.7.1 Greylisted"][i % 4],
        "dmarc": ["pass", "fail", "none"][i % 3],
        "greylist": ["", "", "passed", "deferred"][i % 4],
        "timed_out": ("dkim",) if i % 7 == 0 else (),
        "symbols": ("R_SPF_ALLOW", f"SYM_{i % 3}"),
        "checks": (Check("spf", "pass", ""), Check("dmarc", "fail", f"reason {i}")),
    }
    fields.update(changes)
    return TransactionRecord(**fields)  # type: ignore[arg-type]


async def test_a_transaction_is_found_by_queue_id_or_message_id(store: TransactionStore) -> None:
    await store.add([record(i) for i in range(10)])
    found = await store.lookup("Q0003")
    assert found == record(3).bounded()
    assert await store.lookup("m4@a.example") == record(4).bounded()
    assert await store.lookup("  <m4@a.example> ") == record(4).bounded()
    assert await store.lookup("nothing") is None
    assert await store.lookup("") is None
    assert await store.lookup("<>") is None
    # the same Message-ID twice (a message retried after greylisting): the newest
    await store.add([record(20, message_id="<m4@a.example>", action="accept")])
    again = await store.lookup("<m4@a.example>")
    assert again is not None
    assert again.queue_id == "Q0020"


async def test_the_summary_matches_the_reference(store: TransactionStore) -> None:
    records = [record(i) for i in range(200)]
    random.Random(4).shuffle(records)
    await store.add(records[:120])
    await store.add(records[120:])
    since, until = NOW - HOUR, NOW
    got = await store.summary(since, until, 300.0, top=5)
    want = summarize([r.bounded() for r in records], since, until, 300.0, 5)
    assert got == want
    assert got.total == 200
    assert sum(n for row in got.timeline.values() for n in row.values()) == 200
    assert got.greylist == {"deferred": 50, "passed": 50}
    assert got.refused_clients[0][1] >= 1
    # an empty window
    empty = await store.summary(NOW + 10, NOW + 20, 5.0)
    assert (empty.total, empty.timeline, empty.symbols, empty.domains) == (0, {}, [], [])


async def test_pruning_bounds_age_and_size(store: TransactionStore) -> None:
    old = [record(i, time=NOW - 10 * 86400 + i) for i in range(5)]
    new = [record(100 + i, time=NOW - 100 + (i // 2)) for i in range(10)]  # ties in time
    await store.add(old + new)
    assert await store.count() == 15
    deleted = await store.prune(NOW, 7.0, 1000)
    assert deleted == 5
    assert await store.count() == 10
    assert await store.prune(NOW, 7.0, 4) == 6
    assert await store.count() == 4
    kept = {r.queue_id for r in new[-4:]}
    for queue_id in kept:
        assert await store.lookup(queue_id) is not None
    assert await store.lookup(new[0].queue_id) is None
    summary = await store.summary(NOW - 86400, NOW + 1, 60.0)
    assert summary.total == 4
    assert sum(n for _, n in summary.symbols) == 8  # their symbols only


async def test_hostile_text_is_kept_as_text_and_cut(store: TransactionStore) -> None:
    nasty = "<script>alert('x')</script>'; DROP TABLE mw_transactions; --\x00\u202e\udce9"
    huge = "A" * 100_000
    await store.add(
        [
            record(
                1,
                subject=nasty + huge,
                mail_from=nasty,
                sender_domain=nasty,
                symbols=(nasty,) * 500,
                checks=(Check(nasty, nasty, huge),),
                queue_id=nasty,
            )
        ]
    )
    found = await store.lookup(nasty)
    assert found is not None
    kept = nasty.replace("\x00", "\ufffd").replace("\udce9", "?")
    assert found.subject.startswith(kept)
    assert found.queue_id == normalize_key(nasty)
    assert len(found.subject) <= 998
    assert len(found.symbols) == 200
    assert len(found.checks[0].reason) <= 998
    assert await store.count() == 1


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=-7200, max_value=7200),
            st.sampled_from(["accept", "reject", "greylist"]),
            st.text(max_size=12),
            st.lists(st.text(max_size=8), max_size=4),
        ),
        max_size=30,
    )
)
async def test_any_records_sum_like_the_reference(
    rows: list[tuple[float, str, str, list[str]]],
) -> None:
    """The memory store over arbitrary text and times (the SQL stores over the fixed cases
    above: a property run per database would be slow)."""
    store = MemoryStore()
    records = [
        record(i, time=NOW + t, action=a, sender_domain=d, symbols=tuple(s))
        for i, (t, a, d, s) in enumerate(rows)
    ]
    await store.add(records)
    got = await store.summary(NOW - 3600, NOW + 3600, 600.0)
    want = summarize([r.bounded() for r in records], NOW - 3600, NOW + 3600, 600.0)
    assert got == want
    assert got.total == sum(NOW - 3600 <= r.time < NOW + 3600 for r in records)


def test_short_ascii_text_with_nul_is_still_cleaned() -> None:
    cut = record(1, subject="a\x00b", helo="x" * 300, mail_from="plain").bounded()
    assert (cut.subject, cut.helo, cut.mail_from) == ("a\ufffdb", "x" * 255, "plain")
