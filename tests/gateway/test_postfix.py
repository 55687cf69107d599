"""End to end over real sockets: swaks as the client, a real Postfix as the downstream."""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.gateway.helpers import HOSTNAME, Client, make_config, require_program, running
from tests.gateway.postfix import USERS, Postfix
from tests.gateway.test_chunking import COMMANDS, bdat
from tests.gateway.test_server import SMUGGLING, smuggling_payload

from mailwarden.gateway import DownstreamRelay, Gateway
from mailwarden.settings import BareLineEnding


@asynccontextmanager
async def gateway_to(
    postfix: Postfix, tmp_path: Path, tls_context: ssl.SSLContext | None = None, **changes: Any
) -> AsyncIterator[Gateway]:
    config = make_config(tmp_path, relay_to=("127.0.0.1", postfix.port), **changes)
    relay = DownstreamRelay("127.0.0.1", postfix.port, helo_name=HOSTNAME, timeouts=config.timeouts)
    async with running(config, relay=relay, tls_context=tls_context) as gateway:
        yield gateway


async def swaks(gateway: Gateway, *args: str) -> tuple[int, str]:
    """Run swaks against the gateway; (exit status, transcript)."""
    program = require_program("swaks")
    host, port = gateway.address
    process = await asyncio.create_subprocess_exec(
        program,
        "--server",
        f"{host}:{port}",
        "--helo",
        "client.example.org",
        "--from",
        "alice@example.com",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(60):
        out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode("utf-8", "replace")


def nothing_delivered(postfix: Postfix) -> bool:
    return all(postfix.delivered(user) == [] for user in USERS)


async def test_message_lands_in_the_maildir_with_our_headers(
    postfix: Postfix, tmp_path: Path
) -> None:
    async with gateway_to(postfix, tmp_path) as gateway:
        status, transcript = await swaks(gateway, "--to", "bob@example.net")
        assert status == 0, transcript
        [record] = gateway.log.records
    [message] = postfix.wait_delivered("bob")
    text = message.decode()
    assert f"by {HOSTNAME} (mailwarden) with ESMTP id {record['id']}" in text
    # Postfix's own Received sits above ours: the order of hops is kept.
    assert text.index("(Postfix)") < text.index("(mailwarden)")
    assert "250 2.0.0 Ok: queued as" in transcript
    # Postfix offers CHUNKING: the message went as one BDAT LAST, which Postfix answers with
    # the size it took (after DATA it says "Ok: queued as").
    assert re.fullmatch(r"250 2\.0\.0 Ok: \d+ bytes queued as \w+", record["downstream"][0])


RELAY_TRICKS = [
    "bob%evil.example@example.net",
    "@relay.example,@evil.example:bob@example.net",
    '"bob@evil.example"@example.net',
    "evil.example!bob@example.net",
    "bob@example.net.",
    "bob@[198.51.100.7]",
    "bob@elsewhere.example",
]


@pytest.mark.parametrize("rcpt", RELAY_TRICKS)
async def test_relay_tricks_are_refused(postfix: Postfix, tmp_path: Path, rcpt: str) -> None:
    async with gateway_to(postfix, tmp_path) as gateway:
        status, transcript = await swaks(gateway, "--to", rcpt)
    assert status == 24, transcript  # swaks: no RCPT accepted
    assert "<** 550 5.7.1" in transcript
    assert "Relay access denied" in transcript
    await asyncio.sleep(0.2)
    assert nothing_delivered(postfix)


@pytest.mark.parametrize("name", sorted(SMUGGLING))
@pytest.mark.parametrize("mode", [BareLineEnding.REJECT, BareLineEnding.NORMALIZE])
async def test_smuggling_yields_at_most_one_message(
    postfix: Postfix, tmp_path: Path, name: str, mode: BareLineEnding
) -> None:
    data = tmp_path / "payload.eml"
    data.write_bytes(smuggling_payload(SMUGGLING[name]))
    async with gateway_to(postfix, tmp_path, bare_lf=mode) as gateway:
        status, transcript = await swaks(
            gateway, "--to", "bob@example.net", "--data", f"@{data}", "--no-data-fixup"
        )
    if mode is BareLineEnding.REJECT:
        assert "<** 554 5.5.2" in transcript, transcript
        await asyncio.sleep(0.3)
        assert nothing_delivered(postfix)
    else:
        assert status == 0, transcript
        [message] = postfix.wait_delivered("bob")
        assert b"smuggled body" in message
        await asyncio.sleep(0.3)
        assert postfix.delivered("carol") == []
        assert len(postfix.delivered("bob")) == 1


async def test_downstream_down_gives_451_then_the_retry_lands(
    postfix: Postfix, tmp_path: Path
) -> None:
    async with gateway_to(postfix, tmp_path) as gateway:
        postfix.stop()
        try:
            status, transcript = await swaks(gateway, "--to", "bob@example.net")
            assert status == 24, transcript
            assert "<** 451 4.4.1" in transcript
        finally:
            postfix.start()
        status, transcript = await swaks(gateway, "--to", "bob@example.net")
        assert status == 0, transcript
    assert len(postfix.wait_delivered("bob")) == 1


async def test_unknown_user_downstream_is_refused_at_rcpt(postfix: Postfix, tmp_path: Path) -> None:
    async with gateway_to(postfix, tmp_path) as gateway:
        status, transcript = await swaks(gateway, "--to", "nobody@example.net,carol@example.net")
    assert status == 0, transcript
    assert "<** 550 5.1.1 <nobody@example.net>" in transcript
    assert len(postfix.wait_delivered("carol")) == 1


async def test_size_and_line_limits(postfix: Postfix, tmp_path: Path) -> None:
    limits = {"max_message_size": 2000, "max_line_length": 200}
    async with gateway_to(postfix, tmp_path, limits=limits) as gateway:
        status, transcript = await swaks(
            gateway, "--to", "bob@example.net", "--body", "x" * 150 + "\n" + ("y" * 150 + "\n") * 20
        )
        assert "250-SIZE 2000" in transcript
        assert "<** 552 5.3.4" in transcript, transcript
        status, transcript = await swaks(gateway, "--to", "bob@example.net", "--body", "z" * 300)
        assert "<** 500 5.6.0" in transcript, transcript
        status, transcript = await swaks(gateway, "--to", "bob@example.net", "--body", "fits")
        assert status == 0, transcript
    [message] = postfix.wait_delivered("bob")
    assert b"fits" in message


async def test_starttls_with_swaks(
    postfix: Postfix, tmp_path: Path, tls_context: ssl.SSLContext
) -> None:
    async with gateway_to(postfix, tmp_path, tls_context) as gateway:
        status, transcript = await swaks(gateway, "--to", "bob@example.net", "--tls")
    assert status == 0, transcript
    assert "TLS started" in transcript
    [message] = postfix.wait_delivered("bob")
    text = message.decode()
    assert "(using TLSv1." in text
    assert "with ESMTPS id" in text


async def test_chunked_message_reaches_postfix_intact(postfix: Postfix, tmp_path: Path) -> None:
    # BDAT content holding a "." line and a whole SMTP dialogue: relayed with DATA, it must be
    # dot-stuffed, or Postfix would end the message there and run the rest as commands.

    content = (
        b"From: alice@example.com\r\nTo: bob@example.net\r\nSubject: chunks\r\n\r\n"
        b".\r\n..\r\n" + COMMANDS + b"end\r\n"
    )
    async with gateway_to(postfix, tmp_path) as gateway:
        client = await Client.connect(gateway.address)
        assert (await client.cmd("EHLO client.example.org"))[0] == 250
        assert (await client.cmd("MAIL FROM:<alice@example.com>"))[0] == 250
        assert (await client.cmd("RCPT TO:<bob@example.net>"))[0] == 250
        half = len(content) // 2
        await client.send(bdat(half) + content[:half])
        assert (await client.reply())[0] == 250
        await client.send(bdat(len(content) - half, last=True) + content[half:])
        code, lines = await client.reply(seconds=30)
        assert code == 250, lines
        assert (await client.cmd("QUIT"))[0] == 221
    [message] = postfix.wait_delivered("bob")
    body = b"\n\n.\n..\n" + COMMANDS + b"end\n"
    assert message.replace(b"\r\n", b"\n").endswith(body.replace(b"\r\n", b"\n"))
    await asyncio.sleep(0.3)
    assert postfix.delivered("carol") == []
