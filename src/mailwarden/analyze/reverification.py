"""The checks run again now: DKIM, ARC, SPF and DMARC for the boundary address, reverse DNS
and DNS lists for every relaying address, concurrently, by the checks of the one pipeline
(`mailwarden.pipeline.build`): its cache, its shared DKIM key cache, its one parse."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mailwarden.arc import ARCResult
from mailwarden.authres import ResInfo
from mailwarden.dkim import DKIMResult
from mailwarden.dmarc import DMARCResult, DMARCStatus
from mailwarden.dns import IPAddress, Resolver
from mailwarden.dnsbl import DNSListChecker, DNSListReport
from mailwarden.iprev import IprevResult, check_iprev
from mailwarden.message import Message
from mailwarden.pipeline import Pipeline
from mailwarden.pipeline.views import Scorer, iprev_dict, list_result_dict, policy_scorer
from mailwarden.policy import PolicyConfig
from mailwarden.spf import SPFResult

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

    def to_dict(self, score: Scorer) -> dict[str, Any]:
        """The JSON object of this relay, its symbols scored by `score` (the policy's)."""
        dnsbl = self.dnsbl
        return {
            "hop": self.hop,
            "ip": str(self.ip),
            "iprev": None if self.iprev is None else iprev_dict(self.iprev, score),
            "dnsbl": None if dnsbl is None else [list_result_dict(r, score) for r in dnsbl.results],
            "listed": [] if self.dnsbl is None else [r.list for r in self.dnsbl.listed],
            "note": self.note or None,
        }


@dataclass(frozen=True, slots=True)
class Reverification:
    """The checks run again now, for the boundary address (or the one given). `dmarc` is not
    evaluated (never fail) when SPF could not be checked and no DKIM signature passed aligned:
    an SPF pass might have made it pass. `scoring` is the policy that scores the symbols."""

    ip: IPAddress | None
    ip_source: str  # "boundary", "option" or "none"
    helo: str
    mail_from: str
    spf: SPFResult | None
    dkim: tuple[DKIMResult, ...]
    arc: ARCResult
    dmarc: DMARCResult
    relays: tuple[RelayHop, ...]
    scoring: PolicyConfig = field(default_factory=PolicyConfig)

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
            "relays": [r.to_dict(policy_scorer(self.scoring)) for r in self.relays],
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
    pipeline: Pipeline,
    *,
    ip: IPAddress | None,
    ip_source: str,
    helo: str,
    mail_from: str,
    hops: Sequence[Hop] = (),
) -> Reverification:
    """DKIM, ARC, SPF (when an address is known) and DMARC now; iprev and the pipeline's DNS
    lists for every relaying address. Independent lookups run concurrently through the
    pipeline's cache; DKIM and ARC share its key cache and the message's one parse."""
    resolver = pipeline.resolver
    checker = pipeline.dnsbl
    parsed = pipeline.parse(message)
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
        return await pipeline.spf.check_mailfrom(ip, mail_from, helo or str(ip))

    relays_task = asyncio.gather(
        *(_relay(resolver, checker, index, address) for address, index in relay_items)
    )
    try:
        dkim_results, arc_result, spf_result = await asyncio.gather(
            pipeline.dkim.verify(message, body=parsed.body),
            pipeline.arc.verify(message, body=parsed.body),
            spf_now(),
        )
        relays = await relays_task
    finally:
        relays_task.cancel()
    dmarc_result = await pipeline.dmarc.evaluate(parsed.authors, spf_result, dkim_results)
    if spf_result is None and dmarc_result.result is DMARCStatus.FAIL:
        dmarc_result = dmarc_result.without_spf()
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
        pipeline.policy,
    )
