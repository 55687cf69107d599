"""The envelope as a front end receives it, checked once for every front end (the CLI's
options and batch lines, the HTTP API's query): HELO name and reverse-path."""

from __future__ import annotations

__all__ = ["parse_helo", "parse_mail_from"]


def parse_mail_from(text: str) -> str:
    """The reverse-path as given ('' for the null path <>). A malformed domain is no reason to
    refuse: check_host() gives "none" for it (RFC 7208 §4.3); control characters are."""
    address = text.strip()
    if address in ("", "<>"):
        return ""
    if not address.isprintable():
        raise ValueError(f"invalid mail-from {text!r}: control characters")
    return address


def parse_helo(text: str) -> str:
    """The HELO name as given; a malformed one gives "none" (RFC 7208 §4.3), but an empty one
    or one with control characters is not a HELO at all."""
    helo = text.strip()
    if not helo or not helo.isprintable():
        raise ValueError(f"invalid HELO name {text!r}")
    return helo
