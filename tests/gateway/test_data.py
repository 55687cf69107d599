"""DATA read in whole buffered lines at once equals DATA read line by line.

`read_data` takes what the client sent ahead in whole lines at once (`MessageBuilder.lines`)
while it is plain text, and goes line by line otherwise. The outcome must not depend on it:
the message, its size, the refusal, the strict-SMTP events and what is left in the stream
after the end of data (a pipelined command) are compared with the line-by-line path over
random content (dots, bare CR and LF, long lines, empty lines, small limits), however the
octets arrive.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwarden.body import SpooledMessage
from mailwarden.gateway.data import (
    ChunkedMessage,
    MemoryBudget,
    MessageBuilder,
    Spool,
    read_data,
)
from mailwarden.gateway.stream import Stream
from mailwarden.settings import BareLineEnding, SMTPLimits


class _Transport(asyncio.Transport):
    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


Outcome = tuple[bytes, int, object, list[str], bytes] | str


async def _outcome(
    wire: bytes, cuts: list[int], limits: SMTPLimits, bare: BareLineEnding
) -> Outcome:
    """What `_read` gives, or the name of what it raised (a line end that is not one can
    hide the end of data: the connection then closes first)."""
    try:
        return await _read(wire, cuts, limits, bare)
    except Exception as exc:
        return type(exc).__name__


async def _read(
    wire: bytes, cuts: list[int], limits: SMTPLimits, bare: BareLineEnding
) -> tuple[bytes, int, object, list[str], bytes]:
    """`wire` arriving in pieces cut at `cuts`, read as DATA."""
    stream = Stream(lambda _: None)
    stream.connection_made(_Transport())
    bounds = [0, *sorted(set(cuts)), len(wire)]
    pieces = [wire[a:b] for a, b in itertools.pairwise(bounds) if b > a]

    stream.data_received(pieces[0])  # the first piece is there when the data is read

    async def feed() -> None:
        for piece in pieces[1:]:
            stream.data_received(piece)
            await asyncio.sleep(0)
        stream.eof_received()

    with tempfile.TemporaryDirectory() as folder:
        spool = Spool(Path(folder), 64, MemoryBudget(1 << 20))  # bodies over 64 octets spool
        feeding = asyncio.ensure_future(feed())
        result = await read_data(stream, limits, 5.0, bare, spool)
        await feeding
        message = result.message
        if isinstance(message, SpooledMessage):
            whole = message.head + message.body.path.read_bytes()
            message.close()
        else:
            whole = message
    left = stream.buffered_lines(1 << 20)
    return whole, result.size, result.reply, sorted(result.events), left


def _both(
    wire: bytes, cuts: list[int], limits: SMTPLimits, bare: BareLineEnding
) -> tuple[Outcome, Outcome]:
    at_once = asyncio.run(_outcome(wire, cuts, limits, bare))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MessageBuilder, "lines", lambda self, block: (0, False))
        by_line = asyncio.run(_outcome(wire, cuts, limits, bare))
    return at_once, by_line


texts = st.one_of(
    st.binary(max_size=30).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    st.sampled_from([b"", b"", b".", b"..", b".x", b"Subject: x", b"x" * 60]),
)
ends = st.sampled_from([b"\r\n"] * 6 + [b"\n", b"\r", b"\r\r\n"])


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(texts, ends), max_size=14),
    st.lists(st.integers(0, 300), max_size=5),
    st.sampled_from(list(BareLineEnding)),
    st.sampled_from([(50, 40, 300), (1000, 102_400, 26_214_400), (20, 1000, 1000)]),
)
def test_lines_at_once_equal_line_by_line(
    content: list[tuple[bytes, bytes]],
    cuts: list[int],
    bare: BareLineEnding,
    sizes: tuple[int, int, int],
) -> None:
    line_length, header_size, message_size = sizes
    limits = SMTPLimits(
        max_line_length=line_length, max_header_size=header_size, max_message_size=message_size
    )
    wire = b"".join(text + end for text, end in content) + b".\r\nQUIT\r\n"
    at_once, by_line = _both(wire, cuts, limits, bare)
    assert at_once == by_line  # what is left after the end of data too


def test_a_plain_message_is_taken_at_once_and_unstuffed() -> None:
    wire = b"Subject: a\r\nX: b\r\n\r\n..dot\r\nline\r\n...\r\n.\r\nQUIT\r\n"
    limits = SMTPLimits()
    calls: list[bytes] = []
    original = MessageBuilder.line
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            MessageBuilder, "line", lambda self, line: calls.append(line) or original(self, line)
        )
        message, size, reply, events, left = asyncio.run(
            _read(wire, [], limits, BareLineEnding.REJECT)
        )
    assert calls == []  # no line went one by one
    assert message == b"Subject: a\r\nX: b\r\n\r\n.dot\r\nline\r\n..\r\n"
    assert (size, reply, events, left) == (len(message), None, [], b"QUIT\r\n")


def test_plain_bdat_chunks_are_taken_at_once() -> None:
    chunked = ChunkedMessage(SMTPLimits(), BareLineEnding.REJECT)
    calls: list[bytes] = []
    original = MessageBuilder.line
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            MessageBuilder, "line", lambda self, line: calls.append(line) or original(self, line)
        )
        chunked.feed(b"Subject: a\r\n\r\n.dot\r\nhal")  # a line cut between chunks
        chunked.feed(b"f\r\nend\r\n")
        result = chunked.finish()
    assert calls == [b"half\r\n"]  # only the line cut in two went on its own
    assert result.message == b"Subject: a\r\n\r\n.dot\r\nhalf\r\nend\r\n"
    assert (result.reply, result.events) == (None, [])
