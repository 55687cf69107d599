"""Build an SPF record (RFC 7208) from what a domain owner knows: addresses, hosts, providers.

`build_record(ip4=[...], ip6=[...], a=[...], mx=[...], include=[...], all="fail")` is pure: it
returns the record text and the warnings (DNS lookups over the limit of 10, a record longer
than one 255-byte TXT character-string or than fits a 512-byte UDP answer, duplicates, host
bits in a range). It raises `ValueError` for input that cannot make a valid record. With a
resolver, `count_lookups` adds the lookups that the included policies cost in turn.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from mailwarden.dns import Resolver, is_domain_name, to_ascii
from mailwarden.spf.explain import explain_policy
from mailwarden.spf.record import SPFSyntaxError, parse_record

__all__ = [
    "ALL_QUALIFIERS",
    "MAX_DNS_LOOKUPS",
    "MAX_STRING_BYTES",
    "UDP_ADVICE_BYTES",
    "build_record",
    "count_lookups",
    "own_lookups",
    "split_strings",
]

MAX_DNS_LOOKUPS = 10  # RFC 7208 §4.6.4
MAX_STRING_BYTES = 255  # RFC 1035 §3.3: one TXT character-string
UDP_ADVICE_BYTES = 450  # RFC 7208 §3.4: keep the answer in a 512-byte UDP message
ALL_QUALIFIERS = {"fail": "-all", "softfail": "~all", "neutral": "?all"}


def _network(text: str, version: int) -> str:
    """The ip4:/ip6: value for ADDR or ADDR/LEN (ValueError when invalid)."""
    kind = "ip4" if version == 4 else "ip6"
    address, slash, length = text.strip().partition("/")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"--{kind} {text!r}: not an IPv{version} address") from None
    if ip.version != version:
        raise ValueError(f"--{kind} {text!r}: not an IPv{version} address")
    maximum = 32 if version == 4 else 128
    if not slash:
        return str(ip)
    if (
        not (length.isascii() and length.isdigit())
        or int(length) > maximum
        or (length != "0" and length[0] == "0")
    ):
        raise ValueError(f"--{kind} {text!r}: prefix length must be 0..{maximum}")
    if int(length) == maximum:
        return str(ip)
    return f"{ip}/{int(length)}"


def _domain(text: str, option: str) -> str:
    name = text.strip().rstrip(".")
    try:
        name = to_ascii(name.lower())
    except ValueError as exc:
        raise ValueError(f"--{option} {text!r}: {exc}") from None
    if not is_domain_name(name) or "." not in name:
        raise ValueError(f"--{option} {text!r}: not a domain name")
    return name


def split_strings(record: str, limit: int = MAX_STRING_BYTES) -> list[str]:
    """The record cut into TXT character-strings of at most `limit` bytes (joined without
    separator by receivers, RFC 7208 §3.3)."""
    data = record.encode("ascii")
    return [data[i : i + limit].decode("ascii") for i in range(0, len(data), limit)]


def own_lookups(record: str) -> int:
    """DNS lookups the record's own terms cost (a, mx, include, ptr, exists, redirect)."""
    return sum(
        1
        for term in record.split()[1:]
        if term.lstrip("+-~?").split(":", 1)[0].split("/", 1)[0]
        in ("a", "mx", "include", "ptr", "exists")
        or term.startswith("redirect=")
    )


def build_record(
    *,
    ip4: Iterable[str] = (),
    ip6: Iterable[str] = (),
    a: Iterable[str] = (),
    mx: Iterable[str] = (),
    include: Iterable[str] = (),
    all: str = "fail",
) -> tuple[str, list[str]]:
    """The record and its warnings. Terms keep the order given within each kind; kinds go
    cheapest first (ip4, ip6, a, mx, include), then the all mechanism. An empty name for `a`
    or `mx` means the domain itself (a bare ``a`` / ``mx``)."""
    if all not in ALL_QUALIFIERS:
        raise ValueError(f"--all {all!r}: choose fail, softfail or neutral")
    warnings: list[str] = []
    terms: list[str] = []
    for value in ip4:
        network = _network(value, 4)
        terms.append(f"ip4:{network}")
        _host_bits(value, warnings)
    for value in ip6:
        network = _network(value, 6)
        terms.append(f"ip6:{network}")
        _host_bits(value, warnings)
    for option, values in (("a", a), ("mx", mx)):
        for value in values:
            terms.append(option if not value.strip() else f"{option}:{_domain(value, option)}")
    for value in include:
        terms.append(f"include:{_domain(value, 'include')}")
    unique = list(dict.fromkeys(terms))
    if len(unique) != len(terms):
        duplicates = sorted({t for t in terms if terms.count(t) > 1})
        warnings.append(f"duplicate terms dropped: {', '.join(duplicates)}")
    record = " ".join(["v=spf1", *unique, ALL_QUALIFIERS[all]])
    try:
        parse_record(record)
    except SPFSyntaxError as exc:  # pragma: no cover - the checks above make this unreachable
        raise ValueError(f"the record would be invalid: {exc}") from None
    lookups = own_lookups(record)
    if lookups > MAX_DNS_LOOKUPS:
        warnings.append(
            f"{lookups} DNS-querying terms (a, mx, include): more than {MAX_DNS_LOOKUPS}, "
            "so every check ends in permerror (RFC 7208 §4.6.4)"
        )
    size = len(record.encode("ascii"))
    if size > MAX_STRING_BYTES:
        warnings.append(
            f"the record is {size} bytes, more than one TXT string holds ({MAX_STRING_BYTES}): "
            f"publish it as {len(split_strings(record))} strings in one TXT record"
        )
    if size > UDP_ADVICE_BYTES:
        warnings.append(
            f"the record is {size} bytes: answers over 512 bytes need TCP (RFC 7208 §3.4); "
            "merge ranges or drop terms"
        )
    if not unique and all == "fail":
        warnings.append("no senders listed: this record says the domain sends no mail at all")
    return record, warnings


def _host_bits(value: str, warnings: list[str]) -> None:
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:  # pragma: no cover - validated before
        return
    if "/" in value and network.network_address != ipaddress.ip_address(
        value.strip().split("/")[0]
    ):
        warnings.append(f"{value.strip()} has host bits set: it covers {network}")


async def count_lookups(resolver: Resolver, record: str) -> tuple[int, list[str]]:
    """The DNS lookups the record costs with its includes fetched, and what went wrong."""
    explanation = await explain_policy(resolver, record=record)
    problems = [f.message for f in explanation.findings if f.severity.value == "error"]
    return explanation.dns_lookups, problems
