"""Envelope addresses and the closed relay: parse SMTP paths strictly, refuse relay tricks.

`parse_path` reads the `<...>` path of MAIL FROM / RCPT TO (RFC 5321 §4.1.2, SMTPUTF8 per
RFC 6531); `RelayControl.check` decides whether a recipient is ours to accept. The tricks
that make an open relay of a careless server are refused, never rewritten or forwarded:
`user%host@local`, source routes `@a,@b:user@c`, quoted local parts holding `@`, `%` or `!`,
bang paths `host!user@local`, a trailing dot `user@local.`, and IP-literal domains not ours.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from .hooks import Reply

__all__ = [
    "Address",
    "PathError",
    "RelayControl",
    "Trick",
    "load_recipient_map",
    "parse_path",
    "postmaster_address",
]

# RFC 5321 §4.5.3.1.1-3: size limits of an address.
LOCAL_PART_MAX = 64
DOMAIN_MAX = 255
PATH_MAX = 256

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]"
_ATEXT_UTF8 = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010FFFF]"
_DOT_STRING = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_DOT_STRING_UTF8 = re.compile(rf"{_ATEXT_UTF8}+(?:\.{_ATEXT_UTF8}+)*")
# RFC 5321 §4.1.2: qtextSMTP and quoted-pairSMTP.
_QUOTED = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"')
_QUOTED_UTF8 = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010FFFF]|\\[\x20-\x7e])*"')
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_LABEL_UTF8 = re.compile(r"[A-Za-z0-9\u0080-\U0010FFFF](?:[A-Za-z0-9\u0080-\U0010FFFF-]*)?")
_ADL = re.compile(r"@[^,:@<>\s]+(?:,@[^,:@<>\s]+)*:")


class Trick(StrEnum):
    """A way of abusing a mail server as an open relay."""

    SOURCE_ROUTE = "source route"
    PERCENT_HACK = "percent hack"
    BANG_PATH = "bang path"
    QUOTED_AT = "quoted local part with @, % or !"
    TRAILING_DOT = "trailing dot in domain"
    IP_LITERAL = "IP-literal domain not ours"


class PathError(ValueError):
    """A path that is not valid SMTP syntax, or (with `trick`) a relay trick."""

    def __init__(self, reason: str, trick: Trick | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.trick = trick


@dataclass(frozen=True, slots=True)
class Address:
    """A mailbox `local@domain`; `domain` is lower-cased, a literal keeps its brackets."""

    local: str
    domain: str
    quoted: bool = False  # the local part is a quoted string
    source_route: bool = False  # a source route was given (and ignored, MAIL FROM only)

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def literal(self) -> bool:
        return self.domain.startswith("[")


def parse_path(text: str, *, smtputf8: bool = False, null_ok: bool = False) -> Address | None:
    """Parse `<mailbox>` (or `<>` when `null_ok`, giving None). Raises PathError.

    Source routes are tolerated in MAIL FROM (RFC 5321 §4.1.2 says ignore them) and flagged
    with `source_route`; `RelayControl` refuses them in RCPT TO.
    """
    if len(text) > PATH_MAX + 2:
        raise PathError(f"path longer than {PATH_MAX} characters")
    if not (text.startswith("<") and text.endswith(">")) or len(text) < 2:
        raise PathError("the address must be in angle brackets")
    inner = text[1:-1]
    if inner == "":
        if null_ok:
            return None
        raise PathError("the null path <> is not allowed here")
    if not smtputf8 and not inner.isascii():
        # RFC 6531 §3.4: non-ASCII addresses need the SMTPUTF8 parameter.
        raise PathError("non-ASCII address without SMTPUTF8")
    source_route = False
    route = _ADL.match(inner)
    if route:
        source_route = True
        inner = inner[route.end() :]
    elif inner.startswith("@"):
        raise PathError("malformed source route")
    local, domain, quoted = _split_mailbox(inner, smtputf8)
    return Address(local, domain, quoted, source_route)


def _split_mailbox(text: str, smtputf8: bool) -> tuple[str, str, bool]:
    quoted_re = _QUOTED_UTF8 if smtputf8 else _QUOTED
    dot_re = _DOT_STRING_UTF8 if smtputf8 else _DOT_STRING
    if text.startswith('"'):
        match = quoted_re.match(text)
        if not match:
            raise PathError("malformed quoted local part")
        local, quoted = match.group(), True
    else:
        match = dot_re.match(text)
        if not match:
            raise PathError("malformed local part")
        local, quoted = match.group(), False
    rest = text[len(local) :]
    if not rest.startswith("@"):
        raise PathError("the address has no @domain")
    if len(local.encode("utf-8")) > LOCAL_PART_MAX:
        raise PathError(f"local part longer than {LOCAL_PART_MAX} octets")
    domain = rest[1:]
    if domain.endswith(".") and domain != ".":
        raise PathError("trailing dot in domain", Trick.TRAILING_DOT)
    if domain.startswith("["):
        return local, _parse_literal(domain), quoted
    if not domain or len(domain.encode("utf-8")) > DOMAIN_MAX:
        raise PathError("missing or too long domain")
    label_re = _LABEL_UTF8 if smtputf8 else _LABEL
    for label in domain.split("."):
        if not label_re.fullmatch(label) or label.endswith("-"):
            raise PathError(f"invalid domain {domain!r}")
    return local, domain.lower(), quoted


def _parse_literal(text: str) -> str:
    """RFC 5321 §4.1.3 address literals: [IPv4] or [IPv6:...]."""
    if not text.endswith("]"):
        raise PathError("malformed address literal")
    body = text[1:-1]
    try:
        if body[:5].lower() == "ipv6:":
            return f"[IPv6:{ipaddress.IPv6Address(body[5:]).compressed}]"
        return f"[{ipaddress.IPv4Address(body)}]"
    except ValueError:
        raise PathError(f"invalid address literal {text!r}") from None


def _relay_trick(address: Address) -> Trick | None:
    if address.source_route:
        return Trick.SOURCE_ROUTE
    local = address.local
    if address.quoted:
        if any(c in local for c in "@%!"):
            return Trick.QUOTED_AT
        return None
    if "%" in local:
        return Trick.PERCENT_HACK
    if "!" in local:
        return Trick.BANG_PATH
    return None


def load_recipient_map(path: str | Path) -> frozenset[str]:
    """A recipient map file: one address (or `@domain` for all of it) a line, # comments.

    Raises OSError or ValueError (with the line number) for the caller to report.
    """
    entries: set[str] = set()
    text = Path(path).read_text(encoding="utf-8")
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if " " in line or "@" not in line:
            raise ValueError(f"line {number}: expected an address or @domain, got {line!r}")
        local, _, domain = line.rpartition("@")
        entries.add(f"{local}@{domain.lower()}")
    return frozenset(entries)


@dataclass(frozen=True, slots=True)
class RelayControl:
    """Which recipients the gateway accepts: local domains, or the recipient map's entries.

    Addresses are compared with the local part as given (RFC 5321 §2.4: case may matter) and
    the domain lower-cased; the map's `@domain` lines accept every address of that domain.
    """

    local_domains: frozenset[str]
    recipient_map: frozenset[str] | None = None

    @classmethod
    def build(
        cls, local_domains: Iterable[str], recipient_map: Iterable[str] | None = None
    ) -> RelayControl:
        domains = frozenset(d.lower().rstrip(".") for d in local_domains)
        mapped = frozenset(recipient_map) if recipient_map is not None else None
        return cls(domains, mapped)

    def domains(self) -> frozenset[str]:
        """Every domain we accept mail for (local domains and the map's domains)."""
        mapped = {entry.rpartition("@")[2] for entry in self.recipient_map or ()}
        return self.local_domains | mapped

    def is_local(self, address: Address) -> bool:
        return address.domain in self.domains()

    def check(self, address: Address, *, trusted: bool) -> Reply | None:
        """None accepts the recipient; otherwise the refusal (550 5.7.1 for relaying)."""
        trick = _relay_trick(address)
        if trick is not None:
            return Reply(550, "5.7.1", f"<{address}>: Relay access denied ({trick})")
        if address.literal and not self.is_local(address):
            # RFC 5321 §4.1.3: a literal is a host; it is only ours if configured as a domain.
            if not trusted:
                return Reply(550, "5.7.1", f"<{address}>: Relay access denied ({Trick.IP_LITERAL})")
            return None
        if not self.is_local(address):
            if trusted:
                return None
            return Reply(550, "5.7.1", f"<{address}>: Relay access denied")
        if self.recipient_map is not None and address.domain in self._mapped_domains():
            key = f"{address.local}@{address.domain}"
            if key not in self.recipient_map and f"@{address.domain}" not in self.recipient_map:
                return Reply(550, "5.1.1", f"<{address}>: Recipient address rejected: unknown")
        return None

    def _mapped_domains(self) -> frozenset[str]:
        """Domains whose recipients the map lists (local domains without entries accept all)."""
        return frozenset(entry.rpartition("@")[2] for entry in self.recipient_map or ())


def postmaster_address(local_domains: Iterable[str]) -> Address | None:
    """RFC 5321 §4.5.1: the domain-less `<postmaster>` goes to the first local domain."""
    for domain in local_domains:
        return Address("postmaster", domain.lower())
    return None
