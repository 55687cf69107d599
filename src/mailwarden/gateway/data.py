"""Reading message data strictly: DATA (RFC 5321 §4.1.1.4) and BDAT chunks (RFC 3030).

SMTP smuggling (CVE-2023-51766 and friends) hides a second message behind a false end of data
that some servers accept: LF.LF, CR.CR, LF.CRLF, CRLF.LF. The gateway never ends DATA on
those, and by default refuses a message that contains them or any bare CR or LF; with
`normalize` they become CRLF line ends inside the one message, which is then relayed
dot-stuffed, so a downstream server can never see two messages either.

BDAT chunks carry the message as counted octets, with no dot-stuffing and no end-of-data line,
so a chunk can never end early; but the gateway relays with DATA, so chunked content obeys the
same rules as DATA content: only CRLF ends a line (bare CR or LF: `bare_lf`, as in DATA), lines
of at most `max_line_length` octets, the same header and size limits. A line of "." inside a
chunk is text, relayed dot-stuffed. A message whose last line has no line end gets CRLF.
BINARYMIME is not offered: its content could not be relayed with DATA.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from mailwarden.body import SpooledBody, SpooledMessage
from mailwarden.settings import BareLineEnding, SMTPLimits

from .hooks import Event, Reply
from .stream import LineTooLong, Stream

__all__ = [
    "ChunkedMessage",
    "DataResult",
    "MemoryBudget",
    "MessageBuilder",
    "Spool",
    "read_data",
]

# <X>.<Y> with X, Y in {CRLF, CR, LF}: any that is not CRLF.CRLF is a false end of data.
_FALSE_END = re.compile(rb"(?:\r\n|\r|\n)\.(?:\r\n|\r|\n)")
BLOCK = 65536  # octets of buffered message lines taken at once at most


class MemoryBudget:
    """The message octets all connections may hold in memory together; past it, messages are
    spooled to files (so many large messages at once cannot exhaust memory)."""

    def __init__(self, octets: int) -> None:
        self.octets = octets
        self.used = 0

    def take(self, octets: int) -> bool:
        if self.used + octets > self.octets:
            return False
        self.used += octets
        return True

    def give(self, octets: int) -> None:
        self.used = max(0, self.used - octets)


class Spool:
    """Where message bodies larger than `threshold` octets (or over the memory budget) go:
    files in `directory`, removed when their transaction ends (before-queue: a spool file is
    never the only copy of acknowledged mail, so files left by a crash are removed at start)."""

    def __init__(self, directory: Path, threshold: int, budget: MemoryBudget) -> None:
        self.directory = directory
        self.threshold = threshold
        self.budget = budget

    def prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob("msg-*"):
            stale.unlink(missing_ok=True)

    def open(self) -> tuple[Path, BinaryIO]:
        self.directory.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix="msg-", dir=self.directory)
        return Path(name), os.fdopen(handle, "wb", buffering=1 << 16)


@dataclass(slots=True)
class DataResult:
    """The message (CRLF lines, dot-unstuffed) or the reason it is refused. A large message's
    body is spooled (`SpooledMessage`): the receiver closes it when the transaction ends."""

    message: bytes | SpooledMessage
    size: int  # octets received after unstuffing (also when too big)
    reply: Reply | None = None  # set when the message must be refused
    events: list[Event] = field(default_factory=list)


class MessageBuilder:
    """Checks and collects the raw lines of one message (each ending with LF, but the last)."""

    def __init__(
        self,
        limits: SMTPLimits,
        bare: BareLineEnding,
        *,
        dot_stuffed: bool,
        spool: Spool | None = None,
    ) -> None:
        self.limits = limits
        self.bare = bare
        self.dot_stuffed = dot_stuffed  # DATA: unstuff leading dots (RFC 5321 §4.5.2)
        self.spool = spool
        self.parts: list[bytes] = []  # the header section (bounded by max_header_size)
        self.body = bytearray()  # the body while it is small and the budget allows
        self.held = 0  # octets of `body` taken from the memory budget
        self.file: BinaryIO | None = None  # the spool file, once the body went there
        self.path: Path | None = None
        self.size = 0
        self.header_size = 0
        self.in_header = True
        self.seen_body = False  # the empty line ending the header section was kept
        self.after_crlf = True  # the previous raw line ended in CRLF (DATA's own CRLF counts)
        self.tail = b"\r\n"  # the last octets of the previous raw line (sequences across lines)
        self.fast = True  # whole lines may still be taken at once (`lines`)
        self.reply: Reply | None = None
        self.events: list[Event] = []

    def note(self, event: Event) -> None:
        if event not in self.events:
            self.events.append(event)

    def refuse(self, reply: Reply) -> None:
        """Keep the first reason to refuse; the data is still read, and thrown away."""
        if self.reply is None:
            self.reply = reply
            self.parts.clear()
            self.discard()

    def discard(self) -> None:
        """Drop what was kept of the body (memory and spool file)."""
        self.body = bytearray()
        if self.spool is not None:
            self.spool.budget.give(self.held)
        self.held = 0
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None

    def _keep_body(self, chunk: bytes) -> None:
        if self.file is not None:
            self.file.write(chunk)
            return
        spool = self.spool
        if spool is not None and (
            len(self.body) + len(chunk) > spool.threshold or not spool.budget.take(len(chunk))
        ):
            self.path, self.file = spool.open()
            self.file.write(self.body)
            self.file.write(chunk)
            spool.budget.give(self.held)
            self.body, self.held = bytearray(), 0
            return
        self.body += chunk
        if spool is not None:
            self.held += len(chunk)

    def too_long(self) -> None:
        """A line longer than the limit was read and dropped."""
        self.note(Event.LINE_TOO_LONG)
        limit = self.limits.max_line_length
        self.refuse(Reply(500, "5.6.0", f"Error: message line longer than {limit} octets"))
        self.after_crlf, self.tail = True, b"\r\n"

    def lines(self, block: bytes) -> tuple[int, bool]:
        """Take the whole lines of `block` (raw lines up to a LF: DATA's buffered, a BDAT
        chunk's) at once, when they need nothing but to be kept: each ends with CRLF and has
        no other CR or LF, none is longer than the line limit and no limit is reached; in
        DATA, leading dots are unstuffed and the end of data (".", CRLF) is found as `line`
        and `read_data` do.
        Return the octets taken (the end-of-data line included) and whether the message
        ended; (0, False) when these lines must go one by one through `line` (for the rest of
        the message: the outcome, a refusal included, is then `line`'s at the exact line)."""
        if not self.fast or not block:
            return 0, False
        if self.reply is not None or not self.after_crlf:
            self.fast = False
            return 0, False
        end = (b"\r\n" + block).find(b"\r\n.\r\n") if self.dot_stuffed else -1
        taken = len(block) if end < 0 else end + 3  # the end-of-data line with them
        raw = block if end < 0 else block[:end]
        crlf = raw.count(b"\r\n")
        limits = self.limits
        longest = limits.max_line_length - 2  # octets of a line without its CRLF
        plain = (
            raw.endswith(b"\r\n")
            and raw.count(b"\n") == crlf
            and raw.count(b"\r") == crlf
            and (len(raw) <= longest or max(map(len, raw.split(b"\r\n"))) <= longest)
        )
        if raw and not plain:
            self.fast = False  # a bare CR or LF, or a line too long: line by line
            return 0, False
        text = raw
        if self.dot_stuffed and (raw.startswith(b".") or b"\r\n." in raw):
            text = (b"\r\n" + raw).replace(b"\r\n.", b"\r\n")[2:]  # RFC 5321 §4.5.2
        if self.size + len(text) > limits.max_message_size:
            self.fast = False
            return 0, False
        body = text
        if self.in_header:
            found = text.find(b"\r\n\r\n")
            split = 0 if text.startswith(b"\r\n") else -1 if found < 0 else found + 2
            header = text if split < 0 else text[:split]
            if self.header_size + len(header) > limits.max_header_size:
                self.fast = False
                return 0, False
            self.header_size += len(header)
            if header:
                self.parts.append(header)
            body = b""
            if split >= 0:
                self.parts.append(b"\r\n")  # the empty line ending the header section
                self.in_header, self.seen_body = False, True
                body = text[split + 2 :]
        if body:
            self._keep_body(body)
        self.size += len(text)
        if raw:
            self.tail = b"\r\n"
        return taken, end >= 0

    def line(self, line: bytes) -> None:
        crlf = line.endswith(b"\r\n")
        lf = line.endswith(b"\n")
        body = line[:-2] if crlf else line[:-1] if lf else line  # no LF inside
        bare_cr = b"\r" in body
        if (lf and not crlf) or bare_cr or not self.after_crlf:
            if lf and not crlf:
                self.note(Event.BARE_LF)
            if bare_cr:
                self.note(Event.BARE_CR)
            if any(m.group() != b"\r\n.\r\n" for m in _FALSE_END.finditer(self.tail + line)):
                self.note(Event.SMUGGLING)
            if self.bare is BareLineEnding.REJECT:
                self.refuse(
                    Reply(554, "5.5.2", "Error: bare CR or LF in message (only CRLF ends a line)")
                )
            lines = body.split(b"\r") if self.bare is BareLineEnding.NORMALIZE else [body]
        else:
            lines = [body]
        if self.dot_stuffed and self.after_crlf and lines[0].startswith(b"."):
            lines[0] = lines[0][1:]  # RFC 5321 §4.5.2: dot-unstuffing
        self.after_crlf = crlf or not lf  # a last line without line end is ended by us
        self.tail = (self.tail + line)[-2:]
        limits = self.limits
        for text in lines:
            chunk = text + b"\r\n"
            self.size += len(chunk)
            if self.in_header:
                if text == b"":
                    self.in_header = False
                else:
                    self.header_size += len(chunk)
                    if self.header_size > limits.max_header_size:
                        self.refuse(
                            Reply(
                                552, "5.3.4", f"Error: header larger than {limits.max_header_size}"
                            )
                        )
            if self.size > limits.max_message_size:
                self.refuse(Reply(552, "5.3.4", "Error: message size exceeds fixed maximum size"))
            if self.reply is None:
                if self.in_header or (text == b"" and not self.seen_body):
                    self.parts.append(chunk)  # the header section and the empty line
                    self.seen_body = not self.in_header
                else:
                    self._keep_body(chunk)

    def result(self) -> DataResult:
        """The message; a spooled body stays in its file (the receiver closes it). The
        memory budget is given back: what is returned is the receiver's to hold."""
        if self.reply is not None:
            self.discard()
            return DataResult(b"", self.size, self.reply, self.events)
        head = b"".join(self.parts)
        if self.file is not None and self.path is not None:
            self.file.close()
            body = SpooledBody(self.path, self.path.stat().st_size)
            self.file, self.path = None, None
            return DataResult(SpooledMessage(head, body), self.size, None, self.events)
        message = head + bytes(self.body)
        self.discard()
        return DataResult(message, self.size, None, self.events)


async def read_data(
    stream: Stream,
    limits: SMTPLimits,
    block_timeout: float,
    bare: BareLineEnding,
    spool: Spool | None = None,
) -> DataResult:
    """Read up to the real end of data; raise TimeoutError or ConnectionClosed (the spool
    file, if any, is removed then)."""
    builder = MessageBuilder(limits, bare, dot_stuffed=True, spool=spool)
    try:
        return await _read_data(stream, builder, limits, block_timeout)
    except BaseException:
        builder.discard()
        raise


async def _read_data(
    stream: Stream, builder: MessageBuilder, limits: SMTPLimits, block_timeout: float
) -> DataResult:
    while True:
        # What is buffered already, in whole lines, at once while it is plain text; else one
        # line at a time.
        taken, ended = builder.lines(stream.buffered_lines(BLOCK))
        if taken:
            stream.consume(taken)
            if ended:
                break
            continue
        try:
            line = await stream.readline(limits.max_line_length, block_timeout)
        except LineTooLong:
            builder.too_long()
            continue
        if builder.after_crlf and line == b".\r\n":
            break
        builder.line(line)
    return builder.result()


class ChunkedMessage:
    """A message arriving in BDAT chunks (RFC 3030 §2): octets in, lines to the builder."""

    def __init__(
        self, limits: SMTPLimits, bare: BareLineEnding, spool: Spool | None = None
    ) -> None:
        self.limits = limits
        self.builder = MessageBuilder(limits, bare, dot_stuffed=False, spool=spool)
        self.received = 0  # octets of the chunks so far
        self.chunks = 0
        self._pending = bytearray()  # a line not ended yet
        self._discarding = False  # inside a line too long: drop octets up to its LF

    @property
    def reply(self) -> Reply | None:
        return self.builder.reply

    def feed(self, data: bytes) -> None:
        """Octets of a chunk, as they arrive (a line may span chunks)."""
        self.received += len(data)
        limit = self.limits.max_line_length
        start = 0
        last = data.rfind(b"\n") + 1
        tried = not self.builder.fast
        while True:
            if not (tried or self._pending or self._discarding):  # whole plain lines: at once
                tried = True
                start += self.builder.lines(data[start:last])[0]
            end = data.find(b"\n", start)
            if end < 0:
                break
            piece = data[start : end + 1]
            start = end + 1
            if self._discarding:
                self._discarding = False
                self.builder.too_long()
                continue
            line = bytes(self._pending) + piece if self._pending else piece
            self._pending.clear()
            if len(line) > limit:
                self.builder.too_long()
            else:
                self.builder.line(line)
        rest = data[start:]
        if self._discarding:
            return
        self._pending += rest
        if len(self._pending) > limit:
            self._pending.clear()
            self._discarding = True

    def skip(self, octets: int, reply: Reply) -> None:
        """A chunk that was read and thrown away; the message is refused with `reply`."""
        self.received += octets
        self.builder.refuse(reply)

    def finish(self) -> DataResult:
        """After BDAT LAST: the last line, if it has no line end, ends here."""
        if self._discarding:
            self.builder.too_long()
        elif self._pending:
            self.builder.line(bytes(self._pending))
        self._pending.clear()
        self._discarding = False
        return self.builder.result()
