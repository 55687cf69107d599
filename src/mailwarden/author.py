"""The author of a message: its RFC 5322 From field(s), read once for every check.

`read_authors(from_values)` parses the From field values into mailboxes and the distinct
Author Domains (A-labels, lower case, no trailing dot) that DMARC evaluates (RFC 9989 §5.3.1),
or says why the message has no single author: no From field, several From fields, a From that
does not parse, an empty From, a domain literal, an invalid domain. DMARC, the domain lists and
the DMARC prefetch all read this one `Authors` value instead of parsing the field again.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from mailwarden.address import AddressError, Mailbox, parse_address_list
from mailwarden.dns import is_domain_name, normalize, to_ascii
from mailwarden.frozen import quick_init

__all__ = ["MAX_AUTHOR_DOMAINS", "AuthorProblem", "Authors", "read_authors"]

MAX_AUTHOR_DOMAINS = 10  # more Author Domains than this is an attack, not mail


class AuthorProblem(StrEnum):
    """Why the From field(s) give no single Author Domain."""

    NO_FROM = "no_from"  # RFC 5322 §3.6: exactly one From field is required
    SEVERAL_FROM = "several_from"
    SYNTAX = "syntax"  # the field does not parse as an address list
    EMPTY = "empty"  # the field holds no mailbox
    DOMAIN_LITERAL = "domain_literal"  # an address at [192.0.2.1]: no domain to evaluate
    INVALID_DOMAIN = "invalid_domain"
    SEVERAL_DOMAINS = "several_domains"  # mailboxes from more than one domain
    TOO_MANY_DOMAINS = "too_many_domains"


@quick_init
@dataclass(frozen=True, slots=True)
class Authors:
    """What the From field(s) say. `domains` holds every distinct Author Domain found (even
    when there is a problem, as far as the fields could be read); `domain` is the one Author
    Domain when there is exactly one and no problem."""

    fields: tuple[str, ...]  # the unfolded From field values, top to bottom
    mailboxes: tuple[Mailbox, ...] = ()
    domains: tuple[str, ...] = ()
    problem: AuthorProblem | None = None
    reason: str = ""  # the problem in words a sender can act on

    @property
    def domain(self) -> str:
        return self.domains[0] if self.problem is None and len(self.domains) == 1 else ""


def read_authors(from_values: Sequence[str]) -> Authors:
    """The Authors of a message whose From field(s) have these (unfolded) values.

    The same From field recurs from message to message (a sender's every mail), so short ones
    are read once while they stay in use: `Authors` is immutable, and a function of the text.
    """
    fields = tuple(from_values)
    if sum(map(len, fields)) <= _CACHED_CHARACTERS:
        return _read_cached(fields)
    return _read(fields)


_CACHED_CHARACTERS = 512  # longer From fields are read every time (no memory held for them)


@functools.lru_cache(maxsize=4096)
def _read_cached(fields: tuple[str, ...]) -> Authors:
    return _read(fields)


def _read(fields: tuple[str, ...]) -> Authors:
    if not fields:
        return Authors(fields, problem=AuthorProblem.NO_FROM, reason="message has no From field")
    mailboxes: list[Mailbox] = []
    syntax: str | None = None
    for value in fields:
        try:
            mailboxes.extend(parse_address_list(value))
        except AddressError as exc:
            syntax = syntax or f"unparseable From field: {exc}"
    domains: list[str] = []
    invalid: tuple[AuthorProblem, str] | None = None
    for mailbox in mailboxes:
        domain, trouble = _author_domain(mailbox)
        if trouble is not None:
            invalid = invalid or trouble
        elif domain not in domains:
            domains.append(domain)
    found = tuple(mailboxes), tuple(domains)
    if syntax is not None:
        return Authors(fields, *found, AuthorProblem.SYNTAX, syntax)
    if not mailboxes:
        return Authors(fields, *found, AuthorProblem.EMPTY, "no address in the From field")
    if invalid is not None:
        return Authors(fields, *found, *invalid)
    if len(fields) > 1:
        return Authors(
            fields, *found, AuthorProblem.SEVERAL_FROM, f"message has {len(fields)} From fields"
        )
    if len(domains) > MAX_AUTHOR_DOMAINS:
        return Authors(
            fields, *found, AuthorProblem.TOO_MANY_DOMAINS, f"{len(domains)} Author Domains"
        )
    if len(domains) > 1:
        listed = ", ".join(domains)
        return Authors(
            fields, *found, AuthorProblem.SEVERAL_DOMAINS, f"several Author Domains ({listed})"
        )
    return Authors(fields, *found)


def _author_domain(mailbox: Mailbox) -> tuple[str, tuple[AuthorProblem, str] | None]:
    if mailbox.domain.startswith("["):
        why = f"From address {mailbox.address!r} has a domain literal"
        return "", (AuthorProblem.DOMAIN_LITERAL, why)
    try:
        domain = normalize(to_ascii(mailbox.domain))  # RFC 9989 §5.3.1: U-labels to A-labels
    except ValueError:
        domain = ""
    if not domain or not is_domain_name(domain):
        why = f"invalid domain in From address {mailbox.address!r}"
        return "", (AuthorProblem.INVALID_DOMAIN, why)
    return domain, None
