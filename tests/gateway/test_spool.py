"""Large messages are spooled: they never sit whole in memory, are hashed and relayed as
streams, arrive intact, and leave no file behind whatever happens to the transaction.

Variants: a body over the spool threshold by DATA and by BDAT chunks, a signed large body (DKIM
must verify from the spool), dots and CRLFs cut across read boundaries, a message refused by
the checks, a message over the size limit, a client that disconnects mid-DATA, a memory budget
too small for even one message, and stale files from a crash at start.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.gateway.attack import KEY, send
from tests.gateway.attack import settings as attack_settings
from tests.gateway.helpers import Client, make_config, messages, running

from mailwarden.dkim import sign
from mailwarden.gateway.downstream import dot_stuff, dot_stuff_pieces
from mailwarden.gateway.hooks import AcceptAll, Session, Transaction
from mailwarden.pipeline import MessageDecision


def big_body(lines: int = 20_000) -> bytes:
    return b"".join(b".line %d of a large message, with some text\r\n" % i for i in range(lines))


def spool_files(tmp: Path) -> list[Path]:
    return list((tmp / "data" / "spool").glob("msg-*"))


class Seen(AcceptAll):
    def __init__(self) -> None:
        self.kinds: list[str] = []

    async def on_data(self, session: Session, tx: Transaction, message: object) -> MessageDecision:
        self.kinds.append(type(message).__name__)
        return MessageDecision()


async def test_a_large_message_is_spooled_and_arrives_intact(tmp_path: Path) -> None:
    body = big_body()
    message = b"From: a@example.com\r\nSubject: big\r\n\r\n" + body
    checks = Seen()
    config = make_config(tmp_path, limits={"spool_threshold": 4096})
    async with running(config, checks, maildir=tmp_path / "Maildir") as gateway:
        client = await Client.connect(gateway.address)
        stuffed = message.replace(b"\r\n.", b"\r\n..")
        assert (
            await client.transaction("a@example.com", ["bob@example.net"], stuffed + b".\r\n")
            == 250
        )
        assert spool_files(tmp_path) == []  # removed once delivered
    assert checks.kinds == ["SpooledMessage"]
    [delivered] = messages(tmp_path / "Maildir")
    assert delivered.endswith(message)


async def test_a_spooled_signed_message_verifies(tmp_path: Path) -> None:
    """DKIM's body hash streams the spool file: a signed 1 MB message passes DMARC."""
    header = b"From: Alice <alice@a.example>\r\nSubject: big\r\nTo: bob@example.net\r\n\r\n"
    unsigned = header + big_body()
    signed = sign(unsigned, "a.example", "sel", KEY) + unsigned
    config = attack_settings()
    outcome = await send(
        tmp_path,
        signed,
        mail_from="alice@a.example",
        config=config,
        gateway_changes={"limits": {"spool_threshold": 1024}},
    )
    assert outcome.code == 250, outcome.text
    [delivered] = outcome.delivered
    assert b"dkim=pass" in delivered
    assert b"dmarc=pass" in delivered
    assert delivered.endswith(unsigned[len(header) :])
    assert spool_files(tmp_path) == []


async def test_a_refused_large_message_leaves_no_file(tmp_path: Path) -> None:
    spoof = b"From: ceo@bank.example\r\nSubject: big\r\n\r\n" + big_body(5_000)
    outcome = await send(tmp_path, spoof, gateway_changes={"limits": {"spool_threshold": 1024}})
    assert outcome.code == 550
    assert spool_files(tmp_path) == []


async def test_over_the_size_limit_or_disconnected_leaves_no_file(tmp_path: Path) -> None:
    config = make_config(tmp_path, limits={"spool_threshold": 1024, "max_message_size": 50_000})
    async with running(config, AcceptAll(), maildir=tmp_path / "Maildir") as gateway:
        client = await Client.connect(gateway.address)
        body = b"Subject: x\r\n\r\n" + big_body(5_000) + b".\r\n"
        assert await client.transaction("a@example.com", ["bob@example.net"], body) == 552
        assert spool_files(tmp_path) == []
        client = await Client.connect(gateway.address)
        assert (await client.cmd("EHLO c.example"))[0] == 250
        assert (await client.cmd("MAIL FROM:<a@example.com>"))[0] == 250
        assert (await client.cmd("RCPT TO:<bob@example.net>"))[0] == 250
        assert (await client.cmd("DATA"))[0] == 354
        await client.send(b"Subject: x\r\n\r\n" + big_body(500))
        await asyncio.sleep(0.2)
        assert spool_files(tmp_path)  # being received: spooled
        await client.close()
        for _ in range(50):
            if not spool_files(tmp_path):
                break
            await asyncio.sleep(0.05)
        assert spool_files(tmp_path) == []


async def test_the_memory_budget_spools_even_small_messages(tmp_path: Path) -> None:
    checks = Seen()
    config = make_config(tmp_path, limits={"memory_budget": 0})
    async with running(config, checks, maildir=tmp_path / "Maildir") as gateway:
        client = await Client.connect(gateway.address)
        body = b"Subject: x\r\n\r\nsmall\r\n.\r\n"
        assert await client.transaction("a@example.com", ["bob@example.net"], body) == 250
    assert checks.kinds == ["SpooledMessage"]
    [delivered] = messages(tmp_path / "Maildir")
    assert delivered.endswith(b"Subject: x\r\n\r\nsmall\r\n")


async def test_bdat_chunks_are_spooled_too(tmp_path: Path) -> None:
    checks = Seen()
    config = make_config(tmp_path, limits={"spool_threshold": 1024})
    message = b"Subject: chunks\r\n\r\n" + big_body(2_000)
    async with running(config, checks, maildir=tmp_path / "Maildir") as gateway:
        client = await Client.connect(gateway.address)
        assert (await client.cmd("EHLO c.example"))[0] == 250
        assert (await client.cmd("MAIL FROM:<a@example.com>"))[0] == 250
        assert (await client.cmd("RCPT TO:<bob@example.net>"))[0] == 250
        half = len(message) // 2
        await client.send(b"BDAT %d\r\n" % half + message[:half])
        assert (await client.reply())[0] == 250
        await client.send(b"BDAT %d LAST\r\n" % (len(message) - half) + message[half:])
        assert (await client.reply())[0] == 250
    assert checks.kinds == ["SpooledMessage"]
    [delivered] = messages(tmp_path / "Maildir")
    assert delivered.endswith(message)
    assert spool_files(tmp_path) == []


async def test_stale_spool_files_are_removed_at_start(tmp_path: Path) -> None:
    spool = tmp_path / "data" / "spool"
    spool.mkdir(parents=True)
    (spool / "msg-stale").write_bytes(b"left by a crash")
    async with running(make_config(tmp_path), AcceptAll()):
        assert spool_files(tmp_path) == []


@settings(max_examples=300)
@given(
    st.lists(st.sampled_from([b".", b"\r\n", b"\r", b"\n", b"a", b"..", b"\r\n."]), max_size=30),
    st.lists(st.integers(0, 40), max_size=6),
)
def test_stuffing_in_pieces_equals_stuffing_the_whole(parts: list[bytes], cuts: list[int]) -> None:
    message = b"".join(parts)
    pieces, start = [], 0
    for cut in sorted(set(cuts)):
        pieces.append(message[start:cut])
        start = cut
    pieces.append(message[start:])
    assert b"".join(dot_stuff_pieces(pieces)) == dot_stuff(message)


def test_make_config_takes_limits(tmp_path: Path) -> None:
    assert replace(make_config(tmp_path, limits={"spool_threshold": 7}).limits).spool_threshold == 7
