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

import re
from dataclasses import dataclass, field

from mailwarden.settings import BareLineEnding, SMTPLimits

from .hooks import Event, Reply
from .stream import LineTooLong, Stream

__all__ = ["ChunkedMessage", "DataResult", "MessageBuilder", "read_data"]

# <X>.<Y> with X, Y in {CRLF, CR, LF}: any that is not CRLF.CRLF is a false end of data.
_FALSE_END = re.compile(rb"(?:\r\n|\r|\n)\.(?:\r\n|\r|\n)")


@dataclass(slots=True)
class DataResult:
    """The message (CRLF lines, dot-unstuffed) or the reason it is refused."""

    message: bytes
    size: int  # octets received after unstuffing (also when too big)
    reply: Reply | None = None  # set when the message must be refused
    events: list[Event] = field(default_factory=list)


class MessageBuilder:
    """Checks and collects the raw lines of one message (each ending with LF, but the last)."""

    def __init__(self, limits: SMTPLimits, bare: BareLineEnding, *, dot_stuffed: bool) -> None:
        self.limits = limits
        self.bare = bare
        self.dot_stuffed = dot_stuffed  # DATA: unstuff leading dots (RFC 5321 §4.5.2)
        self.parts: list[bytes] = []
        self.size = 0
        self.header_size = 0
        self.in_header = True
        self.after_crlf = True  # the previous raw line ended in CRLF (DATA's own CRLF counts)
        self.tail = b"\r\n"  # the last octets of the previous raw line (sequences across lines)
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

    def too_long(self) -> None:
        """A line longer than the limit was read and dropped."""
        self.note(Event.LINE_TOO_LONG)
        limit = self.limits.max_line_length
        self.refuse(Reply(500, "5.6.0", f"Error: message line longer than {limit} octets"))
        self.after_crlf, self.tail = True, b"\r\n"

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
                self.parts.append(chunk)

    def result(self) -> DataResult:
        message = b"".join(self.parts) if self.reply is None else b""
        return DataResult(message, self.size, self.reply, self.events)


async def read_data(
    stream: Stream, limits: SMTPLimits, block_timeout: float, bare: BareLineEnding
) -> DataResult:
    """Read up to the real end of data; raise TimeoutError or ConnectionClosed."""
    builder = MessageBuilder(limits, bare, dot_stuffed=True)
    while True:
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

    def __init__(self, limits: SMTPLimits, bare: BareLineEnding) -> None:
        self.limits = limits
        self.builder = MessageBuilder(limits, bare, dot_stuffed=False)
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
        while True:
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
