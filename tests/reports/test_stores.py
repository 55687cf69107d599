"""One suite, every report store (SQLite and a real PostgreSQL): what is kept comes back the
same, claims are exclusive, imports are idempotent, budgets count, purges purge."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from tests.reports.helpers import DAY, T0, evaluation, spoof

from mailwarden.reports import (
    AggregateReport,
    AuthResult,
    Delivery,
    DeliveryStatus,
    DestinationState,
    DKIMAuth,
    FailureReport,
    Incident,
    MessageKind,
    OutgoingReport,
    PolicyPublished,
    ReportRow,
    ReportStore,
)


async def test_evaluations_come_back_field_for_field(store: ReportStore) -> None:
    many_dkim = tuple(DKIMAuth(f"d{i}.example", f"s{i}", "fail", "body-hash") for i in range(5))
    kept = [
        evaluation(),
        spoof(time=T0 + 7200, override="local_policy", override_comment="x" * 50),
        evaluation(time=T0 + 10, dkim=many_dkim, kind=MessageKind.BOUNCE, spf_scope="helo"),
        evaluation(time=T0 + 2 * DAY, policy_domain="b.example"),
    ]
    await store.add_evaluations(kept)
    day = await store.evaluations(T0, T0 + DAY)
    assert day == sorted(kept[:3], key=lambda e: e.time)
    assert await store.evaluations(T0, T0 + 3 * DAY, domain="b.example") == [kept[3]]
    assert await store.evaluations(T0 + DAY, T0 + 2 * DAY) == []  # [since, until)


async def test_reputation_counts_spam_and_remembers_good_exchanges(store: ReportStore) -> None:
    await store.add_evaluations([spoof(), spoof(time=T0 + 5)])
    assert await store.reputation("a.example", T0) == type(await store.reputation("x", 0))(
        2, 0, 0, False
    )
    await store.add_evaluations([evaluation(spam=True, action="reject")])  # refused: not good
    reputation = await store.reputation("a.example", T0)
    assert (reputation.messages, reputation.passed, reputation.spam) == (3, 1, 1)
    assert not reputation.good_exchange
    assert reputation.spam_share == 1.0
    await store.add_evaluations([evaluation(kind=MessageKind.REPORT)])  # a report: not good
    assert not (await store.reputation("a.example", T0)).good_exchange
    await store.add_evaluations([evaluation()])
    assert (await store.reputation("a.example", T0)).good_exchange
    # the good exchange outlives the purge of the evaluations
    await store.purge(T0 + 100 * DAY, keep=DAY, keep_imported=DAY)
    reputation = await store.reputation("a.example", 0)
    assert reputation.messages == 0
    assert reputation.good_exchange


async def test_a_period_is_claimed_once(store: ReportStore) -> None:
    claims = await asyncio.gather(*(store.claim_period(T0, T0 + DAY) for _ in range(5)))
    assert sorted(claims) == [False, False, False, False, True]
    # a builder that died without finishing: reclaimed after the stale time, not before
    assert not await store.claim_period(T0, T0 + DAY + 10)
    assert await store.claim_period(T0, T0 + DAY + 4000)
    await store.finish_period(T0, T0 + DAY + 4001)
    assert not await store.claim_period(T0, T0 + 10 * DAY)


def _outgoing(report_id: str = "r1", created: float = T0) -> OutgoingReport:
    return OutgoingReport(
        report_id,
        "aggregate",
        "a.example",
        T0,
        T0 + DAY - 1,
        0,
        1,
        f"x!a.example!{T0}!{T0 + DAY - 1}!{report_id}.xml.gz",
        b"\x1f\x8b" + bytes(range(256)),
        7,
        created,
    )


async def test_outgoing_reports_and_deliveries(store: ReportStore) -> None:
    report = _outgoing()
    deliveries = [
        Delivery("r1", "a@x.example", DeliveryStatus.PENDING, not_before=T0 + 100),
        Delivery("r1", "b@y.example", DeliveryStatus.PENDING, not_before=T0 + 50),
    ]
    assert await store.add_outgoing(report, deliveries)
    assert not await store.add_outgoing(report, deliveries)  # kept once
    assert await store.outgoing("r1") == report  # byte for byte
    assert await store.outgoing("nope") is None
    assert [d.destination for d in await store.due(T0 + 60)] == ["b@y.example"]
    assert [d.destination for d in await store.due(T0 + 200)] == ["b@y.example", "a@x.example"]
    first = (await store.due(T0 + 200))[0]
    claims = await asyncio.gather(*(store.claim(first, T0 + 200) for _ in range(4)))
    assert claims.count(True) == 1  # one sender only
    assert [d.destination for d in await store.due(T0 + 200)] == ["a@x.example"]
    sent = replace(first, status=DeliveryStatus.SENT, attempts=1, last_error="250 ok")
    await store.update_delivery(sent)
    kept = {d.destination: d for d in await store.deliveries(report_id="r1")}
    assert kept["b@y.example"].status is DeliveryStatus.SENT
    assert kept["b@y.example"].attempts == 1
    # a sender that died while sending: its claim goes stale
    second = kept["a@x.example"]
    assert await store.claim(second, T0 + 300)
    assert not await store.claim(second, T0 + 400)
    assert await store.claim(second, T0 + 300 + 3601)


async def test_destinations_by_address_and_token(store: ReportStore) -> None:
    state = DestinationState("dmarc@x.example", "0123456789abcdef")
    await store.save_destination(state)
    assert await store.destination("dmarc@x.example") == state
    assert await store.destination_by_token("0123456789abcdef") == state
    changed = replace(state, failures=2, first_failure=T0, suppressed_until=T0 + 5, last_error="b")
    await store.save_destination(changed)
    assert await store.destination("dmarc@x.example") == changed
    assert await store.destination("other@x.example") is None


async def test_sends_are_counted_for_the_budgets(store: ReportStore) -> None:
    await store.log_send(T0, "a@x.example", 100, "aggregate")
    await store.log_send(T0 + 10, "a@x.example", 50, "failure")
    await store.log_send(T0 + 20, "b@x.example", 7, "aggregate")
    assert await store.sent_since(T0) == (3, 157)
    assert await store.sent_since(T0 + 5) == (2, 57)
    assert await store.sent_since(T0, destination="a@x.example") == (2, 150)
    assert await store.sent_since(T0, destination="a@x.example", kind="failure") == (1, 50)
    assert await store.sent_since(T0 + 100) == (0, 0)


async def test_incidents_count_repeats(store: ReportStore) -> None:
    incident = Incident("k1", "a.example", "v=DMARC1; p=none", 1, 0, T0, T0, "{}", b"From: x\r\n")
    await store.add_incident(incident)
    await store.add_incident(replace(incident, last=T0 + 50))
    await store.add_incident(replace(incident, last=T0 + 60))
    (kept,) = await store.incidents()
    assert (kept.count, kept.reported, kept.first, kept.last) == (3, 0, T0, T0 + 60)
    assert kept.headers == b"From: x\r\n"
    await store.mark_reported("k1", 3)
    assert await store.incidents() == []
    await store.add_incident(replace(incident, last=T0 + 70))
    (again,) = await store.incidents()
    assert (again.count, again.reported) == (4, 3)  # the next report says Incidents: 1


def _aggregate(report_id: str = "id-1", email: str = "noreply@r.example") -> AggregateReport:
    rows = (
        ReportRow(
            "192.0.2.1",
            10,
            "none",
            "pass",
            "fail",
            "a.example",
            "a.example",
            "",
            (("local_policy", "why"),),
            (AuthResult("a.example", "pass", selector="s1", human_result="ok"),),
            (AuthResult("a.example", "fail", scope="mfrom"),),
        ),
        ReportRow("2001:db8::1", 3, "reject", "fail", "fail", "a.example"),
    )
    return AggregateReport(
        "Reporter",
        email,
        report_id,
        T0,
        T0 + DAY - 1,
        PolicyPublished("a.example", p="reject"),
        rows,
    )


async def test_imports_are_idempotent_by_reporter_and_id(store: ReportStore) -> None:
    report = _aggregate()
    assert await store.add_aggregate(report, "file.xml", T0)
    assert not await store.add_aggregate(report, "again.xml", T0)
    assert await store.add_aggregate(_aggregate(email="other@q.example"), "q.xml", T0)
    rows = await store.imported_rows(domain="a.example")
    assert len(rows) == 4
    first = [r for r in rows if r.row.source_ip == "192.0.2.1"]
    assert first[0].row == report.rows[0]  # every field round-trips
    assert first[0].reporter == "Reporter"
    assert await store.imported_rows(domain="b.example") == []
    assert await store.imported_rows(since=T0 + DAY) == []
    failure = FailureReport(
        "<m@x>",
        "abuse@r.example",
        "a.example",
        "192.0.2.9",
        T0,
        incidents=4,
        fields=(("Feedback-Type", "auth-failure"),),
    )
    assert await store.add_failure(failure, "f.eml", T0)
    assert not await store.add_failure(failure, "f.eml", T0)
    assert await store.imported_failures(domain="a.example") == [failure]


async def test_purge_keeps_what_is_young(store: ReportStore) -> None:
    await store.add_evaluations([evaluation(), evaluation(time=T0 + 20 * DAY)])
    await store.add_outgoing(_outgoing("old", T0), [Delivery("old", "a@x", DeliveryStatus.SENT)])
    await store.add_outgoing(_outgoing("new", T0 + 20 * DAY), [])
    await store.add_aggregate(_aggregate(), "f", T0)
    gone = await store.purge(T0 + 21 * DAY, keep=14 * DAY, keep_imported=30 * DAY)
    assert gone == 3  # one evaluation, one report and its delivery
    assert len(await store.evaluations(0, T0 + 100 * DAY)) == 1
    assert await store.outgoing("old") is None
    assert await store.outgoing("new") is not None
    assert len(await store.imported_rows()) == 2
    await store.purge(T0 + 60 * DAY, keep=14 * DAY, keep_imported=30 * DAY)
    assert await store.imported_rows() == []
