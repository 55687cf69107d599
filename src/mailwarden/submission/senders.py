"""Which addresses a user may send as (pure): their own, their aliases, whole domains.

A user's entries are addresses (`alice@a.example`) and domains (`@a.example`, for admins and
role accounts). An address matches case-insensitively (mailbox providers treat local parts so,
RFC 5321 §2.4 lets them), with its domain in A-labels; `alice+tag@a.example` is alice's own
when `+` is the subaddress delimiter. What does not match is refused, never rewritten.
"""

from __future__ import annotations

from collections.abc import Iterable

from mailwarden.dns import is_domain_name, normalize, to_ascii

__all__ = ["SenderError", "canonical_entry", "may_send_as", "split_address"]


class SenderError(ValueError):
    """Not an address (or @domain) a user can be given."""


def _domain(text: str) -> str:
    try:
        domain = normalize(to_ascii(text))
    except ValueError:
        raise SenderError(f"invalid domain {text!r}") from None
    if not is_domain_name(domain) or "." not in domain:
        raise SenderError(f"invalid domain {text!r}")
    return domain


def split_address(address: str) -> tuple[str, str]:
    """(local part lower-cased, domain in A-labels); SenderError when it is not one."""
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise SenderError(f"not an address: {address!r}")
    if len(local.encode()) > 64 or not local.isprintable() or any(c.isspace() for c in local):
        raise SenderError(f"invalid local part in {address!r}")
    return local.lower(), _domain(domain)


def canonical_entry(entry: str) -> str:
    """An entry as stored: `local@domain` or `@domain`, normalized; SenderError if invalid."""
    entry = entry.strip()
    if entry.startswith("@"):
        return "@" + _domain(entry[1:])
    local, domain = split_address(entry)
    return f"{local}@{domain}"


def may_send_as(entries: Iterable[str], address: str, delimiter: str = "+") -> bool:
    """Whether `address` is one of `entries` (canonical), a subaddress of one, or in one of
    their whole domains."""
    try:
        local, domain = split_address(address)
    except SenderError:
        return False
    allowed = set(entries)
    if f"@{domain}" in allowed or f"{local}@{domain}" in allowed:
        return True
    if delimiter and delimiter in local:
        base = local.split(delimiter, 1)[0]
        return bool(base) and f"{base}@{domain}" in allowed
    return False
