"""HELO/EHLO checks: what the name a client announced says about it.

RFC 5321 §4.1.4 forbids refusing a message only because the HELO name does not match the
client, so `check_helo` only reports findings, each with a reason code and a detail; the policy
names them (HELO_*), scores them and, where the configuration says so (`hard_reject`), refuses
(`mailwarden.policy.helo_symbols`).

Findings (the symbol the policy names each with, and its default score, in parentheses):

===================  ===============================  ==================================
bad-syntax           HELO_BAD_SYNTAX (2.0)            neither a domain name nor a literal
bare-ip              HELO_BARE_IP (2.0)               an address without the brackets
not-fqdn             HELO_NOT_FQDN (1.5)              a single label ("localhost")
ip-literal           HELO_IP_LITERAL (0.0)            a literal naming the client (legal)
ip-literal-mismatch  HELO_IP_LITERAL_MISMATCH (2.5)   a literal naming another host
forged               HELO_FORGED (5.0)                one of our own names or addresses
no-resolve           HELO_NORESOLVE (1.0)             the name has no A or AAAA record
dns-error            HELO_TEMPERROR (0.0)             the name could not be resolved now
mismatch-ptr         HELO_MISMATCH_PTR (0.5)          resolves elsewhere, not a PTR name
matches-client       HELO_MATCHES_CLIENT (0.0)        the name resolves to the client
matches-ptr          HELO_MATCHES_PTR (0.0)           the name is a PTR name of the client
===================  ===============================  ==================================
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mailwarden.dns import (
    IPAddress,
    NoData,
    NXDomain,
    RdType,
    Resolver,
    TemporaryFailure,
    is_domain_name,
    normalize,
    parse_ip,
    reverse_pointer,
)
from mailwarden.dns.cache import gather_lookups

__all__ = [
    "HeloFinding",
    "HeloKind",
    "HeloName",
    "HeloReason",
    "HeloResult",
    "check_helo",
    "format_helo",
    "parse_helo",
]


class HeloReason(StrEnum):
    """One finding about a HELO argument, as a code (RFC 5321 §4.1.1.1, §4.1.3, §4.1.4)."""

    BAD_SYNTAX = "bad-syntax"  # neither a domain nor an address literal
    BARE_IP = "bare-ip"  # an address without the [] of an address literal
    NOT_FQDN = "not-fqdn"  # a single-label name
    IP_LITERAL = "ip-literal"  # an address literal naming the client
    IP_LITERAL_MISMATCH = "ip-literal-mismatch"  # an address literal naming another host
    FORGED = "forged"  # one of our own names or addresses, from outside
    NO_RESOLVE = "no-resolve"  # the name has no address record
    DNS_ERROR = "dns-error"  # resolving the name failed temporarily
    MISMATCH_PTR = "mismatch-ptr"  # resolves elsewhere and is not a PTR name of the client
    MATCHES_CLIENT = "matches-client"  # resolves to the client
    MATCHES_PTR = "matches-ptr"  # is a PTR name of the client


class HeloKind(StrEnum):
    """What the HELO argument is, syntactically."""

    DOMAIN = "domain"  # a fully qualified domain name
    SHORT_NAME = "short-name"  # a valid single-label name, not an FQDN
    ADDRESS_LITERAL = "address-literal"  # [192.0.2.1] or [IPv6:2001:db8::1] (RFC 5321 §4.1.3)
    BARE_IP = "bare-ip"  # 192.0.2.1 without brackets
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class HeloName:
    """A parsed HELO argument: `name` (normalized) for names, `address` for literals."""

    kind: HeloKind
    text: str
    name: str | None = None
    address: IPAddress | None = None
    reason: str = ""


def parse_helo(text: str) -> HeloName:
    """Classify a HELO/EHLO argument (RFC 5321 §4.1.1.1, §4.1.3); never raises."""
    raw = text.strip()
    if not raw:
        return HeloName(HeloKind.INVALID, text, reason="empty HELO")
    if raw.startswith("[") and raw.endswith("]"):
        return _parse_literal(text, raw[1:-1])
    if raw.startswith("[") or raw.endswith("]"):
        return HeloName(HeloKind.INVALID, text, reason="unbalanced brackets")
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        pass
    else:
        return HeloName(HeloKind.BARE_IP, text, address=address, reason="address without []")
    if not is_domain_name(raw):
        return HeloName(HeloKind.INVALID, text, reason="not a valid domain name")
    name = normalize(raw)
    labels = name.split(".")
    if len(labels) < 2:
        return HeloName(HeloKind.SHORT_NAME, text, name=name, reason="not a fully qualified name")
    # RFC 3696 §2: a top-level domain is never all-numeric
    if labels[-1].isascii() and labels[-1].isdigit():
        return HeloName(HeloKind.INVALID, text, reason="all-numeric top-level label")
    return HeloName(HeloKind.DOMAIN, text, name=name)


def _parse_literal(text: str, inner: str) -> HeloName:
    # RFC 5321 §4.1.3: IPv4-address-literal / "IPv6:" IPv6-addr / General-address-literal
    if inner[:5].lower() == "ipv6:":
        try:
            v6 = ipaddress.IPv6Address(inner[5:])
        except ValueError:
            return HeloName(HeloKind.INVALID, text, reason="malformed IPv6 address literal")
        mapped = v6.ipv4_mapped
        return HeloName(HeloKind.ADDRESS_LITERAL, text, address=mapped if mapped else v6)
    try:
        v4 = ipaddress.IPv4Address(inner)
    except ValueError:
        return HeloName(HeloKind.INVALID, text, reason="malformed address literal")
    return HeloName(HeloKind.ADDRESS_LITERAL, text, address=v4)


def format_helo(helo: HeloName) -> str:
    """The canonical text of a parsed name or literal (the inverse of `parse_helo`)."""
    if helo.kind is HeloKind.ADDRESS_LITERAL and helo.address is not None:
        if helo.address.version == 6:
            return f"[IPv6:{helo.address.compressed}]"
        return f"[{helo.address}]"
    if helo.kind is HeloKind.BARE_IP and helo.address is not None:
        return str(helo.address)
    return helo.name if helo.name is not None else helo.text


@dataclass(frozen=True, slots=True)
class HeloFinding:
    """One finding: its code and what was seen."""

    code: HeloReason
    detail: str


@dataclass(frozen=True, slots=True)
class HeloResult:
    """Findings about one HELO argument, in the order found. Nothing here decides: the
    policy names, scores and (when configured) refuses on them."""

    helo: HeloName
    ip: IPAddress
    findings: tuple[HeloFinding, ...]
    addresses: tuple[IPAddress, ...] = ()
    ptr_names: tuple[str, ...] = ()

    @property
    def reason_codes(self) -> tuple[HeloReason, ...]:
        return tuple(f.code for f in self.findings)

    @property
    def reason(self) -> str:
        return "; ".join(f"{f.code.value}: {f.detail}" for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this result (`name` is the HELO argument as `helo`); commands
        add the policy's symbols (`mailwarden.pipeline.views`)."""
        return {
            "helo": self.helo.text,
            "name": self.helo.text,
            "kind": self.helo.kind.value,
            "ip": str(self.ip),
            "addresses": [str(a) for a in self.addresses],
            "ptr_names": list(self.ptr_names),
            "reason_codes": [c.value for c in self.reason_codes],
        }


async def check_helo(
    resolver: Resolver,
    helo: str,
    ip: IPAddress | str,
    *,
    our_names: Iterable[str] = (),
    our_addresses: Iterable[IPAddress | str] = (),
    ptr_names: Iterable[str] | None = None,
) -> HeloResult:
    """Check `helo` given by the client at `ip`.

    `our_names`/`our_addresses` are this gateway's own (a client using them forges us);
    `ptr_names` are the client's PTR names when iprev already found them (else looked up
    here).
    """
    client = parse_ip(ip) if isinstance(ip, str) else ip
    own_names = {normalize(n) for n in our_names}
    own_addresses = {parse_ip(a) if isinstance(a, str) else a for a in our_addresses}
    parsed = parse_helo(helo)
    findings: list[HeloFinding] = []
    addresses: tuple[IPAddress, ...] = ()
    ptrs: tuple[str, ...] = tuple(normalize(n) for n in ptr_names) if ptr_names else ()

    def add(code: HeloReason, detail: str) -> None:
        findings.append(HeloFinding(code, detail))

    is_us = client in own_addresses
    if parsed.kind is HeloKind.INVALID:
        add(HeloReason.BAD_SYNTAX, f"{helo.strip()!r}: {parsed.reason}")
    elif parsed.kind is HeloKind.BARE_IP:
        add(HeloReason.BARE_IP, f"{parsed.address} is not an address literal")
        if parsed.address in own_addresses and not is_us:
            add(HeloReason.FORGED, f"{parsed.address} is one of our addresses")
    elif parsed.kind is HeloKind.ADDRESS_LITERAL:
        assert parsed.address is not None
        if parsed.address in own_addresses and not is_us:
            add(HeloReason.FORGED, f"{parsed.address} is one of our addresses")
        elif parsed.address != client:  # RFC 5321 §4.1.4: the literal should be the client
            add(HeloReason.IP_LITERAL_MISMATCH, f"literal {parsed.address}, client {client}")
        else:
            add(HeloReason.IP_LITERAL, f"literal {parsed.address} is the client")
    else:
        assert parsed.name is not None
        name = parsed.name
        if parsed.kind is HeloKind.SHORT_NAME:
            add(HeloReason.NOT_FQDN, f"{name!r} is not a fully qualified domain name")
        if name in own_names and not is_us:
            add(HeloReason.FORGED, f"{name} is one of our names")
        if parsed.kind is HeloKind.DOMAIN:
            addresses, status, ptrs = await _resolve(resolver, name, client, ptr_names)
            if status == "temperror":
                add(HeloReason.DNS_ERROR, f"resolving {name} failed temporarily")
            elif not addresses:
                add(HeloReason.NO_RESOLVE, f"{name} has no address record")
            elif addresses and client in addresses:
                add(HeloReason.MATCHES_CLIENT, f"{name} resolves to {client}")
            if name in ptrs:
                add(HeloReason.MATCHES_PTR, f"{name} is a PTR name of {client}")
            elif addresses and client not in addresses:
                add(
                    HeloReason.MISMATCH_PTR,
                    f"{name} resolves elsewhere and is not a PTR name of {client}",
                )
            if not is_us and own_addresses.intersection(addresses) and name not in own_names:
                add(HeloReason.FORGED, f"{name} resolves to one of our addresses")
    return HeloResult(parsed, client, tuple(findings), addresses, ptrs)


async def _resolve(
    resolver: Resolver, name: str, client: IPAddress, ptr_names: Iterable[str] | None
) -> tuple[tuple[IPAddress, ...], str, tuple[str, ...]]:
    """Addresses of `name` (A and AAAA together), a status, and the client's PTR names."""
    lookups = [_addresses(resolver, name, RdType.A), _addresses(resolver, name, RdType.AAAA)]
    if ptr_names is None:
        lookups.append(_ptr(resolver, client))
    outcomes = await gather_lookups(resolver, *lookups)
    found: list[IPAddress] = []
    temporary = False
    for outcome in outcomes[:2]:
        if outcome is None:
            temporary = True
        else:
            found.extend(a for a in outcome if isinstance(a, IPAddress))
    if ptr_names is None:
        ptrs = tuple(str(n) for n in (outcomes[2] or ()))
    else:
        ptrs = tuple(normalize(n) for n in ptr_names)
    status = "temperror" if temporary and not found else "ok"
    return tuple(dict.fromkeys(found)), status, ptrs


async def _addresses(resolver: Resolver, name: str, rdtype: RdType) -> list[object] | None:
    try:
        answer = await resolver.resolve(name, rdtype)
    except (NXDomain, NoData):
        return []
    except TemporaryFailure:
        return None
    return list(answer.addresses())


async def _ptr(resolver: Resolver, client: IPAddress) -> list[object] | None:
    try:
        answer = await resolver.resolve(reverse_pointer(client), RdType.PTR)
    except (NXDomain, NoData, TemporaryFailure):
        return []
    return [normalize(n) for n in answer.names()]
