"""Per-check lookup counting: processing limits and benchmarks read it."""

from __future__ import annotations

from .types import Answer, RdType, Resolver


class CountingResolver:
    """Wraps a resolver and counts the queries one check makes through it."""

    def __init__(self, inner: Resolver) -> None:
        self.inner = inner
        self.queries = 0

    async def resolve(self, name: str, rdtype: RdType) -> Answer:
        self.queries += 1
        return await self.inner.resolve(name, rdtype)
