"""A gateway and its HTTP API (with the dashboard) that handled known traffic, for the
dashboard's tests and the browser test.

Traffic, all from 127.0.0.1 through the real gateway: three legitimate signed messages from
a.example (accepted, DMARC pass); a spoof of a.example (p=reject: refused with 550); a spoof
of bank.example (p=quarantine: add_header); a message from soft.example whose SPF softfails
(greylisted: 451, then passed on the retry); and a message whose Subject and Message-ID are
markup. A transaction with a hostile symbol, domain and client is added to the store directly
(no mail can name a symbol).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519
from tests.gateway.helpers import Client, make_config
from tests.gateway.helpers import running as gateway_running

from mailwarden.dashboard import dashboard
from mailwarden.dkim import sign
from mailwarden.dkim.keygen import key_record
from mailwarden.dns import StaticResolver
from mailwarden.gateway import PipelineChecks
from mailwarden.greylist import GreylistConfig
from mailwarden.greylist import MemoryStore as GreylistMemory
from mailwarden.http import HTTPServer
from mailwarden.pipeline import Pipeline, build
from mailwarden.settings import GreylistSettings, HTTPSettings, settings_from_mapping
from mailwarden.transactions import Check, MemoryStore, TransactionRecord, TransactionStore

KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(21, 53)))
TOKEN = "dashboard-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOSTILE_SUBJECT = "<script>alert('subject')</script><img src=x onerror=alert(1)>"
HOSTILE_ID = '"><script>alert("id")</script>@evil.example'
HOSTILE_SYMBOL = "<svg/onload=alert('symbol')>"
HOSTILE_DOMAIN = "<b>evil</b>.example"


def zone() -> StaticResolver:
    return StaticResolver(
        {
            "a.example": {"TXT": "v=spf1 ip4:127.0.0.0/8 -all"},
            "sel._domainkey.a.example": {"TXT": key_record(KEY)},
            "_dmarc.a.example": {"TXT": "v=DMARC1; p=reject"},
            "bank.example": {"TXT": "v=spf1 ip4:198.51.100.0/24 -all"},
            "_dmarc.bank.example": {"TXT": "v=DMARC1; p=quarantine"},
            "soft.example": {"TXT": "v=spf1 ip4:198.51.100.0/24 ~all"},
        }
    )


def signed(message_id: str, subject: str = "lunch") -> bytes:
    body = (
        f"From: Alice <alice@a.example>\r\nTo: bob@example.net\r\nSubject: {subject}\r\n"
        f"Message-ID: <{message_id}>\r\n\r\nSee you at noon.\r\n"
    ).encode()
    return sign(body, "a.example", "sel", KEY) + body


def unsigned(author: str, message_id: str, subject: str) -> bytes:
    return (
        f"From: {author}\r\nTo: bob@example.net\r\nSubject: {subject}\r\n"
        f"Message-ID: <{message_id}>\r\n\r\nHello.\r\n"
    ).encode()


async def deliver(address: tuple[str, int], mail_from: str, message: bytes) -> int:
    client = await Client.connect(address)
    assert (await client.cmd("EHLO mail.a.example"))[0] == 250
    assert (await client.cmd(f"MAIL FROM:<{mail_from}>"))[0] == 250
    code, _ = await client.cmd("RCPT TO:<bob@example.net>")
    if code != 250:
        await client.cmd("QUIT")
        return code
    assert (await client.cmd("DATA"))[0] == 354
    await client.send(message + b".\r\n")
    code, _ = await client.reply()
    await client.cmd("QUIT")
    return code


@dataclass
class Traffic:
    gateway: tuple[str, int]
    api: HTTPServer
    pipeline: Pipeline
    store: TransactionStore
    codes: dict[str, list[int]]

    def url(self, path: str) -> str:
        host, port = self.api.address
        return f"http://{host}:{port}{path}"


async def send_known_traffic(address: tuple[str, int]) -> dict[str, list[int]]:
    codes: dict[str, list[int]] = {}

    async def send(kind: str, mail_from: str, message: bytes) -> None:
        codes.setdefault(kind, []).append(await deliver(address, mail_from, message))

    for n in range(3):
        await send("legitimate", "alice@a.example", signed(f"good-{n}@a.example"))
    await send("spoof", "x@spoof.example", unsigned("ceo@a.example", "spoof@x.example", "pay"))
    await send("quarantine", "x@a.example", unsigned("ceo@bank.example", "q@x.example", "wire"))
    await send(
        "greylisted", "news@soft.example", unsigned("news@soft.example", "g@soft.example", "hi")
    )
    await send(
        "greylisted", "news@soft.example", unsigned("news@soft.example", "g@soft.example", "hi")
    )
    await send("hostile", "alice@a.example", signed(HOSTILE_ID, HOSTILE_SUBJECT))
    return codes


@asynccontextmanager
async def known_traffic(
    tmp_path: Path,
    store: TransactionStore | None = None,
    *,
    token: str = TOKEN,
    transactions: bool = False,
) -> AsyncIterator[Traffic]:
    """The gateway (and the API on the same pipeline) after the known traffic; `store` (a
    memory store by default) keeps the transactions, or with `transactions` the store the
    settings name (SQLite in the data directory), as `serve` does."""
    kept: TransactionStore = store if store is not None else MemoryStore()
    config = make_config(tmp_path)
    base = settings_from_mapping(
        {"dnsbl": {"use": []}, "policy": {"scores": {"SPF_SOFTFAIL": 2.5}}}  # greylisted (4.5)
    )
    settings = replace(
        base,
        gateway=replace(config),
        # the retry passes at once (no waiting in a test); one pass auto-allows the network
        greylist=GreylistSettings(
            enabled=True, config=GreylistConfig(min_delay=0.0, auto_allow_after=1)
        ),
        http=replace(HTTPSettings(), token=token),
    )
    greylist = GreylistMemory()
    pipeline = build(settings, zone(), greylist=greylist, transactions=transactions or kept)
    if pipeline.transactions is not None:
        kept = pipeline.transactions.store
    async with gateway_running(config, PipelineChecks(pipeline)) as gateway:
        codes = await send_known_traffic(gateway.address)
        hostile = (
            [
                TransactionRecord(
                    time=time.time(),
                    queue_id="HOSTILE0001",
                    message_id="hostile@evil.example",
                    client_ip="<u>192.0.2.66</u>",
                    sender_domain=HOSTILE_DOMAIN,
                    subject=HOSTILE_SUBJECT,
                    action="reject",
                    reply_code=554,
                    reply="554 5.7.1 <b>no</b>",
                    dmarc="fail",
                    symbols=(HOSTILE_SYMBOL,),
                    checks=(Check(HOSTILE_SYMBOL, "<fail>", HOSTILE_SUBJECT),),
                )
            ]
            if not transactions
            else []
        )
        with contextlib.suppress(OSError):  # a store that is down (the tests of that case)
            await kept.add(hostile)
        async with HTTPServer(
            settings, pipeline, ("127.0.0.1", 0), greylist_store=greylist, extensions=[dashboard()]
        ) as api:
            yield Traffic(gateway.address, api, pipeline, kept, codes)
    await pipeline.drain()
