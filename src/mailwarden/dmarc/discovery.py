"""Finding DMARC records and Organizational Domains: the RFC 9989 DNS Tree Walk (§4.10) and the
RFC 7489 §3.2 Public Suffix List method.

`Lookup` queries ``_dmarc.<name>`` through the resolver, at most once per name per evaluation,
and raises `DiscoveryTempError` on a temporary DNS failure. `PolicyDiscovery` says which record
applies to an Author Domain; `organizational_domain` answers the alignment question.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from mailwarden.dns import DNSError, NXDomain, RdType, Resolver, TemporaryFailure
from mailwarden.frozen import quick_init

from .record import PSD, DMARCRecord, is_dmarc_record, parse_record

__all__ = [
    "MAX_TREE_WALK_QUERIES",
    "Discovery",
    "DiscoveryTempError",
    "Found",
    "Lookup",
    "PolicyDiscovery",
    "PublicSuffixes",
    "RecordSource",
    "discover_policy",
    "domain_exists",
    "organizational_domain",
    "tree_walk_names",
]

MAX_TREE_WALK_QUERIES = 8  # RFC 9989 §4.10: never more than eight queries per walk
_SHORTENED_LABELS = 7  # §4.10 step 4: longer names jump straight to seven labels


class Discovery(StrEnum):
    """How Organizational Domains and policies are found; recorded in every verdict."""

    TREE_WALK = "treewalk"  # RFC 9989 (default)
    PSL = "psl"  # RFC 7489 §3.2, Public Suffix List


class RecordSource(StrEnum):
    """Where the applied record was found (RFC 9989 §4.10.1 order)."""

    AUTHOR = "author"
    ORGANIZATIONAL = "organizational"
    PSD = "psd"  # a Public Suffix Domain's record (psd=y)
    NONE = "none"


class PublicSuffixes(Protocol):
    """What the PSL method needs; `publicsuffixlist.PublicSuffixList` satisfies it."""

    def privatesuffix(self, domain: str) -> str | None: ...


class DiscoveryTempError(Exception):
    """A DMARC query could not be answered now (RFC 9989 §4.7.1: no conclusion possible)."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"temporary DNS failure for {name}: {detail}")
        self.name = name


@quick_init
@dataclass(frozen=True, slots=True)
class Found:
    """The outcome of one ``_dmarc`` query: the single valid record, if there is one."""

    domain: str
    record: DMARCRecord | None
    note: str = ""  # why no record: "no record", "2 DMARC records" ...


class Lookup:
    """Memoized ``_dmarc.<domain>`` TXT queries for one evaluation (concurrent-safe).

    The first asker of a name queries in its own task (no task per query: on the warm path
    the answer is cached and nothing waits); askers meanwhile wait for its outcome, and later
    ones get it at once (a temporary failure included). An asker cancelled while it queried
    leaves the name unanswered: whoever waited for it asks again."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.queries = 0
        self._known: dict[str, Found | BaseException] = {}
        self._asking: dict[str, list[asyncio.Future[bool]]] = {}

    async def record(self, domain: str) -> Found:
        while True:
            known = self._known.get(domain)
            if isinstance(known, Found):
                return known
            if known is not None:
                raise known
            waiting = self._asking.get(domain)
            if waiting is None:
                return await self._ask(domain)
            waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            waiting.append(waiter)
            await waiter  # then the outcome is known, or the asker gave up: ask again

    async def _ask(self, domain: str) -> Found:
        waiting: list[asyncio.Future[bool]] = []
        self._asking[domain] = waiting
        try:
            found = await self._query(domain)
        except asyncio.CancelledError:
            raise  # not an outcome: the waiters ask again
        except Exception as exc:  # DiscoveryTempError: every later asker gets it too
            self._known[domain] = exc
            raise
        else:
            self._known[domain] = found
            return found
        finally:
            del self._asking[domain]
            for waiter in waiting:
                if not waiter.done():
                    waiter.set_result(True)

    async def _query(self, domain: str) -> Found:
        name = f"_dmarc.{domain}"
        self.queries += 1
        try:
            answer = await self.resolver.resolve(name, RdType.TXT)
        except TemporaryFailure as exc:
            raise DiscoveryTempError(name, exc.detail or exc.kind) from None
        except DNSError:  # NXDOMAIN or NODATA: no record here
            return Found(domain, None, "no record")
        texts = [txt.joined.decode("utf-8", "replace") for txt in answer.txt()]
        dmarc = [t for t in texts if is_dmarc_record(t)]  # §4.10 step 2: other TXT discarded
        if not dmarc:
            return Found(domain, None, "no DMARC record")
        if len(dmarc) > 1:  # §4.10 step 2: several records are all discarded
            return Found(domain, None, f"{len(dmarc)} DMARC records (all discarded)")
        return Found(domain, _parsed(dmarc[0]))


@functools.lru_cache(maxsize=4096)
def _parsed(text: str) -> DMARCRecord:
    """A record's text parsed once while it stays in use (records are immutable; the DNS
    cache keeps the text, this keeps what it means)."""
    return parse_record(text)


def tree_walk_names(domain: str) -> list[str]:
    """The names a DNS Tree Walk from `domain` may query, in order (RFC 9989 §4.10 steps 3-7)."""
    labels = domain.split(".")
    names = [domain]
    if len(labels) > _SHORTENED_LABELS + 1:
        labels = labels[-_SHORTENED_LABELS:]
        names.append(".".join(labels))
    else:
        labels = labels[1:]
        if labels:
            names.append(".".join(labels))
    while len(labels) > 1:
        labels = labels[1:]
        names.append(".".join(labels))
    return names[:MAX_TREE_WALK_QUERIES]


async def _walk(lookup: Lookup, start: str) -> list[Found]:
    """Records found walking up from `start`, longest name first; stops at psd=y/n."""
    found: list[Found] = []
    for name in tree_walk_names(start):
        result = await lookup.record(name)
        if result.record is not None:
            found.append(result)
            if result.record.psd in (PSD.YES, PSD.NO):  # §4.10 steps 2 and 6
                break
    return found


def _select_org(start: str, found: list[Found]) -> str:
    """RFC 9989 §4.10.2: the Organizational Domain from the records of one walk."""
    for item in found:
        assert item.record is not None
        if item.record.psd is PSD.NO:
            return item.domain
        if item.record.psd is PSD.YES and item.domain != start:
            depth = item.domain.count(".") + 2
            return ".".join(start.split(".")[-depth:])
    return found[-1].domain if found else start


def _psl_org(psl: PublicSuffixes, domain: str) -> str:
    return psl.privatesuffix(domain) or domain


async def organizational_domain(
    lookup: Lookup, domain: str, discovery: Discovery, psl: PublicSuffixes | None
) -> str:
    """The Organizational Domain of `domain` (DiscoveryTempError on DNS trouble)."""
    if discovery is Discovery.PSL:
        assert psl is not None
        return _psl_org(psl, domain)
    return _select_org(domain, await _walk(lookup, domain))


@quick_init
@dataclass(frozen=True, slots=True)
class PolicyDiscovery:
    """Which record applies to an Author Domain, and where it was found."""

    record: DMARCRecord | None
    policy_domain: str | None
    organizational_domain: str | None  # None: not needed to find the policy (own record)
    source: RecordSource
    note: str


async def discover_policy(
    lookup: Lookup, author: str, discovery: Discovery, psl: PublicSuffixes | None
) -> PolicyDiscovery:
    """RFC 9989 §4.10.1 (or RFC 7489 §6.6.3): the Author Domain's record, else its
    Organizational Domain's, else its Public Suffix Domain's."""
    own = await lookup.record(author)
    if own.record is not None:
        return PolicyDiscovery(
            own.record, author, None, RecordSource.AUTHOR, "author domain record"
        )
    if discovery is Discovery.PSL:
        assert psl is not None
        org = _psl_org(psl, author)
        if org != author:
            found = await lookup.record(org)
            if found.record is not None:
                return PolicyDiscovery(found.record, org, org, RecordSource.ORGANIZATIONAL, "psl")
        return PolicyDiscovery(None, None, org, RecordSource.NONE, own.note)
    walked = await _walk(lookup, author)
    org = _select_org(author, walked)
    by_domain = {item.domain: item.record for item in walked}
    record = by_domain.get(org)
    if record is not None:
        return PolicyDiscovery(record, org, org, RecordSource.ORGANIZATIONAL, "tree walk")
    for item in walked:  # no Organizational Domain record: the PSD's (psd=y) applies
        if item.record is not None and item.record.psd is PSD.YES:
            return PolicyDiscovery(
                item.record, item.domain, org, RecordSource.PSD, "tree walk (psd=y)"
            )
    return PolicyDiscovery(None, None, org, RecordSource.NONE, own.note)


async def domain_exists(resolver: Resolver, domain: str) -> bool:
    """RFC 8020: NXDOMAIN means nothing exists at or below the name; any other answer (records
    or NODATA) means it exists. TemporaryFailure propagates."""
    try:
        await resolver.resolve(domain, RdType.A)
    except NXDomain:
        return False
    except TemporaryFailure:
        raise
    except DNSError:
        return True
    return True
