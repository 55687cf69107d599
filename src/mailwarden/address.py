"""RFC 5322 address lists (From, Sender, To ...) parsed into mailboxes, never crashing.

`parse_address_list(value)` reads one header field's unfolded value: mailboxes, name-addrs,
groups, comments, quoted strings, obsolete routes and empty list elements (RFC 5322 §3.4, §4.4).
Every malformed input raises `AddressError` (a ValueError) with a clear message. The display
name is kept as written (RFC 2047 encoded-words are not decoded: DMARC does not need them).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailwarden.frozen import quick_init

__all__ = ["MAX_LENGTH", "AddressError", "Mailbox", "parse_address_list"]

MAX_LENGTH = 64 * 1024  # a From field longer than this is hostile, not mail

# RFC 5322 §3.2.3 atext, plus "." (obs-phrase / dot-atom are read as one word and checked
# later) and any non-ASCII character (RFC 6532 UTF-8 headers).
_ATEXT = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~."
)
_SPECIALS = frozenset('()<>[]:;@\\,."')
_WSP = frozenset(" \t\r\n")


class AddressError(ValueError):
    """The text is not a valid RFC 5322 address list."""


@quick_init
@dataclass(frozen=True, slots=True)
class Mailbox:
    """One mailbox: `local_part` without quotes, `domain` as written (a final root dot, as
    in `bank.example.`, dropped: it names the same domain)."""

    display_name: str
    local_part: str
    domain: str

    @property
    def address(self) -> str:
        return f"{self.local_part}@{self.domain}"


# Token kinds: "atom" (text), "qs" (quoted-string content), "lit" (domain literal incl.
# brackets) or a one-character special.
_Token = tuple[str, str]


def _tokenize(value: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c in _WSP:
            i += 1
        elif c == "(":  # comment, possibly nested, with quoted-pairs (RFC 5322 §3.2.2)
            depth = 0
            while i < n:
                c = value[i]
                if c == "\\":
                    i += 2
                    continue
                if c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            if depth:
                raise AddressError("unterminated comment")
            i += 1
        elif c == '"':
            i += 1
            chars: list[str] = []
            while True:
                if i >= n:
                    raise AddressError("unterminated quoted string")
                c = value[i]
                if c == "\\":
                    if i + 1 >= n:
                        raise AddressError("unterminated quoted string")
                    chars.append(value[i + 1])
                    i += 2
                    continue
                if c == '"':
                    i += 1
                    break
                if c not in "\r\n":  # folding inside a quoted string is FWS
                    chars.append(c)
                i += 1
            tokens.append(("qs", "".join(chars)))
        elif c == "[":
            end = value.find("]", i)
            if end < 0:
                raise AddressError("unterminated domain literal")
            tokens.append(("lit", value[i : end + 1]))
            i = end + 1
        elif c in _SPECIALS:
            tokens.append((c, c))
            i += 1
        elif c in _ATEXT or not c.isascii():
            start = i
            while i < n and (
                value[i] in _ATEXT or (not value[i].isascii() and value[i] not in _WSP)
            ):
                i += 1
            tokens.append(("atom", value[start:i]))
        else:
            raise AddressError(f"invalid character {c!r} in address list")
    return tokens


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def expect(self, kind: str) -> _Token:
        if self.peek() != kind:
            found = "end of field" if self.peek() is None else repr(self.tokens[self.pos][1])
            raise AddressError(f"expected {kind!r}, found {found}")
        return self.take()

    def address_list(self) -> list[Mailbox]:
        mailboxes: list[Mailbox] = []
        while True:
            while self.peek() == ",":  # obs-addr-list: empty elements
                self.take()
            if self.peek() is None:
                break
            mailboxes.extend(self.address())
            if self.peek() is None:
                break
            self.expect(",")
        return mailboxes

    def phrase(self) -> list[_Token]:
        words: list[_Token] = []
        while self.peek() in ("atom", "qs", "."):
            words.append(self.take())
        return words

    def address(self) -> list[Mailbox]:
        start = self.pos
        words = self.phrase()
        kind = self.peek()
        if kind == ":":  # group: display-name ":" [group-list] ";"
            if not words:
                raise AddressError("group without a display name")
            self.take()
            members: list[Mailbox] = []
            while self.peek() not in (";", None):
                if self.peek() == ",":
                    self.take()
                    continue
                members.append(self.mailbox())
            self.expect(";")
            return members
        self.pos = start
        return [self.mailbox()]

    def mailbox(self) -> Mailbox:
        start = self.pos
        words = self.phrase()
        if self.peek() == "<":
            self.take()
            if self.peek() == "@":  # obs-route: "@" domain *("," ["@" domain]) ":"
                while self.peek() != ":":
                    if self.peek() is None:
                        raise AddressError("unterminated route in angle address")
                    self.take()
                self.take()
            local, domain = self.addr_spec()
            self.expect(">")
            return Mailbox(_display(words), local, domain)
        if self.peek() == "@":
            self.pos = start
            local, domain = self.addr_spec()
            return Mailbox("", local, domain)
        if not words:
            found = "end of field" if self.peek() is None else repr(self.tokens[self.pos][1])
            raise AddressError(f"expected a mailbox, found {found}")
        raise AddressError(f"no address in {_display(words)!r}")

    def addr_spec(self) -> tuple[str, str]:
        parts: list[str] = []
        while self.peek() in ("atom", "qs", "."):
            parts.append(self.take()[1])
        if not parts:
            raise AddressError("empty local-part")
        self.expect("@")
        kind = self.peek()
        if kind == "lit":
            domain = self.take()[1]
        elif kind == "atom":
            domain = self.take()[1]
            # RFC 5322 §4.4 obs-domain allows CFWS between the labels ("bank .example",
            # "bank.example. evil"): programs read such a domain differently, and that
            # disagreement is what a spoof uses to hide its domain: refuse it.
            if self.peek() == "." or (domain.endswith(".") and self.peek() == "atom"):
                raise AddressError(f"white space or a comment inside the domain after {domain!r}")
        else:
            raise AddressError("missing domain after '@'")
        if domain.endswith(".") and not domain.endswith(".."):
            domain = domain[:-1]  # the root's dot: bank.example. is bank.example
        if not domain or domain.startswith(".") or domain.endswith(".") or ".." in domain:
            raise AddressError(f"invalid domain {domain!r}")
        return "".join(parts), domain


def _display(words: list[_Token]) -> str:
    return " ".join(text for _, text in words)


def parse_address_list(value: str) -> list[Mailbox]:
    """The mailboxes of an address-list field value (groups flattened); AddressError if bad."""
    if len(value) > MAX_LENGTH:
        raise AddressError("address list too long")
    parser = _Parser(_tokenize(value))
    return parser.address_list()
