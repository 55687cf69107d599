"""A DNS failure never turns a fail into an accept; every stage answers within its deadline.

Attacker's variants: the DMARC record of the spoofed p=reject domain cannot be fetched
(timeout, SERVFAIL), SPF cannot be fetched while DKIM fails, the sender's DNS answers so slowly
that a lookup outlives the stage, and every DNS server is silent (a real UDP socket that
never answers). The spoof gets 4xx, never 250, within the deadline; the explicit "accept"
choice keeps the old behaviour, and a message whose author domain is authenticated is not held
up by an unrelated failure.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from tests.gateway.attack import send, settings, signed, zone_data

from mailwarden.dns import StaticResolver
from mailwarden.dns.cache import CachingResolver
from mailwarden.dns.static import Failure
from mailwarden.dns.system import SystemResolver
from mailwarden.policy import TemperrorHandling
from mailwarden.settings import Deadlines

DEFERRED = 451
SPOOF = b"From: CEO <ceo@bank.example>\r\n"


@pytest.mark.parametrize("failure", list(Failure))
async def test_an_unreachable_dmarc_record_defers_the_spoof(
    tmp_path: Path, failure: Failure
) -> None:
    resolver = StaticResolver(zone_data())
    resolver.fail("_dmarc.bank.example", "TXT", failure)
    outcome = await send(tmp_path, signed(SPOOF), resolver=resolver)
    assert outcome.code == DEFERRED, outcome.text
    assert outcome.text.startswith("4.7.0")
    assert outcome.delivered == []


async def test_spf_unreachable_and_dkim_failing_defers_rather_than_accepts(tmp_path: Path) -> None:
    resolver = StaticResolver(zone_data())
    resolver.fail("bank.example", "TXT")  # SPF cannot be fetched: it might have passed
    outcome = await send(tmp_path, signed(SPOOF), resolver=resolver)
    assert outcome.code == DEFERRED
    assert outcome.delivered == []


async def test_accept_mode_is_an_explicit_choice(tmp_path: Path) -> None:
    """on_temperror = "accept" judges on what is known: documented as a risk."""
    resolver = StaticResolver(zone_data())
    resolver.fail("_dmarc.bank.example", "TXT")
    config = settings(on_temperror=TemperrorHandling.ACCEPT)
    outcome = await send(tmp_path, signed(SPOOF), resolver=resolver, config=config)
    assert outcome.code != DEFERRED
    [record] = outcome.log
    assert "DMARC_TEMPERROR" in " ".join(record["symbols"])


async def test_an_unrelated_failure_does_not_hold_up_authenticated_mail(tmp_path: Path) -> None:
    resolver = StaticResolver(zone_data())
    resolver.fail("broken._domainkey.c.example", "TXT")
    message = signed(b"From: Alice <alice@a.example>\r\n")
    from tests.gateway.attack import KEY

    from mailwarden.dkim import sign

    # a second signature whose key cannot be fetched (temperror), besides a.example's pass
    extra = sign(message, "c.example", "broken", KEY)
    outcome = await send(tmp_path, extra + message, mail_from="alice@a.example", resolver=resolver)
    assert outcome.code == 250, outcome.text


class SlowResolver(StaticResolver):
    """Answers, but only after `delay` seconds: longer than a stage may take."""

    def __init__(self, delay: float) -> None:
        super().__init__(zone_data())
        self.delay = delay

    async def resolve(self, name, rdtype):  # type: ignore[no-untyped-def]
        if name.endswith("bank.example"):
            await asyncio.sleep(self.delay)
        return await super().resolve(name, rdtype)


SHORT = Deadlines(connect=1.0, helo=1.0, mail=1.0, rcpt=1.0, data=2.0)


async def test_a_lookup_that_outlives_its_stage_is_a_temperror(tmp_path: Path) -> None:
    config = replace(settings(), deadlines=SHORT)
    started = time.monotonic()
    outcome = await send(tmp_path, signed(SPOOF), resolver=SlowResolver(30.0), config=config)
    elapsed = time.monotonic() - started
    assert outcome.code == DEFERRED, outcome.text
    assert elapsed < SHORT.data + SHORT.rcpt + 3  # not the 30 s the lookups would take
    [record] = outcome.log
    assert "mail" in record["timed_out"] or "dmarc" in record["timed_out"]


@pytest.fixture
def silent_dns() -> Iterator[str]:
    """A UDP socket on loopback that reads queries and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


async def test_every_dns_server_silent_gets_4xx_within_the_deadline(
    tmp_path: Path, silent_dns: str
) -> None:
    """The real resolver against a server that never answers: each query would take
    timeout x (retries + 1) = 20 s; the stages cut that short and the spoof is deferred."""
    resolver = CachingResolver(SystemResolver([silent_dns], timeout=5.0, retries=3))
    config = replace(settings(), deadlines=SHORT)
    started = time.monotonic()
    outcome = await send(tmp_path, signed(SPOOF), resolver=resolver, config=config)
    elapsed = time.monotonic() - started
    assert outcome.code == DEFERRED, outcome.text
    assert outcome.delivered == []
    assert elapsed < SHORT.data + SHORT.rcpt + 3


async def test_default_deadlines_bound_the_answer(tmp_path: Path, silent_dns: str) -> None:
    """With the embedded defaults and every server silent, the end of data answers 4xx within
    about 20 s (the issue's bound), never 250."""
    resolver = CachingResolver(SystemResolver([silent_dns], timeout=5.0, retries=2))
    defaults = settings()
    assert (defaults.deadlines.data, defaults.deadlines.rcpt) == (20.0, 10.0)
    started = time.monotonic()
    outcome = await send(tmp_path, signed(SPOOF), resolver=resolver, config=defaults)
    elapsed = time.monotonic() - started
    assert outcome.code == DEFERRED
    assert elapsed < defaults.deadlines.data + defaults.deadlines.rcpt + 3
