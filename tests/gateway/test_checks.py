"""The gateway's checks by SMTP stage (PipelineChecks over the pipeline's stage objects),
driven through the hook objects (no sockets here; the gateway's tests drive them over SMTP)."""

from __future__ import annotations

import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from mailwarden.dkim import sign
from mailwarden.dkim.keygen import key_record
from mailwarden.dns import RdType, StaticResolver
from mailwarden.gateway import PipelineChecks
from mailwarden.gateway.hooks import Event, Session, Transaction
from mailwarden.greylist import GreylistConfig, GreylistStage, MemoryStore
from mailwarden.pipeline import build
from mailwarden.policy import PolicyConfig, Thresholds
from mailwarden.settings import DNSListSettings, GatewaySettings, GreylistSettings, Settings

KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34)))
BODY = b"From: Alice <alice@a.example>\r\nTo: bob@b.example\r\nSubject: hi\r\n\r\nHello.\r\n"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def zone() -> StaticResolver:
    return StaticResolver(
        {
            "a.example": {"TXT": "v=spf1 ip4:192.0.2.0/28 -all"},
            "mail.a.example": {"A": "192.0.2.10"},
            "10.2.0.192.in-addr.arpa": {"PTR": "mail.a.example"},
            "sel._domainkey.a.example": {"TXT": key_record(KEY)},
            "_dmarc.a.example": {"TXT": "v=DMARC1; p=reject"},
            "lax.example": {"TXT": "v=spf1 ?all"},
            "66.113.0.203.zen.spamhaus.org": {"A": "127.0.0.2"},
        }
    )


class Counting:
    def __init__(self, inner: StaticResolver) -> None:
        self.inner = inner
        self.asked: list[tuple[str, RdType]] = []

    async def resolve(self, name: str, rdtype: RdType) -> Any:
        self.asked.append((name, rdtype))
        return await self.inner.resolve(name, rdtype)


def staged(
    resolver: Any, *, clock: Clock | None = None, stage: GreylistStage = GreylistStage.DATA
) -> PipelineChecks:
    clock = clock or Clock()
    settings = Settings(
        gateway=GatewaySettings(hostname="mx.b.example"),
        dnsbl=DNSListSettings(use=("zen",)),
        # a "?all" sender without a reverse name lands between greylist and add_header
        policy=PolicyConfig(scores={"SPF_NEUTRAL": 4.0}, thresholds=Thresholds(add_header=10.0)),
        greylist=GreylistSettings(config=GreylistConfig(min_delay=300, stage=stage)),
    )
    return PipelineChecks(build(settings, resolver, clock=clock, greylist=MemoryStore()))


async def transaction(
    checks: PipelineChecks, ip: str, helo: str, sender: str, message: bytes
) -> tuple[Session, Any]:
    session = Session("s1", ip, 40000, time.time())
    assert await checks.on_connect(session) is None
    session.helo = helo
    assert await checks.on_helo(session) is None
    tx = Transaction("s1.1", sender)
    assert await checks.on_mail(session, tx) is None
    rcpt_reply = await checks.on_rcpt(session, tx, "bob@b.example")
    if rcpt_reply is not None:
        await checks.on_disconnect(session)
        return session, rcpt_reply
    tx.rcpts.append("bob@b.example")
    decision = await checks.on_data(session, tx, message)
    await checks.on_disconnect(session)
    return session, decision


async def test_legitimate_mail_is_relayed_with_our_headers() -> None:
    message = sign(BODY, "a.example", "sel", KEY) + BODY
    _, decision = await transaction(
        staged(zone()), "192.0.2.10", "mail.a.example", "alice@a.example", message
    )
    assert decision.reply is None
    names = [name for name, _ in decision.add_headers]
    assert names[:2] == ["Authentication-Results", "Received-SPF"]
    assert "X-Mailwarden-Verdict" in names
    auth = dict(decision.add_headers)["Authentication-Results"]
    assert "dkim=pass" in auth
    assert "dmarc=pass" in auth
    assert decision.log["action"] == "accept"
    assert decision.remove_fields == ()  # nothing forged in this message
    forged = b"Authentication-Results: mx.b.example; spf=pass\r\n"
    other = b"Authentication-Results: other.example; spf=pass\r\n"
    _, decision = await transaction(
        staged(zone()), "192.0.2.10", "mail.a.example", "alice@a.example", other + forged + message
    )
    assert decision.remove_fields == (1,)  # ours, forged; the other receiver's is kept


async def test_spoof_is_refused_at_data() -> None:
    spoof = BODY.replace(b"alice@a.example", b"ceo@a.example").replace(b"hi", b"pay")
    _, decision = await transaction(
        staged(zone()), "198.51.100.1", "x.example", "ceo@lax.example", spoof
    )
    assert decision.reply is not None
    assert decision.reply.code == 550


async def test_listed_client_is_refused_at_rcpt() -> None:
    _, reply = await transaction(staged(zone()), "203.0.113.66", "x.example", "a@lax.example", BODY)
    assert reply.code == 554


async def test_greylisting_at_data_defers_then_accepts_the_retry() -> None:
    clock = Clock()
    checks = staged(zone(), clock=clock)
    message = BODY.replace(b"alice@a.example", b"news@lax.example")
    _, first = await transaction(checks, "198.51.100.7", "h.lax.example", "n@lax.example", message)
    assert first.reply is not None
    assert (first.reply.code, first.reply.status) == (451, "4.7.1")
    clock.now += 60  # too early
    _, early = await transaction(checks, "198.51.100.7", "h.lax.example", "n@lax.example", message)
    assert early.reply is not None
    clock.now += 300
    _, retry = await transaction(checks, "198.51.100.8", "h.lax.example", "n@lax.example", message)
    assert retry.reply is None  # same /24, after the delay
    assert retry.log["greylist"] == "passed"


async def test_greylisting_at_rcpt_spares_the_body() -> None:
    checks = staged(zone(), stage=GreylistStage.RCPT)
    _, reply = await transaction(checks, "198.51.100.7", "h.lax.example", "n@lax.example", BODY)
    assert reply.code == 451


async def test_each_check_runs_once_per_transaction() -> None:
    counting = Counting(zone())
    checks = staged(counting)
    session = Session("s2", "192.0.2.10", 40001, time.time())
    await checks.on_connect(session)
    for _ in range(3):  # EHLO, STARTTLS, EHLO again with the same name
        session.helo = "mail.a.example"
        await checks.on_helo(session)
    tx = Transaction("s2.1", "alice@a.example", rcpts=["bob@b.example"])
    await checks.on_mail(session, tx)
    await checks.on_rcpt(session, tx, "bob@b.example")
    await checks.on_data(session, tx, sign(BODY, "a.example", "sel", KEY) + BODY)
    await checks.on_disconnect(session)
    await checks.pipeline.drain()
    asked = counting.asked
    assert len(asked) == len(set(asked))  # nothing asked twice: one run per check


async def test_strict_smtp_events_are_scored() -> None:
    checks = staged(zone())
    session = Session("s3", "192.0.2.10", 40002, time.time())
    session.add_event(Event.PREGREET)
    session.helo = "mail.a.example"
    await checks.on_connect(session)
    await checks.on_helo(session)
    tx = Transaction("s3.1", "alice@a.example", rcpts=["bob@b.example"])
    await checks.on_mail(session, tx)
    decision = await checks.on_data(session, tx, sign(BODY, "a.example", "sel", KEY) + BODY)
    assert any(symbol.startswith("PREGREET") for symbol in decision.log["symbols"])
    await checks.on_disconnect(session)


async def test_one_retry_passes_every_recipient() -> None:
    clock = Clock()
    checks = staged(zone(), clock=clock)
    message = BODY.replace(b"alice@a.example", b"news@lax.example")
    rcpts = ["bob@b.example", "carol@b.example", "dave@b.example"]

    async def attempt() -> Any:
        session = Session("s4", "198.51.100.7", 40003, time.time())
        session.helo = "h.lax.example"
        await checks.on_connect(session)
        await checks.on_helo(session)
        tx = Transaction("s4.1", "n@lax.example", rcpts=list(rcpts))
        await checks.on_mail(session, tx)
        decision = await checks.on_data(session, tx, message)
        await checks.on_disconnect(session)
        return decision

    first = await attempt()
    assert first.reply is not None
    assert first.reply.code == 451
    clock.now += 301
    retry = await attempt()
    assert retry.reply is None  # all three triplets were recorded on the first attempt


async def test_rcpt_time_greylisting_without_a_mail_hook_call() -> None:
    """SPF is started at RCPT when the MAIL hook did not run (it is skipped when the gateway
    already holds a deferred refusal)."""
    checks = staged(zone(), stage=GreylistStage.RCPT)
    session = Session("s5", "198.51.100.7", 40004, time.time())
    session.helo = "h.lax.example"
    await checks.on_connect(session)
    await checks.on_helo(session)
    tx = Transaction("s5.1", "n@lax.example")
    reply = await checks.on_rcpt(session, tx, "bob@b.example")
    assert reply is not None
    assert reply.code == 451
    await checks.on_disconnect(session)
