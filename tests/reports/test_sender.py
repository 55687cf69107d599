"""Sending responsibly, each safeguard on its own: external authorization, budgets, the
reputation gate, no loops, the off switch and dry run, the report address's own domain,
spreading, refusals and bounces with backoff, retries that never spin, stable re-sends."""

from __future__ import annotations

import gzip
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from tests.reports.conftest import validate
from tests.reports.helpers import DAY, T0, evaluation, spoof

from mailwarden.dkim import DKIMVerifier, private_key_pem
from mailwarden.dkim.keygen import key_record
from mailwarden.dns import StaticResolver
from mailwarden.message import Message
from mailwarden.reports import (
    DeliveryStatus,
    MessageKind,
    ReportSettings,
    ReportStore,
    SQLiteStore,
)
from mailwarden.reports.incoming import read_reports
from mailwarden.reports.sender import ReportSender, destination_address
from mailwarden.reports.transport import SendError

NOW = T0 + DAY + 12 * 3600  # the next day, after the sending window opened
KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(3, 35)))
SENDER = "dmarc-reports@reports.example.net"


class FakeRelay:
    """Records what it is given; answers from a script (by recipient)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes]] = []
        self.errors: dict[str, SendError] = {}

    async def send(self, mail_from: str, rcpt: str, message: bytes, *, name: str = "") -> str:
        if rcpt in self.errors:
            raise self.errors[rcpt]
        self.sent.append((mail_from, rcpt, message))
        return "250 2.0.0 queued"


def zone(**extra: Any) -> StaticResolver:
    records: dict[str, Any] = {
        "_dmarc.a.example": {"TXT": "v=DMARC1; p=reject; rua=mailto:dmarc@a.example"},
        "sel._domainkey.reports.example.net": {"TXT": key_record(KEY)},
        "_dmarc.example.net": {"TXT": "v=DMARC1; p=reject"},
        "_dmarc.reporting.example": {"TXT": "v=DMARC1; p=none"},
        "a.example._report._dmarc.reporting.example": {"TXT": "v=DMARC1"},
    }
    records.update(extra)
    return StaticResolver(records)


def config(tmp_path: Path, **changes: Any) -> ReportSettings:
    key = tmp_path / "dkim.pem"
    key.write_bytes(private_key_pem(KEY))
    base = ReportSettings(
        send=True,
        from_address=SENDER,
        org_name="Example Net",
        dkim_key=str(key),
        dkim_selector="sel",
        spread_hours=6.0,
        send_hour=1,
    )
    return replace(base, **changes)


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    made = SQLiteStore(tmp_path / "reports.sqlite3")
    yield made
    await made.close()


def sender(
    store: ReportStore, settings: ReportSettings, relay: Any = None, **zone_extra: Any
) -> ReportSender:
    return ReportSender(
        store,
        settings,
        zone(**zone_extra),
        transport=relay or FakeRelay(),
        clock=lambda: NOW,
        hostname="mx.example.net",
    )


async def test_a_day_becomes_one_signed_valid_report(
    store: ReportStore, tmp_path: Path, schema: Any
) -> None:
    await store.add_evaluations([evaluation()] * 3 + [spoof()] * 2)
    relay = FakeRelay()
    s = sender(store, config(tmp_path), relay)
    (built,) = await s.build_due(NOW)
    assert await s.build_due(NOW) == []  # built once
    assert built.filename.startswith(f"reports.example.net!a.example!{T0}!{T0 + DAY - 1}!")
    assert built.filename.endswith(".xml.gz")
    validate(schema, gzip.decompress(built.payload))
    outcomes = await s.send_due(NOW)
    assert [(o.destination, o.status) for o in outcomes] == [
        ("dmarc@a.example", DeliveryStatus.SENT)
    ]
    ((mail_from, rcpt, message),) = relay.sent
    assert rcpt == "dmarc@a.example"
    assert mail_from.startswith("dmarc-reports+")
    assert mail_from.endswith("@reports.example.net")
    parsed = Message.from_bytes(message)
    subject = parsed.get("subject")
    assert subject is not None
    assert subject.text() == (
        f"Report Domain: a.example Submitter: reports.example.net Report-ID: <{built.report_id}>"
    )
    (result,) = await DKIMVerifier(zone(), clock=lambda: NOW).verify(parsed)
    assert (result.result.value, result.domain) == ("pass", "reports.example.net")
    (found,) = read_reports(message)
    assert found.report is not None
    assert found.report.messages == 5
    assert await s.send_due(NOW) == []  # sent once


async def test_sends_are_spread_and_wait_for_their_time(store: ReportStore, tmp_path: Path) -> None:
    await store.add_evaluations(
        [
            evaluation(
                policy_domain=f"d{i}.example",
                record=(f"v=DMARC1; p=none; rua=mailto:r@d{i}.example"),
            )
            for i in range(20)
        ]
    )
    s = sender(store, config(tmp_path))
    await s.build_due(NOW)
    times = sorted(d.not_before for d in await store.deliveries())
    window_start = T0 + DAY + 3600
    assert all(window_start <= t < window_start + 6 * 3600 for t in times)
    assert len(set(times)) == 20  # each destination its own moment
    assert await s.send_due(window_start - 1) == []
    assert len(await s.send_due(window_start + 3 * 3600)) < 20
    assert len(await s.send_due(window_start + 6 * 3600)) > 0
    assert all(d.status is DeliveryStatus.SENT for d in await store.deliveries())


async def test_external_destinations_need_authorization(store: ReportStore, tmp_path: Path) -> None:
    record = (
        "v=DMARC1; p=reject; rua=mailto:dmarc@a.example,mailto:x@reporting.example,"
        "mailto:y@spy.example"
    )
    await store.add_evaluations([evaluation(record=record)])
    relay = FakeRelay()
    s = sender(store, config(tmp_path, max_destinations=3), relay)
    await s.build_due(NOW)
    outcomes = {o.destination: o for o in await s.send_due(NOW, everything=True)}
    assert outcomes["dmarc@a.example"].status is DeliveryStatus.SENT
    assert outcomes["x@reporting.example"].status is DeliveryStatus.SENT
    assert outcomes["y@spy.example"].status is DeliveryStatus.UNAUTHORIZED
    assert "a.example._report._dmarc.spy.example" in outcomes["y@spy.example"].detail
    assert sorted(r for _, r, _ in relay.sent) == ["dmarc@a.example", "x@reporting.example"]


async def test_authorization_that_dns_cannot_answer_is_retried(
    store: ReportStore, tmp_path: Path
) -> None:
    await store.add_evaluations([evaluation(record="v=DMARC1; p=none; rua=mailto:y@spy.example")])
    resolver = zone()
    resolver.fail("a.example._report._dmarc.spy.example")
    s = ReportSender(store, config(tmp_path), resolver, transport=FakeRelay(), clock=lambda: NOW)
    await s.build_due(NOW)
    (outcome,) = await s.send_due(NOW, everything=True)
    assert outcome.status is DeliveryStatus.RETRY


async def test_budgets_per_destination_and_global(store: ReportStore, tmp_path: Path) -> None:
    await store.add_evaluations(
        [evaluation(time=T0 - d * DAY + 60) for d in range(5)]  # five days, one destination
        + [evaluation(policy_domain="b.example", record="v=DMARC1; p=none; rua=mailto:r@b.example")]
    )
    relay = FakeRelay()
    s = sender(store, config(tmp_path, destination_reports_per_day=2), relay)
    await s.build_due(NOW)
    outcomes = await s.send_due(NOW, everything=True)
    to_a = [o.status for o in outcomes if o.destination == "dmarc@a.example"]
    assert to_a.count(DeliveryStatus.SENT) == 2
    assert to_a.count(DeliveryStatus.PENDING) == 3  # waiting for tomorrow's budget
    assert [o.status for o in outcomes if o.destination == "r@b.example"] == [DeliveryStatus.SENT]
    # a report over budget for longer than give_up_days is given up
    late = await s.send_due(NOW + 4 * DAY, everything=True)
    assert {o.status for o in late} <= {DeliveryStatus.SENT, DeliveryStatus.FAILED}


async def test_the_global_budget(store: ReportStore, tmp_path: Path) -> None:
    domains = [f"d{i}.example" for i in range(5)]
    await store.add_evaluations(
        [evaluation(policy_domain=d, record=f"v=DMARC1; p=none; rua=mailto:r@{d}") for d in domains]
    )
    s = sender(store, config(tmp_path, reports_per_day=3))
    await s.build_due(NOW)
    outcomes = await s.send_due(NOW, everything=True)
    assert [o.status for o in outcomes].count(DeliveryStatus.SENT) == 3
    waiting = [o for o in outcomes if o.status is DeliveryStatus.PENDING]
    assert len(waiting) == 2
    assert waiting[0].detail == "global budget: 3 reports in the last day"
    bytes_budget = sender(store, config(tmp_path, bytes_per_day=10_000))
    assert (await bytes_budget._over_budget("x@y.example", 10_000, "aggregate", NOW)).startswith(
        "global budget:"
    )


async def test_the_reputation_gate(store: ReportStore, tmp_path: Path) -> None:
    s = sender(store, config(tmp_path))
    # a domain never seen passing: its failing mail is not reported
    spoofs = [spoof(), spoof(source_ip="203.0.113.9")]
    built = await s.build("a.example", spoofs, T0, NOW)
    assert not built.reports
    assert built.left_out == 2
    assert "never seen passing" in built.skipped
    # once a DMARC-passing message was accepted, failures are reported too
    await store.add_evaluations([evaluation()])
    built = await s.build("a.example", spoofs, T0, NOW)
    assert built.reports
    assert built.reports[0].messages == 2
    # a domain whose authenticated mail we mostly refused as spam gets nothing
    await store.add_evaluations([evaluation(spam=True, action="reject")] * 3)
    built = await s.build("a.example", [evaluation()], T0, NOW)
    assert not built.reports
    assert "refused as spam" in built.skipped
    relaxed = sender(store, config(tmp_path, max_spam_share=0.9))
    assert (await relaxed.build("a.example", [evaluation()], T0, NOW)).reports


async def test_no_report_from_reports_or_bounces(store: ReportStore, tmp_path: Path) -> None:
    s = sender(store, config(tmp_path))
    loops = [evaluation(kind=MessageKind.REPORT), evaluation(kind=MessageKind.BOUNCE)]
    built = await s.build("a.example", loops, T0, NOW)
    assert not built.reports
    assert built.skipped == "only reports and bounces"
    mixed = await s.build("a.example", [*loops, evaluation()], T0, NOW)
    assert mixed.reports[0].messages == 1


async def test_the_off_switch_and_dry_run(store: ReportStore, tmp_path: Path, schema: Any) -> None:
    await store.add_evaluations([evaluation()])
    relay = FakeRelay()
    off = sender(store, config(tmp_path, send=False), relay)
    await off.build_due(NOW)
    assert await off.send_due(NOW, everything=True) == []
    assert relay.sent == []
    out = tmp_path / "dry"
    dry = ReportSender(
        store, config(tmp_path, send=False, dry_run=str(out)), zone(), clock=lambda: NOW
    )
    (outcome,) = await dry.send_due(NOW, everything=True)
    assert outcome.status is DeliveryStatus.WRITTEN
    files = sorted(p.name for p in out.iterdir())
    assert any(name.endswith(".xml.gz") for name in files)
    assert any(name.endswith(".eml") for name in files)
    gz = next(p for p in out.iterdir() if p.name.endswith(".xml.gz"))
    validate(schema, gzip.decompress(gz.read_bytes()))


async def test_a_report_address_with_its_own_rua_sends_nothing(
    store: ReportStore, tmp_path: Path
) -> None:
    await store.add_evaluations([evaluation()])
    relay = FakeRelay()
    s = sender(
        store,
        config(tmp_path),
        relay,
        **{"_dmarc.reports.example.net": {"TXT": "v=DMARC1; p=none; rua=mailto:agg@example.net"}},
    )
    await s.build_due(NOW)
    with pytest.raises(SendError, match="would loop"):
        await s.send_due(NOW, everything=True)
    assert relay.sent == []


async def test_a_refusal_suppresses_with_backoff_then_drops(
    store: ReportStore, tmp_path: Path
) -> None:
    settings = config(tmp_path, suppress_hours=6.0, drop_after_days=7.0, dropped_days=30.0)
    relay = FakeRelay()
    relay.errors["dmarc@a.example"] = SendError("550 5.1.1 no such user", permanent=True)
    s = sender(store, settings, relay)
    await store.add_evaluations([evaluation()])
    await s.build_due(NOW)
    (outcome,) = await s.send_due(NOW, everything=True)
    assert outcome.status is DeliveryStatus.FAILED
    state = await store.destination("dmarc@a.example")
    assert state is not None
    assert state.failures == 1
    assert state.suppressed_until == NOW + 6 * 3600
    second = await s.note_failure("dmarc@a.example", NOW + 7 * 3600, "bounced")
    assert second.suppressed_until == NOW + 7 * 3600 + 12 * 3600  # doubled
    for day in (2, 4, 6):  # bouncing again each time it is tried
        state = await s.note_failure("dmarc@a.example", NOW + day * DAY, "bounced")
        assert state.dropped_until == 0
        assert state.suppressed_until > NOW + day * DAY
    dropped = await s.note_failure("dmarc@a.example", NOW + 7 * DAY + 3600, "bounced")
    assert dropped.dropped_until == NOW + 7 * DAY + 3600 + 30 * DAY  # undeliverable 7 days
    # a destination quiet for longer than drop_after_days starts afresh
    fresh = await s.note_failure("dmarc@a.example", NOW + 60 * DAY, "bounced")
    assert (fresh.failures, fresh.suppressed_until) == (1, NOW + 60 * DAY + 6 * 3600)
    # a report for a suppressed destination is not sent
    await store.add_evaluations([evaluation(time=T0 + DAY + 10)])
    await s.build_due(NOW + 2 * DAY)
    await s.note_failure("dmarc@a.example", NOW + 60 * DAY + 7 * DAY + 1, "bounced")
    later = await s.send_due(NOW + 9 * DAY, everything=True)
    assert [o.status for o in later] == [DeliveryStatus.SUPPRESSED]
    assert "dropped" in later[0].detail


async def test_temporary_failures_back_off_and_give_up(store: ReportStore, tmp_path: Path) -> None:
    relay = FakeRelay()
    relay.errors["dmarc@a.example"] = SendError("451 4.3.0 try later")
    s = sender(store, config(tmp_path, retry_minutes=15.0, give_up_days=3.0), relay)
    await store.add_evaluations([evaluation()])
    await s.build_due(NOW)
    (first,) = await s.send_due(NOW, everything=True)
    assert first.status is DeliveryStatus.RETRY
    (delivery,) = await store.deliveries()
    assert delivery.not_before == NOW + 15 * 60
    assert await s.send_due(NOW + 60) == []  # never in a tight loop
    await s.send_due(NOW + 15 * 60)
    (delivery,) = await store.deliveries()
    assert (delivery.attempts, delivery.not_before) == (2, NOW + 15 * 60 + 30 * 60)
    (last,) = await s.send_due(NOW + 4 * DAY, everything=True)
    assert last.status is DeliveryStatus.FAILED


async def test_an_unreachable_relay_stops_the_run(store: ReportStore, tmp_path: Path) -> None:
    await store.add_evaluations(
        [
            evaluation(
                policy_domain=f"d{i}.example",
                record=(f"v=DMARC1; p=none; rua=mailto:r@d{i}.example"),
            )
            for i in range(3)
        ]
    )

    class Down(FakeRelay):
        async def send(self, mail_from: str, rcpt: str, message: bytes, *, name: str = "") -> str:
            self.sent.append((mail_from, rcpt, message))
            raise SendError("connection refused", relay_down=True)

    relay = Down()
    s = sender(store, config(tmp_path), relay)
    await s.build_due(NOW)
    outcomes = await s.send_due(NOW, everything=True)
    assert len(relay.sent) == 1
    assert [o.status for o in outcomes] == [DeliveryStatus.RETRY]


async def test_a_resent_report_keeps_its_id_and_name(store: ReportStore, tmp_path: Path) -> None:
    await store.add_evaluations([evaluation()])
    relay = FakeRelay()
    relay.errors["dmarc@a.example"] = SendError("451 later")
    s = sender(store, config(tmp_path), relay)
    (built,) = await s.build_due(NOW)
    await s.send_due(NOW, everything=True)
    del relay.errors["dmarc@a.example"]
    await s.send_due(NOW + DAY, everything=True)
    ((_, _, message),) = relay.sent
    assert built.filename.encode() in message
    assert built.report_id.encode() in message
    (found,) = read_reports(message)
    assert found.report is not None
    assert found.report.report_id == built.report_id
    # rebuilt from scratch (a new store), the same day gives the same id and file name
    other = SQLiteStore(tmp_path / "other.sqlite3")
    try:
        await other.add_evaluations([evaluation()])
        (again,) = await sender(other, config(tmp_path)).build_due(NOW)
        assert (again.report_id, again.filename, again.payload) == (
            built.report_id,
            built.filename,
            built.payload,
        )
    finally:
        await other.close()


async def test_a_destination_size_limit_splits_the_report(
    store: ReportStore, tmp_path: Path
) -> None:
    record = "v=DMARC1; p=none; rua=mailto:dmarc@a.example!20k"
    await store.add_evaluations(
        [evaluation(record=record, source_ip=f"10.{i // 250}.{i % 250}.3") for i in range(4000)]
    )
    s = sender(store, config(tmp_path))
    built = await s.build_due(NOW)
    assert len(built) > 1
    assert len({b.report_id for b in built}) == len({b.filename for b in built}) == len(built)
    assert all(len(b.payload) <= 20 * 1024 * 3 // 4 for b in built)
    assert sum(b.messages for b in built) == 4000


async def test_bounces_suppress_the_destination_they_name(
    store: ReportStore, tmp_path: Path
) -> None:
    await store.add_evaluations([evaluation()])
    relay = FakeRelay()
    s = sender(store, config(tmp_path), relay)
    await s.build_due(NOW)
    await s.send_due(NOW, everything=True)
    ((mail_from, _, _),) = relay.sent
    delayed = f"To: {mail_from}\r\n\r\nAction: delayed\r\nStatus: 4.4.1\r\n".encode()
    assert await s.handle_bounce(delayed, NOW) is None
    forged = b"To: dmarc-reports+0000000000000000@reports.example.net\r\n\r\nAction: failed\r\n"
    assert await s.handle_bounce(forged, NOW) is None  # no such token
    bounce = f"To: {mail_from}\r\n\r\nAction: failed\r\nStatus: 5.1.1\r\n".encode()
    assert await s.handle_bounce(bounce, NOW) == "dmarc@a.example"
    state = await store.destination("dmarc@a.example")
    assert state is not None
    assert state.suppressed_until > NOW
    assert "5.1.1" in state.last_error


@pytest.mark.parametrize(
    ("uri", "address"),
    [
        ("mailto:dmarc@a.example", "dmarc@a.example"),
        ("mailto:d%40x@A.Example", "d@x@a.example"),
        ("mailto:dmarc@a.example?subject=x", "dmarc@a.example"),
        ("https://a.example/report", None),
        ("mailto:@a.example", None),
        ("mailto:dmarc@", None),
        ("mailto:dm arc@a.example", None),
        ("mailto:dmarc@a..example", None),
    ],
)
def test_destination_addresses(uri: str, address: str | None) -> None:
    from mailwarden.dmarc import ReportURI

    assert destination_address(ReportURI(uri)) == address


async def test_the_signing_keys_sign_when_reports_have_none(
    store: ReportStore, tmp_path: Path
) -> None:
    from mailwarden.signing import KeySettings, MemoryStore, Signer, SigningSettings

    key = tmp_path / "signing.pem"
    key.write_bytes(private_key_pem(KEY))
    own = SigningSettings(keys=(KeySettings("reports.example.net", "sel", str(key)),))
    signer = Signer(MemoryStore(), own)
    await store.add_evaluations([evaluation()])
    relay = FakeRelay()
    s = ReportSender(
        store,
        config(tmp_path, dkim_key="", dkim_selector=""),
        zone(),
        transport=relay,
        clock=lambda: NOW,
        signer=signer,
    )
    await s.build_due(NOW)
    await s.send_due(NOW, everything=True)
    ((_, _, message),) = relay.sent
    # the signer signs with the wall clock (t=): verified now
    (result,) = await DKIMVerifier(zone()).verify(Message.from_bytes(message))
    assert (result.result.value, result.domain) == ("pass", "reports.example.net")
    unsigned = ReportSender(
        store,
        config(tmp_path, dkim_key="", dkim_selector=""),
        zone(),
        transport=FakeRelay(),
        clock=lambda: NOW,
    )
    assert await unsigned._signed(b"From: a@b.example\r\n\r\nx\r\n") == (
        b"From: a@b.example\r\n\r\nx\r\n"
    )
