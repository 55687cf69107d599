"""Compromise detection: thresholds that learn from each user's history, holds and alerts."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.gateway.postfix import Postfix
from tests.submission.helpers import (
    NOW,
    Clock,
    add_user,
    connect_tls,
    login,
    make_settings,
    running,
    send,
)

from mailwarden import metrics
from mailwarden.cli import run
from mailwarden.gateway import DownstreamRelay
from mailwarden.ratelimit import Charge, MemoryCounterStore
from mailwarden.settings import CompromiseSettings
from mailwarden.submission import (
    Alerts,
    CompromiseDetector,
    CompromiseSign,
    Passwords,
    UserStore,
)

DAY = 86_400.0


@pytest.fixture
def users(tmp_path: Path) -> Iterator[UserStore]:
    store = UserStore(tmp_path / "users.sqlite3", clock=lambda: NOW)
    hashed = Passwords().hasher.hash("x")
    for name in ("steady@a.example", "quiet@a.example", "new@a.example"):
        store.add(name, hashed)
    yield store
    store.close()


def detector(users: UserStore, **changes: object) -> tuple[CompromiseDetector, Alerts]:
    posted: list[bytes] = []
    alerts = Alerts("http://127.0.0.1:9/hook", post=lambda url, body: posted.append(body))
    config = CompromiseSettings(**changes)  # type: ignore[arg-type]
    return CompromiseDetector(MemoryCounterStore(), config, users, alerts), alerts


async def history(d: CompromiseDetector, user: str, per_day: dict[int, int]) -> None:
    """`per_day[days_ago]` messages on each earlier day (noon UTC), as the detector counted
    them then (written into its counters directly: the past is not replayed)."""
    today = NOW - NOW % DAY
    for ago, count in per_day.items():
        when = today - ago * DAY + DAY / 2
        await d.store.charge([Charge(f"cx:msgs:{user}", d.history, count)], when)


async def test_a_month_end_burst_of_a_known_sender_is_not_a_compromise(users: UserStore) -> None:
    d, alerts = detector(users)
    usual = {ago: 20 for ago in range(1, 60)}
    usual.update({31: 400, 30: 420, 29: 380})  # last month's end
    await history(d, "steady@a.example", usual)
    for _ in range(450):  # this month's end, a little busier
        await d.accepted("steady@a.example", 0, NOW)
    steady = users.get("steady@a.example")
    assert steady is not None
    assert not steady.held
    assert alerts.sent == []


async def test_a_sudden_jump_over_the_users_history_holds_the_account(users: UserStore) -> None:
    d, alerts = detector(users)
    await history(d, "quiet@a.example", {ago: 20 for ago in range(1, 60)})
    for n in range(1, 302):
        await d.accepted("quiet@a.example", 0, NOW)
        if n == 300:
            quiet = users.get("quiet@a.example")
            assert quiet is not None
            assert not quiet.held  # the floor (300) is not passed yet
    quiet = users.get("quiet@a.example")
    assert quiet is not None
    assert quiet.held
    assert quiet.held_reason is not None
    assert quiet.held_reason.startswith("volume: 301 today, above 300")
    [alert] = alerts.sent
    assert alert.sign == CompromiseSign.VOLUME
    assert alert.numbers["peak"] == 20


async def test_a_busy_history_raises_the_threshold(users: UserStore) -> None:
    d, _ = detector(users)
    await history(d, "steady@a.example", {3: 200})
    for _ in range(600):
        await d.accepted("steady@a.example", 0, NOW)
    steady = users.get("steady@a.example")
    assert steady is not None
    assert not steady.held  # 600 = 3 x 200
    await d.accepted("steady@a.example", 0, NOW)
    steady = users.get("steady@a.example")
    assert steady is not None
    assert steady.held


@pytest.mark.parametrize(
    ("nonexistent", "refused", "held_for"),
    [
        (99, 99, None),
        (100, 100, CompromiseSign.NONEXISTENT),  # Exim's recipe: 100 in an hour
        (0, 150, CompromiseSign.REFUSED),
        (0, 149, None),
    ],
)
async def test_refused_recipients(
    users: UserStore, nonexistent: int, refused: int, held_for: CompromiseSign | None
) -> None:
    d, alerts = detector(users)
    half = nonexistent // 2
    await d.refused("new@a.example", half, refused // 2, NOW)
    await d.refused("new@a.example", nonexistent - half, refused - refused // 2, NOW + 600)
    assert [a.sign for a in alerts.sent] == ([held_for] if held_for else [])
    # an hour later the count starts again
    d2, alerts2 = detector(users)
    await d2.refused("steady@a.example", 60, 60, NOW)
    await d2.refused("steady@a.example", 60, 60, NOW + 3 * 3600)
    assert alerts2.sent == []


async def test_logins_from_many_addresses(users: UserStore) -> None:
    d, alerts = detector(users)
    for n in range(10):
        await d.login("new@a.example", f"192.0.2.{n}", NOW)
        await d.login("new@a.example", f"192.0.2.{n}", NOW + 1)  # the same address again
    assert alerts.sent == []
    await d.login("new@a.example", "2001:db8::1", NOW)
    await d.login("new@a.example", "2001:db8::2", NOW)  # the same /64
    [alert] = alerts.sent
    assert alert.sign == CompromiseSign.LOGINS


async def test_outbound_spam_and_the_webhook(users: UserStore) -> None:
    posted: list[tuple[str, bytes]] = []
    alerts = Alerts("http://127.0.0.1:9/hook", post=lambda url, body: posted.append((url, body)))
    metrics: list[str] = []
    alerts.metric = lambda name, labels: metrics.append(f"{name}{labels}")
    d = CompromiseDetector(MemoryCounterStore(), CompromiseSettings(), users, alerts)
    for _ in range(5):
        await d.spam("new@a.example", NOW)
    [(url, body)] = posted
    assert url == "http://127.0.0.1:9/hook"
    assert b'"sign": "outbound_spam"' in body
    assert metrics == ["mailwarden_submission_alerts_total{'sign': 'outbound_spam'}"]


async def test_a_failing_webhook_is_logged_not_raised(
    users: UserStore, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(url: str, body: bytes) -> None:
        raise OSError("connection refused")

    alerts = Alerts("http://127.0.0.1:9/hook", post=broken)
    d = CompromiseDetector(MemoryCounterStore(), CompromiseSettings(), users, alerts)
    await d.hold("new@a.example", CompromiseSign.SPAM, "test", {})
    assert "alert webhook http://127.0.0.1:9/hook failed" in caplog.text


async def test_nonexistent_recipients_at_postfix_hold_the_account_until_release(
    tmp_path: Path, tls_context: ssl.SSLContext, postfix: Postfix
) -> None:
    """End to end: Postfix refuses unknown users with 550 5.1.1; past the threshold the
    account is held, the next message refused with the reason, and `user release` ends it."""
    settings = make_settings(
        tmp_path,
        smarthost=f"127.0.0.1:{postfix.port}",
        compromise={"nonexistent_per_hour": 5},
    )
    add_user(settings, "alice@a.example")
    relay = DownstreamRelay("127.0.0.1", postfix.port, helo_name="msa.a.example")
    clock = Clock()
    counted = metrics.total("mailwarden_submission_alerts_total", sign="nonexistent_recipients")
    async with running(settings, tls_context, relay, clock=clock) as server:
        client = await connect_tls(server.addresses[1])
        assert await login(client) == 235
        unknown = [f"nobody{n}@example.net" for n in range(5)]
        code, text = await send(client, "alice@a.example", [*unknown, "bob@example.net"])
        assert code == 250, text  # bob got it; the five were refused at RCPT (5.1.1)
        code, text = await send(client, "alice@a.example", ["bob@example.net"])
        assert code == 550
        assert "Account alice@a.example is on hold (nonexistent recipients: 5" in text
        assert [a.sign for a in server.alerts.sent] == ["nonexistent_recipients"]
        alerts_now = metrics.total(
            "mailwarden_submission_alerts_total", sign="nonexistent_recipients"
        )
        assert alerts_now == counted + 1  # /metrics counts the alert
    assert len(postfix.wait_delivered("bob")) == 1
    data_dir = str(tmp_path / "data")
    released = await asyncio.to_thread(  # the command runs its own event loop
        run, ["user", "release", "alice@a.example", "--data-dir", data_dir]
    )
    assert released == 0
    async with running(settings, tls_context, relay, clock=clock) as server:
        client = await connect_tls(server.addresses[1])
        assert await login(client) == 235
        assert (await send(client, "alice@a.example", ["bob@example.net"]))[0] == 250
