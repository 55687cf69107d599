"""The gateway with every check, end to end: swaks as the client, a real Postfix downstream,
the DNS from a static zone, the greylisting clock injected (never slept)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519
from tests.gateway.helpers import HOSTNAME, make_config, require_program, running
from tests.gateway.postfix import USERS, Postfix

from mailwarden.dkim import sign
from mailwarden.dkim.keygen import key_record
from mailwarden.dns import StaticResolver
from mailwarden.gateway import DownstreamRelay, Gateway, PipelineChecks
from mailwarden.greylist import MemoryStore
from mailwarden.pipeline import build
from mailwarden.policy import PolicyConfig, Thresholds
from mailwarden.settings import DNSListSettings, GatewaySettings, Settings

KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(40, 72)))


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def zone() -> StaticResolver:
    """a.example: a clean sender at 127.0.0.1 (SPF, DKIM, DMARC p=reject, forward-confirmed
    reverse name); bank.example: p=reject, and never sends from here; lax.example: '?all'."""
    return StaticResolver(
        {
            "a.example": {"TXT": "v=spf1 ip4:127.0.0.0/8 -all"},
            "mail.a.example": {"A": "127.0.0.1"},
            "1.0.0.127.in-addr.arpa": {"PTR": "mail.a.example"},
            "sel._domainkey.a.example": {"TXT": key_record(KEY)},
            "_dmarc.a.example": {"TXT": "v=DMARC1; p=reject"},
            "bank.example": {"TXT": "v=spf1 ip4:198.51.100.0/24 -all"},
            "_dmarc.bank.example": {"TXT": "v=DMARC1; p=reject"},
            "lax.example": {"TXT": "v=spf1 ?all"},
        }
    )


def checks(clock: Clock) -> PipelineChecks:
    settings = Settings(
        gateway=GatewaySettings(hostname=HOSTNAME),
        dnsbl=DNSListSettings(use=()),
        # a '?all' sender with a forged-looking HELO lands between greylist and add_header
        policy=PolicyConfig(scores={"SPF_NEUTRAL": 4.0}, thresholds=Thresholds(add_header=10.0)),
    )
    return PipelineChecks(build(settings, zone(), clock=clock, greylist=MemoryStore()))


def signed_message(author: str = "alice@a.example") -> bytes:
    body = (
        f"From: Alice <{author}>\r\nTo: bob@example.net\r\nSubject: lunch\r\n"
        "Date: Mon, 23 Nov 2026 12:00:00 +0000\r\nMessage-ID: <e2e@a.example>\r\n\r\n"
        "See you at noon.\r\n"
    ).encode()
    return sign(body, "a.example", "sel", KEY) + body


async def swaks(gateway: Gateway, helo: str, sender: str, message: bytes, tmp: Path) -> str:
    """swaks sending `message` (its own headers and body, as given); the transcript."""
    data = tmp / f"message-{time.monotonic_ns()}.eml"
    data.write_bytes(message)
    host, port = gateway.address
    process = await asyncio.create_subprocess_exec(
        require_program("swaks"),
        "--server",
        f"{host}:{port}",
        "--helo",
        helo,
        "--from",
        sender,
        "--to",
        "bob@example.net",
        "--data",
        f"@{data}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(60):
        out, _ = await process.communicate()
    return out.decode("utf-8", "replace")


def gateway_config(postfix: Postfix, tmp: Path) -> GatewaySettings:
    return make_config(tmp, relay_to=("127.0.0.1", postfix.port))


def relay_for(postfix: Postfix, config: GatewaySettings) -> DownstreamRelay:
    return DownstreamRelay("127.0.0.1", postfix.port, helo_name=HOSTNAME, timeouts=config.timeouts)


async def test_legitimate_signed_mail_lands_with_our_headers(
    postfix: Postfix, tmp_path: Path
) -> None:
    config = gateway_config(postfix, tmp_path)
    async with running(config, checks(Clock()), relay=relay_for(postfix, config)) as gateway:
        transcript = await swaks(
            gateway, "mail.a.example", "alice@a.example", signed_message(), tmp_path
        )
        assert "250 2.0.0 Ok: queued as" in transcript, transcript
        [record] = gateway.log.records
    [message] = postfix.wait_delivered("bob")
    text = message.decode()
    headers = text.split("\r\n\r\n", 1)[0]
    assert f"Authentication-Results: {HOSTNAME};" in headers
    for clause in ("spf=pass", "dkim=pass", "dmarc=pass", "iprev=pass"):
        assert clause in headers
    assert "Received-SPF: pass" in headers
    assert "X-Mailwarden-Verdict: action=accept" in headers
    assert "X-Spam-Flag" not in headers
    assert record["action"] == "accept"


async def test_spoofed_from_under_p_reject_is_refused(postfix: Postfix, tmp_path: Path) -> None:
    config = gateway_config(postfix, tmp_path)
    async with running(config, checks(Clock()), relay=relay_for(postfix, config)) as gateway:
        spoof = signed_message().replace(
            b"From: Alice <alice@a.example>", b"From: <ceo@bank.example>"
        )
        transcript = await swaks(gateway, "mail.a.example", "alice@a.example", spoof, tmp_path)
    assert "550 5.7.1 Rejected by the DMARC policy of bank.example" in transcript, transcript
    await asyncio.sleep(0.5)
    assert all(postfix.delivered(user) == [] for user in USERS)


async def test_greylisting_defers_then_accepts_the_retry(postfix: Postfix, tmp_path: Path) -> None:
    clock = Clock()
    config = gateway_config(postfix, tmp_path)
    message = signed_message().replace(b"alice@a.example", b"news@lax.example")
    async with running(config, checks(clock), relay=relay_for(postfix, config)) as gateway:
        first = await swaks(gateway, "client.lax.example", "news@lax.example", message, tmp_path)
        assert "451 4.7.1" in first, first
        clock.now += 60  # a retry too soon is deferred again
        early = await swaks(gateway, "client.lax.example", "news@lax.example", message, tmp_path)
        assert "451 4.7.1" in early, early
        assert all(postfix.delivered(user) == [] for user in USERS)
        clock.now += 300  # past the minimum delay: the retry passes, nothing slept
        retry = await swaks(gateway, "client.lax.example", "news@lax.example", message, tmp_path)
        assert "250 2.0.0 Ok: queued as" in retry, retry
    [delivered] = postfix.wait_delivered("bob")
    assert b"X-Mailwarden-Verdict: action=greylist" in delivered
