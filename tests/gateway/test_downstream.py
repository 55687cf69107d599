"""Relaying downstream over SMTP and LMTP: per-recipient answers, outages, slowness.

The downstream here is either a second gateway running as a Maildir sink (the real protocol
both ways) or a scripted fake server, for answers no well-behaved server gives on demand.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.gateway.helpers import SIMPLE, Client, make_config, messages, running

from mailwarden.body import Body, SpooledBody
from mailwarden.gateway import (
    DownstreamRelay,
    Gateway,
    MaildirRelay,
    Reply,
    TransactionLog,
    sink_config,
)
from mailwarden.gateway.downstream import dot_stuff, parse_reply_text
from mailwarden.settings import DownstreamProtocol, Timeouts


@dataclass
class Script:
    """What the fake downstream answers."""

    lmtp: bool = False
    chunking: bool = False  # offer CHUNKING (RFC 3030) and take BDAT
    # offer PIPELINING (RFC 2920) and answer MAIL only with the command after it: a client
    # that waits for the reply to MAIL before sending RCPT waits in vain
    pipelining: bool = False
    mail: str = "250 2.1.0 ok"  # the reply to MAIL
    rcpt: dict[str, str] = field(default_factory=dict)  # address -> reply line
    after_data: list[str] = field(default_factory=lambda: ["250 2.0.0 queued"])
    hang_after_data: bool = False
    reply_delay: float = 0.0  # seconds before the reply to the end of the message
    drop_at_mail: int = 0  # close the connection, unanswered, at this MAIL command (1-based)
    connections: int = 0
    received: list[bytes] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)


@asynccontextmanager
async def fake_downstream(script: Script) -> AsyncIterator[tuple[str, int]]:
    handlers: set[asyncio.Task[object]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        script.connections += 1
        writer.write(b"220 fake ESMTP\r\n")
        held = b""  # the reply to MAIL, when pipelining
        try:
            while line := await reader.readline():
                command = line.decode().rstrip("\r\n")
                script.commands.append(command)
                verb = command.split(" ")[0].upper()
                writer.write(held)
                held = b""
                if verb in ("EHLO", "LHLO"):
                    chunking = b"250-CHUNKING\r\n" if script.chunking else b""
                    pipelining = b"250-PIPELINING\r\n" if script.pipelining else b""
                    extensions = b"250-8BITMIME\r\n" + chunking + pipelining
                    writer.write(b"250-fake\r\n" + extensions + b"250 SMTPUTF8\r\n")
                elif verb == "BDAT":
                    size, *last = command.split(" ")[1:]
                    data = await reader.readexactly(int(size))
                    script.received.append(data)
                    assert last == ["LAST"]
                    if script.hang_after_data:
                        await asyncio.sleep(30)
                    await asyncio.sleep(script.reply_delay)
                    for reply in script.after_data:
                        writer.write(reply.encode() + b"\r\n")
                elif verb == "MAIL" and (
                    [c.split(" ")[0] for c in script.commands].count("MAIL") == script.drop_at_mail
                ):
                    break
                elif verb == "MAIL" and script.pipelining:
                    held = script.mail.encode() + b"\r\n"
                elif verb == "MAIL":
                    writer.write(script.mail.encode() + b"\r\n")
                elif verb == "RCPT" and script.mail[0] != "2":
                    writer.write(b"503 5.5.1 need MAIL\r\n")
                elif verb == "RCPT":
                    address = command.split("<", 1)[1].rstrip(">")
                    writer.write(script.rcpt.get(address, "250 2.1.5 ok").encode() + b"\r\n")
                elif verb == "DATA":
                    writer.write(b"354 go on\r\n")
                    await writer.drain()
                    data = b""
                    while not data.endswith(b"\r\n.\r\n"):
                        chunk = await reader.readline()
                        if not chunk:
                            return
                        data += chunk
                    script.received.append(data)
                    if script.hang_after_data:
                        await asyncio.sleep(30)
                    for reply in script.after_data:
                        writer.write(reply.encode() + b"\r\n")
                elif verb == "QUIT":
                    writer.write(b"221 bye\r\n")
                    await writer.drain()
                    break
                else:
                    writer.write(b"250 2.0.0 ok\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[:2]
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


def relay_to(address: tuple[str, int], *, lmtp: bool = False, **timeouts: float) -> DownstreamRelay:
    return DownstreamRelay(
        address[0],
        address[1],
        dialect=DownstreamProtocol.LMTP if lmtp else DownstreamProtocol.SMTP,
        helo_name="gw.test.example",
        timeouts=Timeouts(**timeouts),
    )


def test_dot_stuffing() -> None:
    assert dot_stuff(b".a\r\nb\r\n.\r\n..c") == b"..a\r\nb\r\n..\r\n...c\r\n.\r\n"
    assert dot_stuff(b"") == b"\r\n.\r\n"


def test_reply_text_parsing() -> None:
    assert parse_reply_text(550, "5.1.1 no such user") == Reply(550, "5.1.1", "no such user")
    assert parse_reply_text(451, "try later") == Reply(451, "4.0.0", "try later")
    assert parse_reply_text(250, "5.1.1 odd") == Reply(250, "2.0.0", "5.1.1 odd")


async def test_relay_through_a_real_smtp_downstream(tmp_path: Path) -> None:
    maildir = tmp_path / "sink"
    sink = Gateway(
        sink_config(("127.0.0.1", 0)),
        relay=MaildirRelay(maildir, fsync=False),
        log=TransactionLog(""),
    )
    async with sink, running(make_config(tmp_path), relay=relay_to(sink.address)) as gateway:
        client = await Client.connect(gateway.address)
        body = b"Subject: dots\r\n\r\n..leading\r\n...\r\n.\r\n"  # dot-stuffed on the wire
        rcpts = ["bob@example.net", "c@example.net"]
        assert await client.transaction("a@example.com", rcpts, body) == 250
    [message] = messages(maildir)
    assert message.endswith(b"\r\n.leading\r\n..\r\n")
    assert b"Delivered-To: bob@example.net\r\nDelivered-To: c@example.net\r\n" in message
    assert b"by mx.test.example (mailwarden)" in message


async def test_a_recipient_refused_downstream_is_refused_at_rcpt(tmp_path: Path) -> None:
    script = Script(rcpt={"nobody@example.net": "550 5.1.1 <nobody@example.net>: unknown user"})
    async with (
        fake_downstream(script) as address,
        running(make_config(tmp_path), relay=relay_to(address)) as gateway,
    ):
        client = await Client.connect(gateway.address)
        await client.cmd("EHLO client.example.org")
        await client.cmd("MAIL FROM:<a@example.com>")
        assert await client.cmd("RCPT TO:<nobody@example.net>") == (
            550,
            "5.1.1 <nobody@example.net>: unknown user",
        )
        assert (await client.cmd("RCPT TO:<bob@example.net>"))[0] == 250
        assert (await client.cmd("DATA"))[0] == 354
        await client.send(SIMPLE)
        assert (await client.reply())[0] == 250
    assert len(script.received) == 1
    assert "MAIL FROM:<a@example.com>" in script.commands
    assert script.commands.count("DATA") == 1


async def test_downstream_refusal_of_the_message_is_passed_back(tmp_path: Path) -> None:
    script = Script(after_data=["554 5.7.1 message content rejected"])
    async with (
        fake_downstream(script) as address,
        running(make_config(tmp_path), relay=relay_to(address)) as gateway,
    ):
        client = await Client.connect(gateway.address)
        await client.cmd("EHLO client.example.org")
        await client.cmd("MAIL FROM:<a@example.com>")
        await client.cmd("RCPT TO:<bob@example.net>")
        await client.cmd("DATA")
        await client.send(SIMPLE)
        assert await client.reply() == (554, ["5.7.1 message content rejected"])
    assert gateway.log.records[-1]["delivered"] is False


async def test_downstream_down_gives_451(tmp_path: Path) -> None:
    async with fake_downstream(Script()) as address:
        pass  # the port is closed again: nobody listens there
    async with running(make_config(tmp_path), relay=relay_to(address)) as gateway:
        client = await Client.connect(gateway.address)
        await client.cmd("EHLO client.example.org")
        await client.cmd("MAIL FROM:<a@example.com>")
        code, text = await client.cmd("RCPT TO:<bob@example.net>")
        assert (code, text[:5]) == (451, "4.4.1")


async def test_slow_downstream_gives_451(tmp_path: Path) -> None:
    script = Script(hang_after_data=True)
    async with fake_downstream(script) as address:
        relay = relay_to(address, downstream_data=0.3)
        async with running(make_config(tmp_path), relay=relay) as gateway:
            client = await Client.connect(gateway.address)
            await client.cmd("EHLO client.example.org")
            await client.cmd("MAIL FROM:<a@example.com>")
            await client.cmd("RCPT TO:<bob@example.net>")
            await client.cmd("DATA")
            await client.send(SIMPLE)
            code, lines = await client.reply()
            assert (code, lines[0][:5]) == (451, "4.4.1")
            assert (await client.cmd("NOOP"))[0] == 250  # the client's session goes on


async def test_lmtp_answers_per_recipient(tmp_path: Path) -> None:
    # One recipient temporarily failed after DATA: the client must retry (451), never 250.
    script = Script(lmtp=True, after_data=["250 2.0.0 bob ok", "452 4.2.2 carol over quota"])
    async with (
        fake_downstream(script) as address,
        running(make_config(tmp_path), relay=relay_to(address, lmtp=True)) as gateway,
    ):
        client = await Client.connect(gateway.address)
        code = await client.transaction(
            "a@example.com", ["bob@example.net", "carol@example.net"], SIMPLE
        )
        assert code == 452
    assert any(c.startswith("LHLO ") for c in script.commands)
    assert gateway.log.records[-1]["downstream"] == [
        "250 2.0.0 bob ok",
        "452 4.2.2 carol over quota",
    ]


async def test_lmtp_all_accepted(tmp_path: Path) -> None:
    script = Script(lmtp=True, after_data=["250 2.0.0 bob ok", "250 2.0.0 carol ok"])
    async with (
        fake_downstream(script) as address,
        running(make_config(tmp_path), relay=relay_to(address, lmtp=True)) as gateway,
    ):
        client = await Client.connect(gateway.address)
        code = await client.transaction(
            "a@example.com", ["bob@example.net", "carol@example.net"], SIMPLE
        )
        assert code == 250


async def test_connections_are_reused_and_stale_ones_replaced(tmp_path: Path) -> None:
    script = Script(drop_at_mail=2)
    async with (
        fake_downstream(script) as address,
        running(make_config(tmp_path), relay=relay_to(address)) as gateway,
    ):
        for _ in range(3):
            client = await Client.connect(gateway.address)
            code = await client.transaction("a@example.com", ["bob@example.net"], SIMPLE)
            assert code == 250
            await client.cmd("QUIT")
    # The first connection carried message 1 and was dropped at MAIL 2 (stale), which went
    # on a fresh connection that then carried message 3 too.
    assert len(script.received) == 3
    assert script.connections == 2
    assert [c.split(" ")[0] for c in script.commands].count("EHLO") == 2


async def test_mail_and_the_first_rcpt_are_pipelined_when_the_downstream_offers_it(
    tmp_path: Path,
) -> None:
    """RFC 2920: MAIL and the first RCPT go downstream in one write, their replies are read
    after; the client's replies are the downstream's as before (a second RCPT is sent alone),
    and a pooled connection gone stale is replaced with both commands sent again."""
    script = Script(pipelining=True, drop_at_mail=2)
    async with (
        fake_downstream(script) as address,
        running(make_config(tmp_path), relay=relay_to(address, downstream_command=2)) as gateway,
    ):
        for _ in range(3):
            client = await Client.connect(gateway.address)
            rcpts = ["bob@example.net", "carol@example.net"]
            assert await client.transaction("a@example.com", rcpts, SIMPLE) == 250
            await client.cmd("QUIT")
    assert len(script.received) == 3
    assert script.connections == 2
    assert script.commands.count("RCPT TO:<carol@example.net>") == 3


async def test_a_mail_refused_downstream_while_pipelined_is_the_rcpt_reply(
    tmp_path: Path,
) -> None:
    script = Script(pipelining=True, mail="550 5.7.1 sender refused")
    async with (
        fake_downstream(script) as address,
        running(make_config(tmp_path), relay=relay_to(address, downstream_command=2)) as gateway,
    ):
        client = await Client.connect(gateway.address)
        await client.cmd("EHLO client.example.org")
        await client.cmd("MAIL FROM:<a@example.com>")
        assert await client.cmd("RCPT TO:<bob@example.net>") == (550, "5.7.1 sender refused")
        # the next RCPT opens a new downstream transaction, refused alike
        assert (await client.cmd("RCPT TO:<bob@example.net>"))[0] == 550
    assert script.commands.count("RCPT TO:<bob@example.net>") == 2


async def test_a_downstream_offering_chunking_gets_one_bdat_last(tmp_path: Path) -> None:
    """RFC 3030: the message goes as `BDAT n LAST` with its exact octets (no dot-stuffing, no
    354 to wait for), byte for byte what the DATA path delivers, and the connection is kept."""
    body = b"Subject: dots\r\n\r\n..leading\r\n...\r\n.\r\n"
    delivered: dict[bool, bytes] = {}
    for chunking in (False, True):
        script = Script(chunking=chunking)
        async with (
            fake_downstream(script) as address,
            running(make_config(tmp_path), relay=relay_to(address)) as gateway,
        ):
            for _ in range(2):
                client = await Client.connect(gateway.address)
                assert await client.transaction("a@example.com", ["bob@example.net"], body) == 250
                await client.cmd("QUIT")
        verbs = [c.split(" ")[0] for c in script.commands]
        assert ("BDAT" in verbs, "DATA" in verbs) == (chunking, not chunking)
        assert script.connections == 1  # the pooled connection carried both
        message = script.received[-1]
        if not chunking:
            assert message.endswith(b"\r\n..leading\r\n...\r\n.\r\n")  # stuffed on the wire
            message = message[: -len(b".\r\n")].replace(b"\r\n..", b"\r\n.")
        delivered[chunking] = message.split(b"\r\nSubject: ", 1)[1]  # after our Received
    assert delivered[True] == delivered[False]
    assert delivered[True].endswith(b"\r\n.leading\r\n..\r\n")


async def test_a_refused_bdat_is_passed_back_and_its_connection_not_reused(
    tmp_path: Path,
) -> None:
    script = Script(chunking=True, after_data=["552 5.3.4 message too big for this mailbox"])
    async with (
        fake_downstream(script) as address,
        running(make_config(tmp_path), relay=relay_to(address)) as gateway,
    ):
        for _ in range(2):
            client = await Client.connect(gateway.address)
            code = await client.transaction("a@example.com", ["bob@example.net"], SIMPLE)
            assert code == 552
            await client.cmd("QUIT")
    assert script.connections == 2  # a failed BDAT transaction is never reused (§4.2)
    assert [c.split(" ")[0] for c in script.commands].count("QUIT") >= 1


async def one_message(address: tuple[str, int], body: Body, *, lmtp: bool = False) -> None:
    """One transaction straight through a DownstreamRelay (no gateway): head `Subject: x`,
    then `body`; every reply must be a success."""
    relay = relay_to(address, lmtp=lmtp)
    connection = await relay.connect()
    assert (await connection.mail("a@example.com", {})).code == 250
    assert (await connection.rcpt("bob@example.net")).code == 250
    [reply] = await connection.data(b"Subject: x\r\n\r\n", body)
    assert reply.code == 250
    await connection.close()
    await relay.close()


async def test_bdat_ends_a_message_without_a_final_line_break_as_data_does() -> None:
    script = Script(chunking=True)
    async with fake_downstream(script) as address:
        await one_message(address, b"no line break at the end")
    assert script.received == [b"Subject: x\r\n\r\nno line break at the end\r\n"]


async def test_spooled_bodies_and_lmtp_take_data_even_with_chunking(tmp_path: Path) -> None:
    """A spooled body is streamed after DATA (its size is not read ahead); LMTP reads its
    per-recipient replies after DATA. Big bodies go in writes of up to 64 KiB, intact."""
    (tmp_path / "body").write_bytes(b"line of the body\r\n" * 20000)
    spooled = SpooledBody(tmp_path / "body", 18 * 20000)
    for lmtp, body in ((False, spooled), (True, b"short\r\n")):
        script = Script(chunking=True, lmtp=lmtp)
        async with fake_downstream(script) as address:
            await one_message(address, body, lmtp=lmtp)
        assert "BDAT" not in [c.split(" ")[0] for c in script.commands]
        expected = b"Subject: x\r\n\r\n" + (spooled.read() if not lmtp else b"short\r\n")
        assert script.received == [expected + b".\r\n"]


async def test_the_reply_to_bdat_last_gets_the_end_of_data_time(tmp_path: Path) -> None:
    """BDAT LAST's reply is the end-of-data reply: a downstream slower than the per-command
    time but within `downstream_data` is waited for; one past it gives the client 451."""
    for hang, expected in ((False, 250), (True, 451)):
        script = Script(chunking=True, reply_delay=0.5, hang_after_data=hang)
        async with fake_downstream(script) as address:
            relay = relay_to(address, downstream_command=0.2, downstream_data=1.5)
            async with running(make_config(tmp_path), relay=relay) as gateway:
                client = await Client.connect(gateway.address)
                code = await client.transaction("a@example.com", ["bob@example.net"], SIMPLE)
                assert code == expected
        assert "BDAT" in [c.split(" ")[0] for c in script.commands]
