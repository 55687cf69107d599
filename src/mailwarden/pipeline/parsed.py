"""One parse per message: the header fields, the author and the body hashes, shared.

`parse(data)` splits the message once (`mailwarden.message`), reads its From field(s) once
(`mailwarden.author`) and makes the one `BodyHasher` that DKIM and ARC share, so a body is
canonicalized and hashed once per (canonicalization, length) whatever the number of
signatures and ARC sets. The front end writes its header changes from the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailwarden.author import AuthorProblem, Authors, read_authors
from mailwarden.dkim import BodyHasher
from mailwarden.message import Message, MessageError

__all__ = ["ParsedMessage", "parse"]


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """A message read once. `message` is None when its header section cannot be read
    (`problem` says why); `raw` is always the bytes as received."""

    raw: bytes
    message: Message | None
    authors: Authors
    body: BodyHasher | None
    problem: str | None = None


def parse(data: bytes | Message | ParsedMessage) -> ParsedMessage:
    """The message `data` (on-wire form, CRLF line ends) read once for every check."""
    if isinstance(data, ParsedMessage):
        return data
    if isinstance(data, Message):
        message, raw = data, data.raw
    else:
        raw = data
        try:
            message = Message.from_bytes(data)
        except MessageError as exc:
            why = f"unreadable header section: {exc}"
            authors = Authors((), problem=AuthorProblem.SYNTAX, reason=why)
            return ParsedMessage(raw, None, authors, None, str(exc))
    authors = read_authors([f.text() for f in message.get_all("from")])
    return ParsedMessage(raw, message, authors, BodyHasher(message.body))
