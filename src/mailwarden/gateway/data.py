"""Reading the DATA phase strictly: only CRLF.CRLF ends a message (RFC 5321 §4.1.1.4).

SMTP smuggling (CVE-2023-51766 and friends) hides a second message behind a false end of data
that some servers accept: LF.LF, CR.CR, LF.CRLF, CRLF.LF. The gateway never ends DATA on
those, and by default refuses a message that contains them or any bare CR or LF; with
`normalize` they become CRLF line ends inside the one message, which is then relayed
dot-stuffed, so a downstream server can never see two messages either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailwarden.settings import BareLineEnding, SMTPLimits

from .hooks import Event, Reply
from .stream import LineTooLong, Stream

__all__ = ["DataResult", "read_data"]

# <X>.<Y> with X, Y in {CRLF, CR, LF}: any that is not CRLF.CRLF is a false end of data.
_FALSE_END = re.compile(rb"(?:\r\n|\r|\n)\.(?:\r\n|\r|\n)")


@dataclass(slots=True)
class DataResult:
    """The message (CRLF lines, dot-unstuffed) or the reason it is refused."""

    message: bytes
    size: int  # octets received after unstuffing (also when too big)
    reply: Reply | None = None  # set when the message must be refused
    events: list[Event] = field(default_factory=list)


async def read_data(
    stream: Stream, limits: SMTPLimits, block_timeout: float, bare: BareLineEnding
) -> DataResult:
    """Read up to the real end of data; raise TimeoutError or ConnectionClosed."""
    parts: list[bytes] = []
    size = 0
    header_size = 0
    in_header = True
    after_crlf = True  # the previous raw line ended in CRLF (DATA's own CRLF counts)
    tail = b"\r\n"  # the last octets of the previous raw line, to see sequences across lines
    reply: Reply | None = None
    events: list[Event] = []

    def note(event: Event) -> None:
        if event not in events:
            events.append(event)

    while True:
        try:
            line = await stream.readline(limits.max_line_length, block_timeout)
        except LineTooLong:
            note(Event.LINE_TOO_LONG)
            reply = reply or Reply(
                500, "5.6.0", f"Error: message line longer than {limits.max_line_length} octets"
            )
            after_crlf, tail = True, b"\r\n"
            continue
        if after_crlf and line == b".\r\n":
            break
        crlf = line.endswith(b"\r\n")
        body = line[:-2] if crlf else line[:-1]  # no LF inside: lines are split on LF
        bare_cr = b"\r" in body
        if not crlf or bare_cr or not after_crlf:
            if not crlf:
                note(Event.BARE_LF)
            if bare_cr:
                note(Event.BARE_CR)
            if any(m.group() != b"\r\n.\r\n" for m in _FALSE_END.finditer(tail + line)):
                note(Event.SMUGGLING)
            if bare is BareLineEnding.REJECT:
                reply = reply or Reply(
                    554, "5.5.2", "Error: bare CR or LF in message (only CRLF ends a line)"
                )
            lines = body.split(b"\r") if bare is BareLineEnding.NORMALIZE else [body]
        else:
            lines = [body]
        if after_crlf and lines[0].startswith(b"."):
            lines[0] = lines[0][1:]  # RFC 5321 §4.5.2: dot-unstuffing
        after_crlf = crlf
        tail = (tail + line)[-2:]
        for text in lines:
            chunk = text + b"\r\n"
            size += len(chunk)
            if in_header:
                if text == b"":
                    in_header = False
                else:
                    header_size += len(chunk)
                    if header_size > limits.max_header_size and reply is None:
                        reply = Reply(
                            552, "5.3.4", f"Error: header larger than {limits.max_header_size}"
                        )
            if size > limits.max_message_size and reply is None:
                reply = Reply(552, "5.3.4", "Error: message size exceeds fixed maximum size")
            if reply is None:
                parts.append(chunk)
    return DataResult(b"".join(parts) if reply is None else b"", size, reply, events)
