"""Rate limits and brute-force protection over real sockets, on an injected clock."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from tests.submission.helpers import (
    PASSWORD,
    Clock,
    add_user,
    connect_tls,
    login,
    make_settings,
    running,
    send,
)

from mailwarden.gateway import MaildirRelay, Reply, Session
from mailwarden.gateway.sink import _MaildirOutbound


def settings_with(tmp_path: Path, **submission: Any):  # type: ignore[no-untyped-def]
    made = make_settings(tmp_path, **submission)
    add_user(made, "alice@a.example")
    add_user(made, "bob@a.example")
    return made


async def test_a_rate_limit_answers_451_at_the_threshold_and_recovers(
    tmp_path: Path, tls_context: ssl.SSLContext, sink: MaildirRelay
) -> None:
    settings = settings_with(tmp_path, rate={"user": {"messages_per_minute": 3}})
    clock = Clock()
    async with running(settings, tls_context, sink, clock=clock) as server:
        client = await connect_tls(server.addresses[1])
        assert await login(client) == 235
        for _ in range(3):
            assert (await send(client, "alice@a.example", ["x@b.example"]))[0] == 250
            clock.now += 1
        code, text = await send(client, "alice@a.example", ["x@b.example"])
        assert code == 451
        assert text == (
            "4.7.1 Rate limit reached (user alice@a.example may send 3 messages a minute); "
            "try again later"
        )
        # refused attempts are not counted: still refused, then free after the window
        assert (await send(client, "alice@a.example", ["x@b.example"]))[0] == 451
        clock.now += 59
        assert (await send(client, "alice@a.example", ["x@b.example"]))[0] == 451
        clock.now += 6  # the minute and its 5-second slot have passed: all three left
        assert (await send(client, "alice@a.example", ["x@b.example"]))[0] == 250
        # another user is not touched by alice's limit
        other = await connect_tls(server.addresses[1])
        assert await login(other, "bob@a.example") == 235
        assert (await send(other, "bob@a.example", ["x@b.example"]))[0] == 250
    records = [r for r in server.gateways[0].log.records if r.get("rate_limited")]
    assert len(records) == 3  # logged, each time


async def test_recipient_limits(
    tmp_path: Path, tls_context: ssl.SSLContext, sink: MaildirRelay
) -> None:
    settings = settings_with(
        tmp_path,
        rate={
            "user": {"recipients_per_message": 2, "first_time_recipients_per_day": 3},
            "users": {"bob@a.example": {"recipients_per_message": 10}},
        },
    )
    clock = Clock()
    async with running(settings, tls_context, sink, clock=clock) as server:
        client = await connect_tls(server.addresses[1])
        assert await login(client) == 235
        assert (await client.cmd("MAIL FROM:<alice@a.example>"))[0] == 250
        assert (await client.cmd("RCPT TO:<a@b.example>"))[0] == 250
        assert (await client.cmd("RCPT TO:<b@b.example>"))[0] == 250
        assert await client.cmd("RCPT TO:<c@b.example>") == (
            452,
            "4.5.3 Too many recipients for one message (at most 2)",
        )
        await client.cmd("RSET")
        # first-time recipients: 3 a day; writing again to a known one is free
        assert (await send(client, "alice@a.example", ["a@b.example", "b@b.example"]))[0] == 250
        assert (await send(client, "alice@a.example", ["A@b.example", "c@b.example"]))[0] == 250
        code, text = await send(client, "alice@a.example", ["d@b.example"])
        assert code == 451
        assert "3 new recipients a day" in text
        assert (await send(client, "alice@a.example", ["a@b.example", "c@b.example"]))[0] == 250
        # bob's own override lifts the per-message limit
        other = await connect_tls(server.addresses[1])
        assert await login(other, "bob@a.example") == 235
        rcpts = [f"r{n}@b.example" for n in range(3)]
        assert (await send(other, "bob@a.example", rcpts))[0] == 250


class _Refusing:
    """A smarthost that refuses every message at the end of data."""

    async def open(self, session: Session) -> _RefusingOutbound:
        return _RefusingOutbound(Path("/nonexistent"), False)

    async def close(self) -> None:
        return None


class _RefusingOutbound(_MaildirOutbound):
    async def data(self, head: bytes, body: object = b"") -> list[Reply]:
        return [Reply(554, "5.7.1", "smarthost says no")]


async def test_only_messages_the_smarthost_accepted_are_counted(
    tmp_path: Path, tls_context: ssl.SSLContext
) -> None:
    settings = settings_with(tmp_path, rate={"user": {"messages_per_hour": 2}})
    async with running(settings, tls_context, _Refusing()) as server:
        client = await connect_tls(server.addresses[1])
        assert await login(client) == 235
        for _ in range(5):
            code, text = await send(client, "alice@a.example", ["x@b.example"])
            assert (code, text) == (554, "5.7.1 smarthost says no")  # never 451
        assert (
            await server.counters.count(
                "msgs:user:alice@a.example",
                __import__("mailwarden.ratelimit").ratelimit.HOUR,
                Clock().now,
            )
            == 0
        )


async def test_brute_force_slows_down_then_blocks(
    tmp_path: Path, tls_context: ssl.SSLContext, sink: MaildirRelay
) -> None:
    settings = settings_with(
        tmp_path,
        bruteforce={"slow_after": 2, "delay": 1.0, "max_delay": 3.0, "block_client_after": 5},
    )
    clock = Clock()
    async with running(settings, tls_context, sink, clock=clock) as server:
        client = await connect_tls(server.addresses[1])
        for _ in range(5):
            assert await login(client, password="guess") == 535
        assert clock.slept == [1.0, 2.0, 3.0, 3.0]  # doubling, capped
        second = await connect_tls(server.addresses[1])
        # blocked: even the right password is refused, without a word about it
        assert await second.cmd(f"AUTH PLAIN {_plain()}") == (
            454,
            "4.7.0 Too many failed logins from your address; try again later",
        )
        clock.now += 3600 + 60  # the failures left the window
        assert await login(second) == 235


def _plain() -> str:
    from tests.submission.helpers import plain

    return plain("alice@a.example", PASSWORD)


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
async def test_limits_hold_on_every_counter_store(
    tmp_path: Path,
    tls_context: ssl.SSLContext,
    sink: MaildirRelay,
    kind: str,
    request: pytest.FixtureRequest,
) -> None:
    from tests.ratelimit.conftest import open_store

    counters = await open_store(kind, request, tmp_path)
    settings = settings_with(tmp_path, rate={"user": {"messages_per_day": 2}})
    async with running(settings, tls_context, sink, counters=counters) as server:
        client = await connect_tls(server.addresses[1])
        assert await login(client) == 235
        codes = [(await send(client, "alice@a.example", ["x@b.example"]))[0] for _ in range(3)]
    assert codes == [250, 250, 451]
