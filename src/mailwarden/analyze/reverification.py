"""The checks run again now: DKIM, ARC, SPF and DMARC for the boundary address, reverse DNS
and DNS lists for every relaying address, concurrently through one cache."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mailwarden.arc import ARCResult, ARCVerifier
from mailwarden.authres import ResInfo
from mailwarden.dkim import DKIMResult, DKIMVerifier
from mailwarden.dmarc import DMARCEvaluator, DMARCResult
from mailwarden.dns import IPAddress, Resolver
from mailwarden.dns.cache import CachingResolver
from mailwarden.dnsbl import DNSList, DNSListChecker, DNSListReport
from mailwarden.iprev import IprevResult, check_iprev
from mailwarden.message import Message
from mailwarden.spf import SPFChecker, SPFResult

from .explain import parse_received_spf
from .hops import Hop

__all__ = ["MAX_RELAYS", "RelayHop", "Reverification", "envelope_sender", "reverify"]

MAX_RELAYS = 20  # relaying addresses checked (iprev, DNS lists) at most


@dataclass(frozen=True, slots=True)
class RelayHop:
    """A relaying address seen in the chain and what reverse DNS and DNS lists say now."""

    hop: int
    ip: IPAddress
    iprev: IprevResult | None
    dnsbl: DNSListReport | None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "hop": self.hop,
            "ip": str(self.ip),
            "iprev": None if self.iprev is None else self.iprev.to_dict(),
            "dnsbl": None if self.dnsbl is None else [r.to_dict() for r in self.dnsbl.results],
            "listed": [] if self.dnsbl is None else [r.list for r in self.dnsbl.listed],
            "note": self.note or None,
        }


@dataclass(frozen=True, slots=True)
class Reverification:
    """The checks run again now, for the boundary address (or the one given)."""

    ip: IPAddress | None
    ip_source: str  # "boundary", "option" or "none"
    helo: str
    mail_from: str
    spf: SPFResult | None
    dkim: tuple[DKIMResult, ...]
    arc: ARCResult
    dmarc: DMARCResult
    relays: tuple[RelayHop, ...]

    def to_dict(self) -> dict[str, Any]:
        spf = self.spf
        return {
            "ip": str(self.ip) if self.ip is not None else None,
            "ip_source": self.ip_source,
            "helo": self.helo or None,
            "mail_from": self.mail_from,
            "spf": None if spf is None else spf.to_dict(),
            "dkim": [r.to_dict() for r in self.dkim],
            "arc": self.arc.to_dict(),
            "dmarc": self.dmarc.to_dict(),
            "relays": [r.to_dict() for r in self.relays],
        }


# Addresses of private networks: their reverse DNS and DNS-list status mean nothing outside.
_PRIVATE = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)


def _checkable(ip: IPAddress) -> bool:
    """Worth asking DNS about: not loopback, link-local, multicast, unspecified or private.
    (Documentation ranges are checked, so that test zones can describe them.)"""
    if ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified:
        return False
    return not any(ip.version == net.version and ip in net for net in _PRIVATE)


async def _relay(
    resolver: Resolver, checker: DNSListChecker | None, hop: int, ip: IPAddress
) -> RelayHop:
    if not _checkable(ip):
        return RelayHop(hop, ip, None, None, "private or reserved address: not checked")
    if checker is None:
        return RelayHop(hop, ip, await check_iprev(resolver, ip), None)
    iprev, report = await asyncio.gather(check_iprev(resolver, ip), checker.check_ip(ip))
    return RelayHop(hop, ip, iprev, report)


def envelope_sender(
    message: Message, recorded: Sequence[ResInfo] = (), boundary_field: int | None = None
) -> str:
    """The MAIL FROM address as recorded: Return-Path (final delivery), else smtp.mailfrom of
    our recorded SPF result, else a Received-SPF envelope-from above the boundary; '' (null)."""
    header = message.get("return-path")
    if header is not None:
        text = header.text().strip()
        return text[1:-1].strip() if text.startswith("<") and text.endswith(">") else text
    for info in recorded:
        if info.method.lower() == "spf" and info.get("smtp", "mailfrom"):
            return info.get("smtp", "mailfrom") or ""
    for position, field_ in enumerate(message.fields):
        if boundary_field is not None and position > boundary_field:
            break
        if field_.lname == "received-spf":
            sender = parse_received_spf(field_.text()).get("envelope-from")
            if isinstance(sender, str):
                return sender
    return ""


async def reverify(
    message: Message,
    resolver: Resolver,
    *,
    ip: IPAddress | None,
    ip_source: str,
    helo: str,
    mail_from: str,
    hops: Sequence[Hop] = (),
    dns_lists: Iterable[DNSList] = (),
    clock: Callable[[], float] = time.time,
    receiver: str = "mailwarden.analyze",
) -> Reverification:
    """DKIM, ARC, SPF (when an address is known) and DMARC now; iprev and DNS lists of every
    relaying address. Independent lookups run concurrently through one cache."""
    if not isinstance(resolver, CachingResolver):
        resolver = CachingResolver(resolver)
    lists = tuple(dns_lists)
    checker = DNSListChecker(resolver, lists, clock=clock) if lists else None
    spf_checker = SPFChecker(resolver, receiver=receiver, clock=clock)
    relays_seen: dict[IPAddress, int] = {}
    for hop in hops:
        if hop.hop is not None and hop.hop.ip is not None and hop.hop.ip not in relays_seen:
            relays_seen[hop.hop.ip] = hop.index
    if ip is not None and ip not in relays_seen:
        relays_seen[ip] = 0
    relay_items = list(relays_seen.items())[:MAX_RELAYS]

    async def spf_now() -> SPFResult | None:
        if ip is None:
            return None
        return await spf_checker.check_mailfrom(ip, mail_from, helo or str(ip))

    relays_task = asyncio.gather(
        *(_relay(resolver, checker, index, address) for address, index in relay_items)
    )
    try:
        dkim_results, arc_result, spf_result = await asyncio.gather(
            DKIMVerifier(resolver, clock=clock).verify(message),
            ARCVerifier(resolver, clock=clock).verify(message),
            spf_now(),
        )
        relays = await relays_task
    finally:
        relays_task.cancel()
    from_values = [f.text() for f in message.get_all("from")]
    dmarc_result = await DMARCEvaluator(resolver).evaluate(from_values, spf_result, dkim_results)
    return Reverification(
        ip,
        ip_source,
        helo,
        mail_from,
        spf_result,
        tuple(dkim_results),
        arc_result,
        dmarc_result,
        tuple(relays),
    )
