"""Every transaction the stage objects answer is kept for the dashboard, through the gateway
over a real socket with no code of the gateway's own: found by queue id and Message-ID with
every check and its reason. A store that fails or hangs never changes or delays the reply."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

from tests.gateway.helpers import Client, make_config, running
from tests.pipeline.test_recording import KEY, SPOOF, legitimate, zone

from mailwarden.dkim import sign
from mailwarden.gateway import PipelineChecks
from mailwarden.pipeline import build
from mailwarden.settings import DNSListSettings, Settings
from mailwarden.transactions import (
    Backend,
    MemoryStore,
    Summary,
    TransactionRecord,
    TransactionSettings,
)

REJECTED = (
    b"From: ceo@a.example\r\nTo: bob@example.net\r\nMessage-ID: <spoof-1@x.example>\r\n"
    b"Subject: <b>pay</b>\r\n\r\nnow\r\n"
)


def signed(rest: bytes) -> bytes:
    """A message from alice@a.example signed by a.example (DMARC pass)."""
    message = b"From: alice@a.example\r\nTo: bob@example.net\r\n" + rest
    return sign(message, "a.example", "sel", KEY) + message


async def deliver(address: tuple[str, int], mail_from: str, message: bytes) -> tuple[int, str]:
    client = await Client.connect(address)
    assert (await client.cmd("EHLO mail.a.example"))[0] == 250
    assert (await client.cmd(f"MAIL FROM:<{mail_from}>"))[0] == 250
    assert (await client.cmd("RCPT TO:<bob@example.net>"))[0] == 250
    assert (await client.cmd("DATA"))[0] == 354
    await client.send(message + b".\r\n")
    code, lines = await client.reply()
    await client.cmd("QUIT")
    return code, " ".join(lines)


async def test_the_gateway_keeps_every_transaction_with_its_checks(tmp_path: Path) -> None:
    store = MemoryStore()
    config = make_config(tmp_path)
    settings = Settings(gateway=replace(config), dnsbl=DNSListSettings(use=()))
    pipeline = build(settings, zone(), transactions=store)
    assert pipeline.transactions is not None
    good = signed(b"Message-ID: <good-1@a.example>\r\nSubject: hi\r\n\r\nhello\r\n")
    async with running(config, PipelineChecks(pipeline)) as gateway:
        assert (await deliver(gateway.address, "alice@a.example", good))[0] == 250
        code, text = await deliver(gateway.address, "x@spoof.example", REJECTED)
        assert code == 550
        assert (await deliver(gateway.address, "x@a.example", SPOOF))[0] == 250  # quarantined
    await pipeline.transactions.flush()
    assert await store.count() == 3
    kept = await store.lookup("<good-1@a.example>")
    assert kept is not None
    assert (kept.action, kept.reply_code, kept.dmarc, kept.sender_domain) == (
        "accept",
        0,
        "pass",
        "a.example",
    )
    assert kept.client_ip == "127.0.0.1"
    assert kept.helo == "mail.a.example"
    assert kept.mail_from == "alice@a.example"
    names = {c.name: c for c in kept.checks}
    assert names["spf"].result == "pass"
    assert names["dkim:a.example"].result == "pass"
    assert names["dmarc"].result == "pass"
    # looked up by the gateway's queue id too (the id in its log line)
    assert await store.lookup(kept.queue_id) == kept
    refused = await store.lookup("spoof-1@x.example")
    assert refused is not None
    assert (refused.action, refused.reply_code, refused.dmarc) == ("reject", 550, "fail")
    assert refused.subject == "<b>pay</b>"
    assert refused.reply.startswith("550 5.7.1")
    assert text in refused.reply or refused.reply.endswith(text.split(" ", 1)[-1])
    reason = {c.name: c for c in refused.checks}["dmarc"].reason
    assert reason
    summary: Summary = await store.summary(0, time.time() + 60, 3600)
    assert summary.actions == {"accept": 1, "reject": 1, "add_header": 1}
    assert summary.refused_clients == [("127.0.0.1", 1)]
    await pipeline.drain()


class BrokenStore(MemoryStore):
    def __init__(self, hang: bool) -> None:
        super().__init__()
        self.hang = hang
        self.calls = 0

    async def add(self, records: list[TransactionRecord]) -> None:
        self.calls += 1
        if self.hang:
            await asyncio.sleep(3600)
        raise OSError("disk full")


async def test_a_failing_or_hanging_store_never_touches_the_reply(tmp_path: Path) -> None:
    for hang in (False, True):
        store = BrokenStore(hang)
        config = make_config(tmp_path)
        settings = Settings(gateway=replace(config), dnsbl=DNSListSettings(use=()))
        pipeline = build(settings, zone(), transactions=store)
        assert pipeline.transactions is not None
        pipeline.transactions.interval = 0.0
        pipeline.transactions.write_timeout = 0.5
        async with running(config, PipelineChecks(pipeline)) as gateway:
            started = time.monotonic()
            for _ in range(3):
                assert (await deliver(gateway.address, "alice@a.example", legitimate()))[0] == 250
            assert time.monotonic() - started < 5
            code, _ = await deliver(gateway.address, "x@spoof.example", REJECTED)
            assert code == 550
            await asyncio.sleep(0.05)
        assert store.calls >= 1
        started = time.monotonic()
        await pipeline.drain()  # shutting down is not held up by the store either
        assert time.monotonic() - started < 5
        assert pipeline.transactions.failed == 4
        assert pipeline.transactions.written == 0


def test_the_settings_choose_the_store(tmp_path: Path) -> None:
    from mailwarden.settings import GatewaySettings, settings_from_mapping
    from mailwarden.transactions import SQLiteStore

    base = Settings(gateway=GatewaySettings(data_dir=str(tmp_path)))
    pipeline = build(base, zone(), transactions=True)
    assert pipeline.transactions is not None
    assert isinstance(pipeline.transactions.store, SQLiteStore)
    assert pipeline.transactions.store.file.path == tmp_path / "transactions.sqlite3"
    off = replace(base, transactions=TransactionSettings(backend=Backend.NONE))
    assert build(off, zone(), transactions=True).transactions is None
    assert build(base, zone()).transactions is None  # one-shot front ends keep nothing
    read = settings_from_mapping(
        {"transactions": {"backend": "memory", "keep_days": 2, "max_rows": 1000}}
    )
    assert read.transactions == TransactionSettings(Backend.MEMORY, 2.0, 1000, "")


async def test_a_refusal_at_rcpt_is_kept_and_counted_once(tmp_path: Path) -> None:
    from prometheus_client import REGISTRY

    from mailwarden.settings import settings_from_mapping

    resolver = zone()
    resolver.add("1.0.0.127.zen.spamhaus.org", "A", "127.0.0.2")  # the client, listed (SBL)
    store = MemoryStore()
    config = make_config(tmp_path)
    settings = replace(settings_from_mapping({"dnsbl": {"use": ["zen"]}}), gateway=config)
    pipeline = build(settings, resolver, transactions=store)
    assert pipeline.transactions is not None

    def counted() -> float:
        labels = {"action": "reject", "stage": "rcpt", "code": "554", "enhanced": "5.7.1"}
        return REGISTRY.get_sample_value("mailwarden_transactions_total", labels) or 0.0

    before = counted()
    async with running(config, PipelineChecks(pipeline)) as gateway:
        client = await Client.connect(gateway.address)
        assert (await client.cmd("EHLO mail.a.example"))[0] == 250
        assert (await client.cmd("MAIL FROM:<alice@a.example>"))[0] == 250
        first, _ = await client.cmd("RCPT TO:<bob@example.net>")
        second, _ = await client.cmd("RCPT TO:<carol@example.net>")
        await client.cmd("QUIT")
    assert first >= 500
    assert second >= 500
    await pipeline.transactions.flush()
    assert await store.count() == 1
    summary = await store.summary(0, time.time() + 60, 3600)
    assert summary.refused_clients == [("127.0.0.1", 1)]
    kept = (await store.summary(0, time.time() + 60, 3600)).actions
    assert kept == {"reject": 1}
    assert counted() == before + 1
    await pipeline.drain()
