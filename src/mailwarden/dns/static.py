"""An in-memory resolver for tests and offline demos, behind the same interface as the real one.

Loaded from RFC 1035 master files or a Python mapping; it follows CNAME chains as a recursive
resolver would, answers NXDOMAIN only for names that do not exist (RFC 8020: a name with
descendants exists), and can simulate timeouts and SERVFAIL for chosen names and types.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path

from .master import read_master_file
from .names import normalize
from .types import MX, TXT, Answer, NoData, NXDomain, RData, RdType, TemporaryFailure

MAX_CNAME_CHAIN = 16
DEFAULT_TTL = 3600


class Failure(StrEnum):
    """A failure the static resolver can be told to simulate."""

    TIMEOUT = "timeout"
    SERVFAIL = "servfail"


RecordValue = str | bytes | int | Sequence[object] | RData
ZoneMapping = Mapping[str, Mapping[str, RecordValue | Sequence[RecordValue]]]


def coerce_record(rdtype: RdType, value: object) -> RData:
    """A record given in a convenient Python form, as a typed record.

    A/AAAA: address text; MX: (preference, exchange) or "10 mx.example.com"; TXT: a string
    (split into 255-byte character-strings), bytes, or a list of strings (one record of several
    character-strings); CNAME/NS/PTR/SOA: a name.
    """
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address | MX | TXT):
        return value  # already typed
    if rdtype in (RdType.A, RdType.AAAA):
        ip = ipaddress.ip_address(str(value))
        if (rdtype is RdType.A) != (ip.version == 4):
            raise ValueError(f"{value!r} is not a valid {rdtype} address")
        return ip
    if rdtype is RdType.MX:
        if isinstance(value, str):
            pref_text, _, exchange = value.strip().partition(" ")
            return MX(int(pref_text), normalize(exchange.strip()))
        if isinstance(value, Sequence) and len(value) == 2:
            return MX(int(str(value[0])), normalize(str(value[1])))
        raise ValueError(f"bad MX value {value!r}")
    if rdtype is RdType.TXT:
        if isinstance(value, bytes):
            return TXT(_split_255(value))
        if isinstance(value, str):
            return TXT(_split_255(value.encode("utf-8")))
        if isinstance(value, Sequence):
            return TXT(tuple(s if isinstance(s, bytes) else str(s).encode("utf-8") for s in value))
        raise ValueError(f"bad TXT value {value!r}")
    return normalize(str(value))


def _split_255(data: bytes) -> tuple[bytes, ...]:
    if not data:
        return (b"",)
    return tuple(data[i : i + 255] for i in range(0, len(data), 255))


class StaticResolver:
    """A resolver over records held in memory."""

    def __init__(self, zone: ZoneMapping | None = None, *, ttl: int = DEFAULT_TTL) -> None:
        self._records: dict[tuple[str, RdType], list[RData]] = {}
        self._ttls: dict[tuple[str, RdType], int] = {}
        self._existing: set[str] = set()
        self._failures: dict[tuple[str, RdType | None], tuple[Failure, float]] = {}
        self.default_ttl = ttl
        self.queries: list[tuple[str, RdType]] = []
        if zone:
            self.load_mapping(zone)

    # -- loading ---------------------------------------------------------------------------
    def add(self, name: str, rdtype: RdType | str, value: object, ttl: int | None = None) -> None:
        """Publish one record."""
        rdtype = RdType(str(rdtype).upper())
        owner = normalize(name)
        key = (owner, rdtype)
        self._records.setdefault(key, []).append(coerce_record(rdtype, value))
        self._ttls[key] = min(self._ttls.get(key, ttl or self.default_ttl), ttl or self.default_ttl)
        self.mark_existing(owner)

    def mark_existing(self, name: str) -> None:
        """Make `name` exist (NODATA for types it lacks) without records of a known type."""
        labels = normalize(name).split(".")
        for i in range(len(labels)):  # the owner and every ancestor now exist (RFC 8020)
            self._existing.add(".".join(labels[i:]))

    def load_mapping(self, zone: ZoneMapping) -> None:
        """Publish {name: {type: value or [values]}}."""
        for name, by_type in zone.items():
            for type_name, values in by_type.items():
                rdtype = RdType(type_name.upper())
                many = isinstance(values, list | tuple) and not (
                    rdtype is RdType.MX and len(values) == 2 and isinstance(values[0], int)
                )
                for value in values if many else [values]:  # type: ignore[union-attr]
                    self.add(name, rdtype, value)

    def load_master_text(self, text: str, origin: str = ".") -> None:
        """Publish the records of an RFC 1035 master file (ValueError when malformed).

        Linear in the size of the file (`master.read_master_file`): 10,000 records load in
        a fraction of a second.
        """
        for owner, rdtype, ttl, record in read_master_file(text, origin):
            if rdtype is None:
                self.mark_existing(owner)
            else:
                self.add(owner, rdtype, record, ttl)

    @classmethod
    def from_master_files(cls, paths: Iterable[str | Path]) -> StaticResolver:
        """A resolver holding every record of the given master files."""
        resolver = cls()
        for path in paths:
            resolver.load_master_text(Path(path).read_text(encoding="utf-8"))
        return resolver

    def fail(
        self,
        name: str,
        rdtype: RdType | str | None = None,
        failure: Failure = Failure.TIMEOUT,
        *,
        delay: float = 0.0,
    ) -> None:
        """Make queries for `name` (of `rdtype`, or of every type) fail; `delay` seconds first."""
        key_type = RdType(str(rdtype).upper()) if rdtype is not None else None
        self._failures[(normalize(name), key_type)] = (failure, delay)

    # -- resolving -------------------------------------------------------------------------
    async def resolve(self, name: str, rdtype: RdType) -> Answer:
        qname = normalize(name)
        self.queries.append((qname, rdtype))
        current = qname
        ttl = self.default_ttl
        for _ in range(MAX_CNAME_CHAIN):
            await self._maybe_fail(current, rdtype)
            records = self._records.get((current, rdtype))
            if records:
                ttl = min(ttl, self._ttls[(current, rdtype)])
                return Answer(qname, rdtype, tuple(records), ttl)
            alias = self._records.get((current, RdType.CNAME))
            if not alias or rdtype is RdType.CNAME:
                break
            ttl = min(ttl, self._ttls[(current, RdType.CNAME)])
            current = str(alias[0])
        else:
            raise TemporaryFailure(qname, rdtype, "CNAME chain too long or looping")
        if current in self._existing:
            raise NoData(qname, rdtype, ttl=ttl)
        raise NXDomain(qname, rdtype, ttl=ttl)

    async def _maybe_fail(self, name: str, rdtype: RdType) -> None:
        spec = self._failures.get((name, rdtype)) or self._failures.get((name, None))
        if spec is None:
            return
        failure, delay = spec
        if delay:
            await asyncio.sleep(delay)
        raise TemporaryFailure(name, rdtype, failure.value)
