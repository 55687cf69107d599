"""Prefetch of a policy tree: with a caching resolver, ask at once for every record a policy
needs (its includes, a and mx targets) while the interpreter walks it in order, so that the
wait is the tree's depth, not its number of lookups. Answers land in the cache; errors are
ignored (the interpreter meets them again and reports them)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from mailwarden.dns import DNSError, RdType, Resolver

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

    async def tree(self, domain: str, version: int, depth: int = 0) -> None:
        """Ask for every record a policy tree needs, concurrently; answers land in the cache."""
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
        targets = [(m.kind, m.domain) for m in record.mechanisms]
        if record.redirect is not None and not record.has_all:
            targets.append((MechanismKind.INCLUDE, record.redirect))
        for kind, spec in targets:
            if spec is not None and not spec.is_literal:
                continue
            target = literal_domain(spec) if spec is not None else domain
            if not valid_domain(target):
                continue
            if kind is MechanismKind.INCLUDE:
                work.append(self.tree(target, version, depth + 1))
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
