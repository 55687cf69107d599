"""One parse per message: the header fields, the author and the body hashes, shared.

`parse(data)` splits the message once (`mailwarden.message`), reads its From field(s) once
(`mailwarden.author`) and makes the one `BodyHasher` that DKIM and ARC share, so a body is
canonicalized and hashed once per (canonicalization, length) whatever the number of
signatures and ARC sets. The front end writes its header changes from the same fields.

It also says when the header section is one that parsers would read differently (a line that
is not a field, a NUL character; 8-bit bytes in the From field of a message sent without
SMTPUTF8): the policy refuses such a message. The checks still run on the lenient reading, in
which such lines are kept but never read as fields, so the verdict says everything it can.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mailwarden.author import AuthorProblem, Authors, read_authors
from mailwarden.body import SpooledBody, SpooledMessage
from mailwarden.dkim import BodyHasher
from mailwarden.frozen import quick_init
from mailwarden.message import Message, MessageError

__all__ = ["ParsedMessage", "parse"]


@quick_init
@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """A message read once. `message` is None when its header section cannot be read at all
    (over a limit); `raw` is always the bytes as received. `header_problem` says why a strict
    reading refuses the header section, with the enhanced status code of that refusal."""

    raw: bytes  # for a spooled message: its header section (the body is `message.body`)
    message: Message | None
    authors: Authors
    body: BodyHasher | None
    problem: str | None = None  # why `message` is None
    header_problem: str | None = None
    header_status: str = "5.6.0"
    spooled: SpooledBody | None = None  # the body in its spool file (large messages)


def parse(
    data: bytes | SpooledMessage | Message | ParsedMessage,
    *,
    strict: bool = True,
    smtputf8: bool = True,
) -> ParsedMessage:
    """The message `data` (on-wire form, CRLF line ends) read once for every check.

    `strict`: a malformed header section is a `header_problem`. `smtputf8`: whether the
    message came with SMTPUTF8 (RFC 6531); without it, 8-bit bytes in From are a problem.
    """
    if isinstance(data, ParsedMessage):
        return data
    header_problem: str | None = None
    spooled = data.body if isinstance(data, SpooledMessage) else None
    if isinstance(data, SpooledMessage):
        data = data.head  # the header section is read in memory, the body stays in its file
    if isinstance(data, Message):
        message, raw = data, data.header_section if isinstance(data.body, SpooledBody) else data.raw
    else:
        raw = data
        try:
            message = Message.from_bytes(data)
        except MessageError as exc:
            try:
                message = Message.from_bytes(data, strict=False)
            except MessageError as hopeless:  # over a limit: nothing can be read
                why = f"unreadable header section: {hopeless}"
                authors = Authors((), problem=AuthorProblem.SYNTAX, reason=why)
                return ParsedMessage(raw, None, authors, None, str(hopeless), why, spooled=spooled)
            if strict:
                header_problem = str(exc)
    if spooled is not None:
        message = dataclasses.replace(message, body=spooled)
    from_fields = message.get_all("from")
    authors = read_authors([f.text() for f in from_fields])
    status = "5.6.0"
    if header_problem is None and not smtputf8 and any(not f.raw.isascii() for f in from_fields):
        # RFC 6532 §3.2 / RFC 6531: UTF-8 in header fields only over SMTPUTF8
        header_problem = (
            "8-bit characters in the From field, and the message was not sent with SMTPUTF8"
        )
        status = "5.6.7"
    return ParsedMessage(
        raw, message, authors, BodyHasher(message.body), None, header_problem, status, spooled
    )
