"""What one client can hold, over real sockets: junk commands, session time, data rate, slots.

Issue 11 §4. The attacker's variants tried here:

- junk commands: NOOP, RSET, VRFY, EXPN, HELP, repeated EHLO, repeated HELO, empty BDAT
  chunks, and a mix of them, up to the limit and one beyond (421 4.7.0);
- session time: a client idle below the command timeout, one sending a NOOP just often enough,
  one trickling a command line a byte at a time, one still sending its message when the time
  is up (421 4.4.2, nothing delivered);
- data rate (slowloris): a message trickled a line at a time, a byte at a time inside one long
  line, in bursts with pauses just below the block timeout, and a BDAT chunk trickled
  (421 4.4.2, nothing delivered);
- connection slots: a burst of 30 connections against a limit of 20 (total, and per client),
  and a burst of connections reset at once, which must give their slots back.

And what must still work: the EHLO that STARTTLS asks for is not junk, the junk count starts
again after each delivered message (a sender reusing its connection for many messages), a
client sending fast enough may take longer than the block timeout, and every admitted
connection of a burst is served.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from pathlib import Path

import pytest
from tests.gateway.helpers import SIMPLE, Client, make_config, messages, running

from mailwarden.gateway import Gateway

OK, READY, BYE, CLOSING, START_INPUT, HELP = 250, 220, 221, 421, 354, 214
NOT_IMPLEMENTED = 502

JUNK = {
    "NOOP": ("NOOP", OK),
    "RSET": ("RSET", OK),
    "VRFY": ("VRFY bob", NOT_IMPLEMENTED),
    "EXPN": ("EXPN staff", NOT_IMPLEMENTED),
    "HELP": ("HELP", HELP),
    "EHLO": ("EHLO client.example.org", OK),
    "HELO": ("HELO client.example.org", OK),
}


@pytest.mark.parametrize("name", sorted(JUNK))
async def test_junk_commands_are_limited(tmp_path: Path, name: str) -> None:
    line, answer = JUNK[name]
    config = make_config(tmp_path, limits={"max_junk_commands": 5})
    async with running(config) as gateway:
        client = await Client.connect(gateway.address)
        assert (await client.cmd("EHLO client.example.org"))[0] == OK  # the first is not junk
        for _ in range(5):
            assert (await client.cmd(line))[0] == answer
        code, text = await client.cmd(line)
        assert (code, text[:5]) == (CLOSING, "4.7.0")
        assert await client.closed()
        await asyncio.sleep(0.05)
    assert "TOO_MANY_JUNK_COMMANDS" in gateway.log.records[-1]["events"]


async def test_mixed_junk_and_empty_chunks_count_together(tmp_path: Path) -> None:
    config = make_config(tmp_path, limits={"max_junk_commands": 6})
    async with running(config) as gateway:
        client = await Client.connect(gateway.address)
        await client.cmd("EHLO client.example.org")
        await client.cmd("MAIL FROM:<a@example.com>")
        await client.cmd("RCPT TO:<bob@example.net>")
        for line in ["NOOP", "BDAT 0", "HELP", "BDAT 0", "NOOP", "BDAT 0"]:
            assert (await client.cmd(line))[0] in (OK, HELP)
        code, text = await client.cmd("BDAT 0")
        assert (code, text[:5]) == (CLOSING, "4.7.0")
        assert await client.closed()


async def test_empty_chunks_after_a_failed_chunk_are_junk(tmp_path: Path) -> None:
    # After a refused chunk, further chunks get the same answer without counting as errors:
    # empty ones must still count as junk, or they would be a free way to hold the session.
    config = make_config(tmp_path, limits={"max_junk_commands": 3})
    async with running(config) as gateway:
        client = await Client.connect(gateway.address)
        await client.cmd("EHLO client.example.org")
        await client.cmd("MAIL FROM:<a@example.com>")
        await client.cmd("RCPT TO:<bob@example.net>")
        await client.send(b"BDAT 4\r\na\nb\n")  # bare LF: the transaction fails
        assert (await client.reply())[0] == 554
        for _ in range(3):
            assert (await client.cmd("BDAT 0"))[0] == 554
        assert (await client.cmd("BDAT 0"))[0] == CLOSING


async def test_the_default_junk_limit_is_postfixs(tmp_path: Path) -> None:
    async with running(make_config(tmp_path)) as gateway:
        client = await Client.connect(gateway.address)
        assert (await client.cmd("EHLO client.example.org"))[0] == OK
        await client.send(b"NOOP\r\n" * 101)  # pipelined
        codes = [(await client.reply())[0] for _ in range(101)]
        assert codes == [OK] * 100 + [CLOSING]


async def test_the_junk_count_starts_again_after_a_delivery(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    config = make_config(tmp_path, limits={"max_junk_commands": 3})
    async with running(config, maildir=maildir) as gateway:
        client = await Client.connect(gateway.address)
        await client.cmd("EHLO client.example.org")
        for _ in range(6):  # a sender reusing its connection: RSET and NOOP between messages
            code = await client.transaction(
                "a@example.com", ["bob@example.net"], SIMPLE, ehlo=False
            )
            assert code == OK
            assert (await client.cmd("RSET"))[0] == OK
            assert (await client.cmd("NOOP"))[0] == OK
        assert (await client.cmd("QUIT"))[0] == BYE
    assert len(messages(maildir)) == 6


async def test_the_ehlo_after_starttls_is_not_junk(tmp_path: Path, tls_context: object) -> None:
    config = make_config(tmp_path, limits={"max_junk_commands": 1})
    async with running(config, tls_context=tls_context) as gateway:  # type: ignore[arg-type]
        client = await Client.connect(gateway.address)
        assert (await client.cmd("EHLO client.example.org"))[0] == OK
        assert (await client.cmd("NOOP"))[0] == OK  # junk 1 of 1
        assert (await client.cmd("STARTTLS"))[0] == READY
        await client.starttls()
        assert (await client.cmd("EHLO client.example.org"))[0] == OK  # required: not junk
        code, _ = await client.cmd("EHLO client.example.org")  # repeated: junk 2 of 1
        assert code == CLOSING


# Session time.


async def test_an_idle_session_ends_at_the_session_limit(tmp_path: Path) -> None:
    config = make_config(tmp_path, timeouts={"session": 0.5, "command": 30})
    async with running(config) as gateway:
        started = time.monotonic()
        client = await Client.connect(gateway.address)
        code, lines = await client.reply(seconds=5)
        assert (code, lines[0][:5]) == (CLOSING, "4.4.2")
        assert "session time" in lines[0]
        assert await client.closed()
        assert 0.4 < time.monotonic() - started < 3
        await asyncio.sleep(0.05)
    assert gateway.log.records[-1]["reason"] == "session time limit"


async def trickle(client: Client, data: bytes, pause: float, step: int = 1) -> int:
    """Send `data` `step` octets at a time; the number of octets the server took before
    closing the connection."""
    for index in range(0, len(data), step):
        try:
            await client.send(data[index : index + step])
        except ConnectionError:
            return index
        await asyncio.sleep(pause)
    return len(data)


@pytest.mark.parametrize(
    "variant",
    ["noop every 0.1 s", "a command a byte at a time"],
)
async def test_a_busy_session_ends_at_the_session_limit(tmp_path: Path, variant: str) -> None:
    config = make_config(tmp_path, timeouts={"session": 0.8, "command": 30})
    async with running(config) as gateway:
        client = await Client.connect(gateway.address)
        started = time.monotonic()
        if variant == "noop every 0.1 s":
            while True:
                code, text = await client.cmd("NOOP")
                if code != OK:
                    break
                await asyncio.sleep(0.1)
        else:
            sender = asyncio.create_task(trickle(client, b"EHLO " + b"a" * 400, 0.02))
            code, lines = await client.reply(seconds=5)
            text = " ".join(lines)
            sender.cancel()
        assert (code, text[:5]) == (CLOSING, "4.4.2")
        assert 0.7 < time.monotonic() - started < 3
        assert await client.closed()


async def test_a_message_still_sent_at_the_session_limit_is_not_delivered(
    tmp_path: Path,
) -> None:
    maildir = tmp_path / "Maildir"
    config = make_config(tmp_path, timeouts={"session": 0.8})
    async with running(config, maildir=maildir) as gateway:
        client = await Client.connect(gateway.address)
        await client.cmd("EHLO client.example.org")
        await client.cmd("MAIL FROM:<a@example.com>")
        await client.cmd("RCPT TO:<bob@example.net>")
        assert (await client.cmd("DATA"))[0] == START_INPUT
        sender = asyncio.create_task(
            trickle(client, b"Subject: x\r\n\r\n" + b"line\r\n" * 500, 0.01, 6)
        )
        code, lines = await client.reply(seconds=5)
        sender.cancel()
        assert (code, lines[0][:5]) == (CLOSING, "4.4.2")
    assert messages(maildir) == []


# Minimum data rate (slowloris).

SLOW = {"data_block": 1.0}  # each octet earns 1/200 s, at most 1 s ahead
RATE = {"min_data_rate": 200}


async def open_data(client: Client) -> None:
    await client.cmd("EHLO client.example.org")
    await client.cmd("MAIL FROM:<a@example.com>")
    await client.cmd("RCPT TO:<bob@example.net>")
    assert (await client.cmd("DATA"))[0] == START_INPUT


SLOWLORIS = {
    # (what is sent, octets a step, pause): each well below 200 octets a second
    "a line at a time": (b"Subject: x\r\n\r\n" + b"a\r\n" * 400, 3, 0.05),
    "a byte at a time": (b"Subject: x\r\n\r\n" + b"b" * 900 + b"\r\n", 1, 0.02),
    "bursts below the block timeout": (b"Subject: x\r\n\r\n" + b"c" * 78 + b"\r\n" * 1, 80, 0.9),
}


@pytest.mark.parametrize("name", sorted(SLOWLORIS))
async def test_slow_data_is_cut_off(tmp_path: Path, name: str) -> None:
    data, step, pause = SLOWLORIS[name]
    if name.startswith("bursts"):
        data = data * 10
    maildir = tmp_path / "Maildir"
    config = make_config(tmp_path, timeouts=SLOW, limits=RATE)
    async with running(config, maildir=maildir) as gateway:
        client = await Client.connect(gateway.address)
        await open_data(client)
        started = time.monotonic()
        sender = asyncio.create_task(trickle(client, data, pause, step))
        code, lines = await client.reply(seconds=10)
        sender.cancel()
        assert (code, lines[0][:5]) == (CLOSING, "4.4.2")
        assert 1.0 < time.monotonic() - started < 6
        assert await client.closed()
        await asyncio.sleep(0.05)
    assert messages(maildir) == []
    if name != "a byte at a time":  # that one also outlasts the line's block timeout
        assert "data rate" in lines[0]
        record = gateway.log.records[-1]
        assert "SLOW_DATA" in record["events"]
        assert record["reply"] == "aborted: data rate too low"


async def test_a_trickled_chunk_is_cut_off(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    config = make_config(tmp_path, timeouts=SLOW, limits=RATE)
    async with running(config, maildir=maildir) as gateway:
        client = await Client.connect(gateway.address)
        await client.cmd("EHLO client.example.org")
        await client.cmd("MAIL FROM:<a@example.com>")
        await client.cmd("RCPT TO:<bob@example.net>")
        await client.send(b"BDAT 2000 LAST\r\n")
        sender = asyncio.create_task(trickle(client, b"d" * 2000, 0.02, 1))
        code, lines = await client.reply(seconds=10)
        sender.cancel()
        assert (code, lines[0][:5]) == (CLOSING, "4.4.2")
    assert messages(maildir) == []


async def test_a_client_fast_enough_may_take_longer_than_the_block_timeout(
    tmp_path: Path,
) -> None:
    maildir = tmp_path / "Maildir"
    config = make_config(tmp_path, timeouts=SLOW, limits=RATE)
    async with running(config, maildir=maildir) as gateway:
        client = await Client.connect(gateway.address)
        await open_data(client)
        started = time.monotonic()
        block = b"z" * 98 + b"\r\n"
        await trickle(client, b"Subject: x\r\n\r\n" + block * 8, 0.3, 100)  # ~330 octets/s
        await client.send(b".\r\n")
        assert (await client.reply(seconds=5))[0] == OK
        assert time.monotonic() - started > 2.0  # twice the block timeout
    assert len(messages(maildir)) == 1


# Connection slots: a burst of N over the limit refuses at most N.


async def burst(gateway: Gateway, count: int) -> tuple[list[Client], list[Client]]:
    """Open `count` connections at once; (greeted, refused)."""
    clients = await asyncio.gather(
        *[Client.connect(gateway.address, greeting=False) for _ in range(count)]
    )
    codes = await asyncio.gather(*[client.reply() for client in clients])
    greeted = [c for c, (code, _) in zip(clients, codes, strict=True) if code == READY]
    refused = [c for c, (code, _) in zip(clients, codes, strict=True) if code == CLOSING]
    assert len(greeted) + len(refused) == count
    return greeted, refused


@pytest.mark.parametrize("limit", ["max_connections", "max_connections_per_client"])
async def test_a_burst_over_the_limit_refuses_only_the_excess(tmp_path: Path, limit: str) -> None:
    limits = {"max_connections": 1000, "max_connections_per_client": 1000, limit: 20}
    async with running(make_config(tmp_path, limits=limits)) as gateway:
        greeted, refused = await burst(gateway, 30)
        assert (len(greeted), len(refused)) == (20, 10)
        for client in greeted:  # every admitted session is served
            assert (await client.cmd("NOOP"))[0] == OK
        assert gateway.sessions == 20
        for client in greeted:
            await client.cmd("QUIT")
            await client.closed()
        await asyncio.sleep(0.1)
        assert gateway.sessions == 0
        greeted, refused = await burst(gateway, 20)  # every slot came back
        assert (len(greeted), len(refused)) == (20, 0)


async def test_connections_reset_at_once_give_their_slots_back(tmp_path: Path) -> None:
    config = make_config(tmp_path, limits={"max_connections": 20})
    async with running(config) as gateway:
        host, port = gateway.address
        for _ in range(50):  # connect and reset (RST) without a word
            sock = socket.create_connection((host, port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        for _ in range(100):  # each one logs its end
            if len(gateway.log.records) >= 50:
                break
            await asyncio.sleep(0.05)
        assert len(gateway.log.records) == 50
        assert gateway.sessions == 0
        greeted, refused = await burst(gateway, 20)
        assert (len(greeted), len(refused)) == (20, 0)
