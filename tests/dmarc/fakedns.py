"""A resolver answering from a plain table, for DMARC cases written as data."""

from __future__ import annotations

from collections.abc import Mapping

from mailwarden.dns import TXT, Answer, NoData, NXDomain, RdType, TemporaryFailure, normalize

# What a name holds: TXT text, "" (exists, no records), None (NXDOMAIN), or TEMPFAIL.
TEMPFAIL = "<tempfail>"


class TableResolver:
    """Names map to a TXT text, "" (NODATA), None (NXDOMAIN) or TEMPFAIL; unlisted names do
    not exist. A listed name exists for every other type too (NODATA), as do its ancestors
    (RFC 8020). `queries` records every lookup, to count them."""

    def __init__(self, table: Mapping[str, str | None]) -> None:
        self.table = {normalize(name): value for name, value in table.items()}
        self.queries: list[tuple[str, RdType]] = []
        self._existing: set[str] = set()
        for name, value in self.table.items():
            if value is not None:
                labels = name.split(".")
                self._existing.update(".".join(labels[i:]) for i in range(len(labels)))

    async def resolve(self, name: str, rdtype: RdType) -> Answer:
        qname = normalize(name)
        self.queries.append((qname, rdtype))
        value = self.table.get(qname)
        if qname in self.table and value is None:
            raise NXDomain(qname, rdtype)
        if value == TEMPFAIL:
            raise TemporaryFailure(qname, rdtype, "timeout")
        if rdtype is RdType.TXT and value:
            return Answer(qname, rdtype, (TXT((value.encode(),)),), 300)
        if qname in self._existing:
            raise NoData(qname, rdtype)
        raise NXDomain(qname, rdtype)

    def txt_queries(self) -> list[str]:
        return [name for name, rdtype in self.queries if rdtype is RdType.TXT]
