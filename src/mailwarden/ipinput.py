"""IP addresses as people and files give them: one parser with one set of clear refusals.

`parse_ip_input(text)` is what every command and every store uses for an address typed on a
command line, read from a batch file or given as an allow target. Besides what
`mailwarden.dns.parse_ip` refuses, it refuses, each with its own message:

- a scoped IPv6 address (`fe80::1%eth0`): a zone id names an interface of one host; an address
  in mail (SPF, iprev, DNS lists, Received-SPF) never carries one (RFC 4007 §11: the zone index
  is local to the node);
- an invalid dotted-quad (`999.1.1.1`, `1.2.3`, `01.2.3.4`): all-numeric labels are never a
  host name (RFC 1123 §2.1: the top-level label is alphabetic), so they are read as an IPv4
  address gone wrong, never as a domain;
- control characters (an embedded NUL, CR or LF): never part of an address.
"""

from __future__ import annotations

import re

from mailwarden.dns import IPAddress, parse_ip

__all__ = ["looks_like_ipv4", "parse_ip_input"]

_DOTTED = re.compile(r"[0-9]+(\.[0-9]+)*\.?", re.ASCII)


def looks_like_ipv4(text: str) -> bool:
    """Digits and dots only: meant as an IPv4 address, never a domain name (RFC 1123 §2.1)."""
    return _DOTTED.fullmatch(text.strip()) is not None


def parse_ip_input(text: str, what: str = "IP address") -> IPAddress:
    """An IPv4 or IPv6 address (surrounding spaces ignored); ValueError saying what is wrong.

    `what` names the value in the message ("--ip", "client address", ...).
    """
    value = text.strip()
    if not value:
        raise ValueError(f"empty {what}")
    if not value.isprintable() or not value.isascii():
        raise ValueError(f"invalid {what} {text!r}: control or non-ASCII characters")
    if "%" in value:  # RFC 4007 §11: zone ids are local to one host
        raise ValueError(
            f"invalid {what} {text!r}: a scoped IPv6 address (zone id after %) is not an "
            "address mail can come from"
        )
    if looks_like_ipv4(value):
        try:
            return parse_ip(value)
        except ValueError:
            raise ValueError(
                f"invalid {what} {text!r}: an IPv4 address is four numbers 0..255 separated by dots"
            ) from None
    try:
        return parse_ip(value)
    except ValueError:
        raise ValueError(f"invalid {what} {text!r}") from None
