"""SMTP command lines: verb, argument, MAIL/RCPT paths and ESMTP parameters (RFC 5321 §4.1).

Pure parsing, no I/O: every function either returns a value or raises `CommandError` with the
reply the server should send.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .hooks import Reply

__all__ = [
    "Command",
    "CommandError",
    "is_non_smtp",
    "parse_bdat",
    "parse_command",
    "parse_path_and_params",
]

# Verbs the gateway knows; anything else is an unknown command (500 5.5.2).
KNOWN_VERBS = frozenset(
    {"HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "VRFY", "EXPN", "HELP"}
    | {"STARTTLS", "BDAT", "AUTH", "ETRN", "TURN"}
)
# Request lines of other protocols sent to the SMTP port (postscreen's non-SMTP command test).
_NON_SMTP = re.compile(
    r"^(?:(?:GET|POST|PUT|HEAD|DELETE|OPTIONS|PATCH|CONNECT|TRACE)\s+\S+(?:\s+HTTP/\d(?:\.\d)?)?"
    r"|[A-Za-z-]+:\s.*|USER\s.*|PASS\s.*|\x16\x03.*)$",
    re.DOTALL,
)
_ESMTP_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_ESMTP_VALUE = re.compile(r"[\x21-\x3c\x3e-\x7e\u0080-\U0010FFFF]+")  # RFC 5321 + RFC 6531


class CommandError(ValueError):
    """A command that cannot be accepted, with the reply to send."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


@dataclass(frozen=True, slots=True)
class Command:
    """A command line without its CRLF: the verb upper-cased, the argument as sent."""

    verb: str
    arg: str

    @property
    def known(self) -> bool:
        return self.verb in KNOWN_VERBS


def parse_command(line: bytes) -> Command:
    """Split a command line (without CRLF). Raises CommandError for undecodable input."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(Reply(500, "5.5.2", "Error: command line is not UTF-8")) from None
    if any(c in text for c in "\r\n\x00"):
        raise CommandError(Reply(500, "5.5.2", "Error: bad character in command line"))
    verb, _, arg = text.partition(" ")
    return Command(verb.upper(), arg.strip(" "))


BDAT_SIZE_DIGITS = 18  # a chunk of 10^18 octets or more is not a chunk


def parse_bdat(arg: str) -> tuple[int, bool]:
    """`chunk-size [SP "LAST"]` of a BDAT command (RFC 3030 §2) as (size, last).

    Raises CommandError when the size cannot be read (runs of spaces are tolerated, as most
    servers do; digits are ASCII only).
    """
    words = [word for word in arg.split(" ") if word]
    if not 1 <= len(words) <= 2:
        raise CommandError(Reply(501, "5.5.4", "Syntax: BDAT size [LAST]"))
    size = words[0]
    if not (size.isascii() and size.isdigit()) or len(size) > BDAT_SIZE_DIGITS:
        raise CommandError(Reply(501, "5.5.4", "Syntax: BDAT size [LAST]"))
    if len(words) == 2 and words[1].upper() != "LAST":
        raise CommandError(Reply(501, "5.5.4", "Syntax: BDAT size [LAST]"))
    return int(size), len(words) == 2


def is_non_smtp(line: bytes) -> bool:
    """An HTTP request line, a mail header or a TLS hello sent where a command belongs."""
    text = line.decode("latin-1")
    verb = text.split(" ", 1)[0].upper()
    if verb in KNOWN_VERBS:
        return False
    return bool(_NON_SMTP.match(text))


def parse_path_and_params(arg: str, keyword: str) -> tuple[str, dict[str, str | None]]:
    """Split `FROM:<path> PARAM=value ...` (keyword "FROM" or "TO") into the path and params.

    The path keeps its angle brackets for `relay.parse_path`; parameters are upper-cased
    keywords. One space after the colon is tolerated, as most servers do.
    """
    prefix = keyword + ":"
    if arg[: len(prefix)].upper() != prefix:
        raise CommandError(Reply(501, "5.5.4", f"Syntax: {keyword}:<address>"))
    rest = arg[len(prefix) :].lstrip(" ")
    if not rest.startswith("<"):
        raise CommandError(
            Reply(
                501,
                "5.1.7" if keyword == "FROM" else "5.1.3",
                "Bad address syntax: angle brackets required",
            )
        )
    end = _path_end(rest)
    if end < 0:
        raise CommandError(Reply(501, "5.5.4", "Syntax error: unterminated path"))
    path, tail = rest[: end + 1], rest[end + 1 :]
    if tail and not tail.startswith(" "):
        raise CommandError(Reply(501, "5.5.4", "Syntax error after the address"))
    return path, parse_params(tail)


def _path_end(text: str) -> int:
    """Index of the `>` closing the path, skipping quoted strings; -1 if none."""
    quoted = False
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return index
    return -1


def parse_params(text: str) -> dict[str, str | None]:
    """ESMTP parameters `KEY[=value]` separated by spaces (RFC 5321 §4.1.2)."""
    params: dict[str, str | None] = {}
    for item in text.split(" "):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not _ESMTP_KEYWORD.fullmatch(key) or (eq and not _ESMTP_VALUE.fullmatch(value)):
            raise CommandError(Reply(501, "5.5.4", f"Syntax error in parameter {item!r}"))
        upper = key.upper()
        if upper in params:
            raise CommandError(Reply(501, "5.5.4", f"Duplicate parameter {upper}"))
        params[upper] = value if eq else None
    return params
