"""Prefetch of a policy tree: with a caching resolver, ask at once for every record a policy
needs (its includes, a and mx targets) while the interpreter walks it in order, so that the
wait is the tree's depth, not its number of lookups. Answers land in the cache; errors are
ignored (the interpreter meets them again and reports them).

Given the client's address, terms no evaluation can reach are not asked for: mechanisms are
evaluated in order and the first match ends a record (RFC 7208 §4.6.2), so nothing after an
`all` or an ip4/ip6 range holding the address is ever looked up, nor a redirect (§6.1).
That needs no DNS and keeps every query the interpreter may make; a shared cache still gets
whole trees from the compiled policies (compiled.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from mailwarden.dns import DNSError, IPAddress, RdType, Resolver

from .compiled import literal_domain
from .interpreter import SPFLimits, valid_domain
from .record import MechanismKind, Record, SPFSyntaxError, is_spf_record

__all__ = ["Prefetcher"]


class Prefetcher:
    """Fetches policy trees through `resolver`; `parse` is the checker's cached record parser."""

    def __init__(
        self, resolver: Resolver, parse: Callable[[bytes], Record], limits: SPFLimits
    ) -> None:
        self.resolver = resolver
        self.parse = parse
        self.limits = limits

    async def tree(
        self, domain: str, version: int, depth: int = 0, *, address: IPAddress | None = None
    ) -> None:
        """Ask for every record a policy tree may need, concurrently; answers land in the
        cache. With `address` (of `version`), only the terms an evaluation can reach."""
        try:
            answer = await self.resolver.resolve(domain, RdType.TXT)
            texts = [t.joined for t in answer.txt() if is_spf_record(t.joined)]
            record = self.parse(texts[0]) if len(texts) == 1 else None
        except (DNSError, SPFSyntaxError):
            return
        if record is None or depth >= self.limits.dns_mechanisms:
            return
        address_type = RdType.A if version == 4 else RdType.AAAA
        work = []
        targets = []
        ended = False  # a term that surely matches ends the record (RFC 7208 §4.6.2)
        for mechanism in record.mechanisms:
            targets.append((mechanism.kind, mechanism.domain))
            if mechanism.kind is MechanismKind.ALL or (
                address is not None
                and mechanism.network is not None
                and address in mechanism.network
            ):
                ended = True
                break
        if record.redirect is not None and not ended:  # §6.1: with an all, never followed
            targets.append((MechanismKind.INCLUDE, record.redirect))
        for kind, spec in targets:
            if spec is not None and not spec.is_literal:
                continue
            target = literal_domain(spec) if spec is not None else domain
            if not valid_domain(target):
                continue
            if kind is MechanismKind.INCLUDE:
                work.append(self.tree(target, version, depth + 1, address=address))
            elif kind is MechanismKind.A:
                work.append(self._quietly(target, address_type))
            elif kind is MechanismKind.MX:
                work.append(self._prefetch_mx(target, address_type))
        await asyncio.gather(*work)

    async def _prefetch_mx(self, domain: str, address_type: RdType) -> None:
        try:
            answer = await self.resolver.resolve(domain, RdType.MX)
        except DNSError:
            return
        hosts = [mx.exchange for mx in answer.mx()][: self.limits.mx_names]
        await asyncio.gather(*(self._quietly(h, address_type) for h in hosts if valid_domain(h)))

    async def _quietly(self, name: str, rdtype: RdType) -> None:
        with contextlib.suppress(DNSError):
            await self.resolver.resolve(name, rdtype)
