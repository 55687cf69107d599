"""CHUNKING (RFC 3030) over real sockets: BDAT chunks are octets of the message, never commands.

Before issue 11, `BDAT` got 502 and the chunk's octets were then run as commands. The
attacker's variants tried here:

- a chunk whose content is SMTP commands (RCPT TO, MAIL FROM, DATA, QUIT, RSET): never run,
  whether the chunk is accepted or refused (no MAIL, no recipients, HELO session, deferred
  refusal, after a failed chunk, after DATA in the same transaction);
- a BDAT whose size cannot be read (none, signed, hexadecimal, a bad end marker, a bare LF
  after it): the connection is closed, its octets are never read as commands;
- chunks beyond the message size limit (one huge chunk, many small ones): refused after being
  read, and so are the chunks pipelined behind;
- bare LF, bare CR and the SMTP smuggling sequences inside chunks, also split across chunks:
  refused (or made CRLF with `normalize`), never two messages downstream;
- a line of "." or "..": text, relayed dot-stuffed so the downstream sees it intact;
- lines too long, headers too large, a chunk cut short by the client;
- DATA mixed with BDAT in one transaction (503); BODY=BINARYMIME (not offered, refused);
- empty chunks (`BDAT 0`) as a way to keep a session busy (junk commands, see test_limits).

And what must still work: one chunk, several chunks with lines and CRLF split between them,
`BDAT 0 LAST` as the end, everything pipelined, a last line without CRLF, SMTPUTF8 content,
relaying over SMTP to a real downstream; the checks see a chunked message as they see one sent
with DATA, and the final reply is the downstream's. A property test holds chunked content
equal to the same message sent with DATA, however it is cut into chunks.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.gateway.helpers import SIMPLE, Client, make_config, messages, running
from tests.gateway.test_downstream import Script, fake_downstream, relay_to

from mailwarden.gateway import (
    AcceptAll,
    DownstreamRelay,
    Gateway,
    MaildirRelay,
    Reply,
    Session,
    Transaction,
    TransactionLog,
    sink_config,
)
from mailwarden.gateway.data import ChunkedMessage, MessageBuilder
from mailwarden.gateway.downstream import dot_stuff
from mailwarden.pipeline import MessageDecision
from mailwarden.settings import BareLineEnding, SMTPLimits

OK, BYE, CLOSING, START_INPUT = 250, 221, 421, 354
BAD_SEQUENCE, SYNTAX, UNRECOGNIZED = 503, 501, 500
TRANSACTION_FAILED, TOO_BIG, PARAMETER_NOT_IMPLEMENTED = 554, 552, 555

BODY = b"From: alice@example.com\r\nTo: bob@example.net\r\nSubject: chunks\r\n\r\nHello.\r\n"
# Message content that is also a whole SMTP dialogue: none of it may run.
COMMANDS = (
    b"RCPT TO:<carol@example.net>\r\n"
    b"MAIL FROM:<evil@attacker.example>\r\n"
    b"DATA\r\n"
    b"Subject: smuggled\r\n"
    b".\r\n"
    b"RSET\r\n"
    b"QUIT\r\n"
)


def bdat(size: int | str, last: bool = False) -> bytes:
    return f"BDAT {size}{' LAST' if last else ''}\r\n".encode()


async def start(client: Client, rcpts: tuple[str, ...] = ("bob@example.net",)) -> None:
    assert (await client.cmd("EHLO client.example.org"))[0] == OK
    assert (await client.cmd("MAIL FROM:<alice@example.com>"))[0] == OK
    for rcpt in rcpts:
        assert (await client.cmd(f"RCPT TO:<{rcpt}>"))[0] == OK


async def send_chunks(client: Client, chunks: list[bytes]) -> list[int]:
    """Each chunk as one BDAT (the last with LAST), one reply each."""
    codes = []
    for index, chunk in enumerate(chunks):
        await client.send(bdat(len(chunk), last=index == len(chunks) - 1) + chunk)
        codes.append((await client.reply())[0])
    return codes


async def still_at_the_start(client: Client) -> None:
    """Nothing the chunk held ran: no transaction is open, the session goes on."""
    assert (await client.cmd("RCPT TO:<carol@example.net>"))[0] == BAD_SEQUENCE
    assert (await client.cmd("MAIL FROM:<alice@example.com>"))[0] == OK
    assert (await client.cmd("RSET"))[0] == OK


# What must still work.


async def test_one_chunk_is_delivered(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    async with running(make_config(tmp_path), maildir=maildir) as gateway:
        client = await Client.connect(gateway.address)
        await start(client)
        assert await send_chunks(client, [BODY]) == [OK]
        assert (await client.cmd("QUIT"))[0] == BYE
        [record] = gateway.log.records
    [message] = messages(maildir)
    assert message.endswith(b"\r\n" + BODY)
    assert record["delivered"] is True
    assert record["chunks"] == 1
    assert record["reply"].startswith("250 2.0.0")


async def test_chunks_split_lines_and_line_ends(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    async with running(make_config(tmp_path), maildir=maildir) as gateway:
        client = await Client.connect(gateway.address)
        await start(client)
        # Cut inside a line and between CR and LF; then an empty LAST chunk.
        cut = BODY.index(b"\r\n\r\n") + 1
        chunks = [BODY[:10], BODY[10:cut], BODY[cut:], b""]
        assert await send_chunks(client, chunks) == [OK, OK, OK, OK]
    [message] = messages(maildir)
    assert message.endswith(b"\r\n" + BODY)
    assert gateway.log.records[-1]["events"] == []


async def test_everything_pipelined(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    async with running(make_config(tmp_path), maildir=maildir) as gateway:
        client = await Client.connect(gateway.address)
        assert (await client.cmd("EHLO client.example.org"))[0] == OK
        half = len(BODY) // 2
        await client.send(
            b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.net>\r\n"
            + bdat(half)
            + BODY[:half]
            + bdat(len(BODY) - half, last=True)
            + BODY[half:]
            + b"QUIT\r\n"
        )
        codes = [(await client.reply())[0] for _ in range(5)]
        assert codes == [OK, OK, OK, OK, BYE]
    assert len(messages(maildir)) == 1
    assert gateway.log.records[-1]["events"] == []


async def test_dot_lines_are_text_and_relayed_intact(tmp_path: Path) -> None:
    # The gateway relays with DATA: a line "." from a chunk must be dot-stuffed, or the
    # downstream would end the message there and take the rest for commands.
    maildir = tmp_path / "sink"
    content = b"Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\n" + COMMANDS + b"last\r\n"
    sink = Gateway(
        sink_config(("127.0.0.1", 0)),
        relay=MaildirRelay(maildir, fsync=False),
        log=TransactionLog("", keep=10),
    )
    async with sink:
        relay = DownstreamRelay(*sink.address, helo_name="gw.test.example")
        async with running(make_config(tmp_path), relay=relay) as gateway:
            client = await Client.connect(gateway.address)
            await start(client)
            assert await send_chunks(client, [content]) == [OK]
            assert (await client.cmd("QUIT"))[0] == BYE
    [message] = messages(maildir)
    assert message.endswith(b"\r\n" + content)
    [record] = sink.log.records
    assert record["rcpts"] == ["bob@example.net"]  # the downstream saw one message


async def test_a_last_line_without_crlf_is_ended(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    async with running(make_config(tmp_path), maildir=maildir) as gateway:
        client = await Client.connect(gateway.address)
        await start(client)
        assert await send_chunks(client, [b"Subject: x\r\n\r\nno line end"]) == [OK]
    [message] = messages(maildir)
    assert message.endswith(b"\r\n\r\nno line end\r\n")


async def test_smtputf8_content_in_chunks(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    content = "Subject: héllo\r\n\r\nçà ☃\r\n".encode()
    async with running(make_config(tmp_path), maildir=maildir) as gateway:
        client = await Client.connect(gateway.address)
        await client.cmd("EHLO client.example.org")
        assert (await client.cmd("MAIL FROM:<jösé@example.com> SMTPUTF8 BODY=8BITMIME"))[0] == OK
        assert (await client.cmd("RCPT TO:<bøb@example.net>"))[0] == OK
        assert await send_chunks(client, [content[:17], content[17:]]) == [OK, OK]
    [message] = messages(maildir)
    assert message.endswith(b"\r\n" + content)


async def test_sessions_go_on_after_a_chunked_message(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    async with running(make_config(tmp_path), maildir=maildir) as gateway:
        client = await Client.connect(gateway.address)
        await start(client)
        assert await send_chunks(client, [BODY]) == [OK]
        code = await client.transaction("a@example.com", ["bob@example.net"], SIMPLE, ehlo=False)
        assert code == OK
    assert len(messages(maildir)) == 2


class RefuseSpam(AcceptAll):
    """A check that refuses messages whose subject says spam, and records what it saw."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    async def on_data(self, session: Session, tx: Transaction, message: bytes) -> MessageDecision:
        self.seen.append(message)
        if b"Subject: spam" in message:
            return MessageDecision(reply=Reply(550, "5.7.1", "Message refused as spam"))
        return MessageDecision()


async def test_chunked_messages_go_through_the_checks(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    checks = RefuseSpam()
    async with running(make_config(tmp_path), checks, maildir=maildir) as gateway:
        client = await Client.connect(gateway.address)
        await start(client)
        spam = b"Subject: spam\r\n\r\nbuy\r\n"
        await client.send(bdat(5) + spam[:5] + bdat(len(spam) - 5, last=True) + spam[5:])
        assert (await client.reply())[0] == OK
        assert await client.reply() == (550, ["5.7.1 Message refused as spam"])
        assert (await client.cmd("MAIL FROM:<alice@example.com>"))[0] == OK
        assert (await client.cmd("RCPT TO:<bob@example.net>"))[0] == OK
        assert await send_chunks(client, [BODY]) == [OK]
    assert checks.seen == [spam, BODY]  # the whole message, as with DATA
    assert len(messages(maildir)) == 1


async def test_the_final_reply_is_the_downstreams(tmp_path: Path) -> None:
    script = Script(after_data=["554 5.7.1 message content rejected"])
    async with (
        fake_downstream(script) as address,
        running(make_config(tmp_path), relay=relay_to(address)) as gateway,
    ):
        client = await Client.connect(gateway.address)
        await start(client)
        assert await send_chunks(client, [BODY[:15], BODY[15:]]) == [OK, TRANSACTION_FAILED]
    [relayed] = script.received  # relayed before answering: the refusal is the downstream's
    assert relayed.endswith(b"\r\n" + BODY + b".\r\n")
    assert gateway.log.records[-1]["delivered"] is False


# Chunk octets are never commands.


async def test_commands_inside_an_accepted_chunk_do_not_run(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    content = b"Subject: a transcript\r\n\r\n" + COMMANDS
    async with running(make_config(tmp_path), maildir=maildir) as gateway:
        client = await Client.connect(gateway.address)
        await start(client)
        # Two chunks, cut in the middle of the "RCPT TO" line.
        assert await send_chunks(client, [content[:30], content[30:]]) == [OK, OK]
        assert (await client.cmd("NOOP"))[0] == OK  # QUIT in the chunk did not end it
        await still_at_the_start(client)
        [record] = gateway.log.records[:1]
    [message] = messages(maildir)
    assert message.endswith(b"\r\n" + content)
    assert record["rcpts"] == ["bob@example.net"]
    assert record["mail_from"] == "alice@example.com"


async def prepare(client: Client, state: str) -> None:
    """Bring the session into a state in which BDAT is refused."""
    if state == "helo session":
        assert (await client.cmd("HELO client.example.org"))[0] == OK
        assert (await client.cmd("MAIL FROM:<alice@example.com>"))[0] == OK
        assert (await client.cmd("RCPT TO:<bob@example.net>"))[0] == OK
        return
    assert (await client.cmd("EHLO client.example.org"))[0] == OK
    if state == "no MAIL":
        return
    assert (await client.cmd("MAIL FROM:<alice@example.com>"))[0] == OK
    if state == "no recipients":
        assert (await client.cmd("RCPT TO:<x@elsewhere.example>"))[0] == 550  # relaying denied
        return
    assert (await client.cmd("RCPT TO:<bob@example.net>"))[0] == OK
    if state == "after a failed chunk":
        # The first chunk fails the transaction; the one behind it gets the same answer.
        failed = await send_chunks(client, [b"bare\nLF\r\n", b""])
        assert failed == [TRANSACTION_FAILED, TRANSACTION_FAILED]


REFUSED_STATES = {
    "no MAIL": BAD_SEQUENCE,
    "no recipients": TRANSACTION_FAILED,
    "helo session": BAD_SEQUENCE,
    "after a failed chunk": TRANSACTION_FAILED,
}


@pytest.mark.parametrize("state", sorted(REFUSED_STATES))
async def test_commands_inside_a_refused_chunk_do_not_run(tmp_path: Path, state: str) -> None:
    maildir = tmp_path / "Maildir"
    async with running(make_config(tmp_path), maildir=maildir) as gateway:
        client = await Client.connect(gateway.address)
        await prepare(client, state)
        await client.send(bdat(len(COMMANDS), last=True) + COMMANDS)
        code, lines = await client.reply()
        assert code == REFUSED_STATES[state], lines
        assert (await client.cmd("NOOP"))[0] == OK  # the chunk's QUIT did not run
        await still_at_the_start(client)
    assert messages(maildir) == []


async def test_chunks_pipelined_behind_a_refused_chunk_are_read_and_refused(
    tmp_path: Path,
) -> None:
    maildir = tmp_path / "Maildir"
    config = make_config(tmp_path, limits={"max_message_size": 100})
    async with running(config, maildir=maildir) as gateway:
        client = await Client.connect(gateway.address)
        await start(client)
        big = b"x" * 60 + b"\r\n"
        await client.send(
            bdat(len(big))
            + big
            + bdat(len(big))
            + big  # the second exceeds 100 octets
            + bdat(len(COMMANDS))
            + COMMANDS
            + bdat(len(COMMANDS), last=True)
            + COMMANDS
        )
        codes = [(await client.reply())[0] for _ in range(4)]
        assert codes == [OK, TOO_BIG, TOO_BIG, TOO_BIG]
        await still_at_the_start(client)
        [record] = gateway.log.records[:1]
    assert messages(maildir) == []
    assert record["reply"].startswith("552 5.3.4")
    assert record["delivered"] is False


async def test_deferred_refusal_reads_the_chunk(tmp_path: Path) -> None:
    from mailwarden.settings import StrictAction

    config = make_config(tmp_path, pipelining_action=StrictAction.ENFORCE)
    async with running(config) as gateway:
        client = await Client.connect(gateway.address)
        # HELO with a pipelined MAIL: pipelining abuse, enforced (RCPT and DATA refused).
        await client.send(b"HELO client.example.org\r\nMAIL FROM:<alice@example.com>\r\n")
        assert [(await client.reply())[0] for _ in range(2)] == [OK, OK]
        await client.send(bdat(len(COMMANDS), last=True) + COMMANDS)
        assert (await client.reply())[0] == BAD_SEQUENCE  # BDAT in a HELO session
        assert (await client.cmd("NOOP"))[0] == OK


MALFORMED = [
    b"BDAT\r\n",
    b"BDAT LAST\r\n",
    b"BDAT -5\r\n",
    b"BDAT 0x20\r\n",
    b"BDAT 20 LATER\r\n",
    b"BDAT 20 LAST now\r\n",
    b"BDAT 1000000000000000000\r\n",
    b"BDAT 20 LAST\n",  # ended by a bare LF: refused, and its chunk never read as commands
]


@pytest.mark.parametrize("line", MALFORMED, ids=[m.decode().strip() or "bare" for m in MALFORMED])
async def test_a_bdat_whose_size_cannot_be_read_ends_the_session(
    tmp_path: Path, line: bytes
) -> None:
    async with running(make_config(tmp_path)) as gateway:
        client = await Client.connect(gateway.address)
        await start(client)
        await client.send(line + COMMANDS)
        code, lines = await client.reply()
        assert (code, lines[0][:5]) == (CLOSING, "4.5.4")
        assert await client.closed()
        await asyncio.sleep(0.05)
    record = gateway.log.records[-1]
    assert "BAD_BDAT" in record["events"]
    assert record["rcpts"] == ["bob@example.net"]  # carol (in the octets) was never seen


async def test_data_after_bdat_is_refused(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    async with running(make_config(tmp_path), maildir=maildir) as gateway:
        client = await Client.connect(gateway.address)
        await start(client)
        await client.send(bdat(20) + BODY[:20])
        assert (await client.reply())[0] == OK
        code, text = await client.cmd("DATA")
        assert (code, text[:5]) == (BAD_SEQUENCE, "5.5.1")  # RFC 3030 §2
        await still_at_the_start(client)
    assert messages(maildir) == []
    assert gateway.log.records[0]["reply"].startswith("503 5.5.1")


async def test_binarymime_is_neither_offered_nor_accepted(tmp_path: Path) -> None:
    async with running(make_config(tmp_path)) as gateway:
        client = await Client.connect(gateway.address)
        await client.send(b"EHLO client.example.org\r\n")
        code, lines = await client.reply()
        assert "CHUNKING" in lines
        assert not any(line.startswith("BINARYMIME") for line in lines)
        code, _ = await client.cmd("MAIL FROM:<alice@example.com> BODY=BINARYMIME")
        assert code == SYNTAX


# Content rules: the same as DATA (the message is relayed with DATA).

CONTENT_REFUSALS = {
    "bare LF": (b"Subject: x\r\n\r\nline\nnext\r\n", TRANSACTION_FAILED, "BARE_LF"),
    "bare CR": (b"Subject: x\r\n\r\nline\rnext\r\n", TRANSACTION_FAILED, "BARE_CR"),
    "LF.LF smuggling": (
        b"Subject: x\r\n\r\nbody\n.\nMAIL FROM:<e@x.example>\r\n",
        TRANSACTION_FAILED,
        "SMUGGLING",
    ),
    "CRLF.LF smuggling": (
        b"Subject: x\r\n\r\nbody\r\n.\nRSET\r\n",
        TRANSACTION_FAILED,
        "SMUGGLING",
    ),
    "line too long": (b"Subject: x\r\n\r\n" + b"a" * 999 + b"\r\n", UNRECOGNIZED, "LINE_TOO_LONG"),
    "header too large": (b"X-Big: " + b"h" * 300 + b"\r\n\r\nbody\r\n", TOO_BIG, None),
}


@pytest.mark.parametrize("name", sorted(CONTENT_REFUSALS))
@pytest.mark.parametrize("cut", [None, 3], ids=["one chunk", "cut before the trap"])
async def test_chunk_content_follows_the_data_rules(
    tmp_path: Path, name: str, cut: int | None
) -> None:
    maildir = tmp_path / "Maildir"
    content, expected, event = CONTENT_REFUSALS[name]
    config = make_config(tmp_path, limits={"max_header_size": 200})
    async with running(config, maildir=maildir) as gateway:
        client = await Client.connect(gateway.address)
        await start(client)
        if cut is None:
            codes = await send_chunks(client, [content])
        else:
            at = content.index(b"\r\n\r\n") + 4 + cut
            codes = await send_chunks(client, [content[:at], content[at:]])
        assert codes[-1] == expected
        await still_at_the_start(client)
    assert messages(maildir) == []
    if event is not None:
        assert event in gateway.log.records[0]["events"]


@pytest.mark.parametrize("sequence", [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\n", b"\r"])
async def test_normalized_chunks_stay_one_message(tmp_path: Path, sequence: bytes) -> None:
    maildir = tmp_path / "Maildir"
    config = make_config(tmp_path, bare_lf=BareLineEnding.NORMALIZE)
    content = b"Subject: first\r\n\r\nfirst" + sequence + COMMANDS
    async with running(config, maildir=maildir) as gateway:
        client = await Client.connect(gateway.address)
        await start(client)
        assert await send_chunks(client, [content]) == [OK]
    [message] = messages(maildir)
    assert b"RCPT TO:<carol@example.net>" in message
    assert b"\n" not in message.replace(b"\r\n", b"")
    assert b"\r" not in message.replace(b"\r\n", b"")


async def test_a_chunk_cut_short_delivers_nothing(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    async with running(make_config(tmp_path), maildir=maildir) as gateway:
        client = await Client.connect(gateway.address)
        await start(client)
        await client.send(bdat(len(BODY) + 50, last=True) + BODY)
        await client.close()
        await asyncio.sleep(0.2)
    assert messages(maildir) == []
    assert gateway.log.records[-1]["reply"].startswith("aborted")


async def test_a_chunk_over_the_size_limit_is_read_and_refused(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    config = make_config(tmp_path, limits={"max_message_size": 1000})
    async with running(config, maildir=maildir) as gateway:
        client = await Client.connect(gateway.address)
        await start(client)
        huge = (b"y" * 98 + b"\r\n") * 30
        assert await send_chunks(client, [huge]) == [TOO_BIG]
        await still_at_the_start(client)
        await client.cmd("EHLO client.example.org")
        code = await client.transaction("a@example.com", ["bob@example.net"], SIMPLE, ehlo=False)
        assert code == OK
    assert len(messages(maildir)) == 1


# The chunked path equals the DATA path, however the content is cut.

lines = st.lists(
    st.one_of(
        st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
        st.sampled_from([b".", b"..", b".x", b"", b"\r", b"a\nb", b"a\rb", b"x" * 1100]),
    ),
    min_size=1,
    max_size=12,
)


def data_path(body: bytes, limits: SMTPLimits, bare: BareLineEnding) -> tuple[object, ...]:
    builder = MessageBuilder(limits, bare, dot_stuffed=True)
    wire = dot_stuff(body)[: -len(b".\r\n")]
    for line in re.findall(rb"[^\n]*\n|[^\n]+$", wire):  # lines end at LF only
        if len(line) > limits.max_line_length:
            builder.too_long()
        else:
            builder.line(line)
    result = builder.result()
    return result.message, result.reply, sorted(result.events)


def chunk_path(body: bytes, cuts: list[int], limits: SMTPLimits, bare: BareLineEnding) -> object:
    chunked = ChunkedMessage(limits, bare)
    start = 0
    for cut in sorted(cuts):
        chunked.feed(body[start:cut])
        start = cut
    chunked.feed(body[start:])
    result = chunked.finish()
    return result.message, result.reply, sorted(result.events)


@settings(max_examples=300, deadline=None)
@given(
    lines,
    st.lists(st.integers(0, 400), max_size=6),
    st.sampled_from(list(BareLineEnding)),
)
def test_chunked_content_equals_data_content(
    body_lines: list[bytes], cuts: list[int], bare: BareLineEnding
) -> None:
    body = b"".join(line + b"\r\n" for line in body_lines)
    limits = SMTPLimits(max_message_size=2000)
    cuts = [min(c, len(body)) for c in cuts]
    expected = data_path(body, limits, bare)
    assert chunk_path(body, cuts, limits, bare) == expected
    assert chunk_path(body, [], limits, bare) == expected


def test_refusal_reply_is_kept_first() -> None:
    chunked = ChunkedMessage(SMTPLimits(max_message_size=10), BareLineEnding.REJECT)
    chunked.feed(b"a\nb\r\n")
    chunked.skip(100, Reply(552, "5.3.4", "too big"))
    assert chunked.finish().reply == Reply(
        554, "5.5.2", "Error: bare CR or LF in message (only CRLF ends a line)"
    )
