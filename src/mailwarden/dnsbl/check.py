"""Querying DNS lists: DNSBL/DNSWL by address (RFC 5782 §2) and RHSBL by domain (§3).

`DNSListChecker` queries every applicable list concurrently and turns each answer into a
`ListResult` naming its symbols as the list's definition does, each with the score the
definition gives that answer; the policy scores them (that score is its default, under
[policy.scores]: `mailwarden.policy.dnsbl_symbols`). Answers that are errors
of the list (127.255.255.x, list-specific codes, anything outside 127.0.0.0/8) are never
listings: they are logged, counted, reported as warnings, and the list is distrusted for
`error_hold` seconds. A health
check (RFC 5782 §5 test entries) marks lists that misbehave as unhealthy; those are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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
    to_ascii,
)
from mailwarden.dns.cache import gather_lookups
from mailwarden.symbols import Symbol

from .lists import LIST_ERROR_CODES, DNSList, ListKind, ListType

__all__ = [
    "DNSListChecker",
    "DNSListReport",
    "ListHealth",
    "ListReason",
    "ListResult",
    "ListStatus",
    "query_name",
]

log = logging.getLogger("mailwarden.dnsbl")

# RFC 5782 §5: every list answers for these, so a client can tell a working list.
TEST_LISTED_V4 = ipaddress.IPv4Address("127.0.0.2")
TEST_UNLISTED_V4 = ipaddress.IPv4Address("127.0.0.1")
TEST_LISTED_V6 = ipaddress.IPv6Address("::ffff:7f00:2")
TEST_UNLISTED_V6 = ipaddress.IPv6Address("::ffff:7f00:1")
TEST_LISTED_DOMAIN = "test"
TEST_UNLISTED_DOMAIN = "invalid"
LOOPBACK_NET = ipaddress.IPv4Network("127.0.0.0/8")


class ListStatus(StrEnum):
    LISTED = "listed"
    NOT_LISTED = "not-listed"
    TEMPERROR = "temperror"  # no answer now (timeout, SERVFAIL)
    ERROR = "error"  # the list answered with an error code: not a listing
    SKIPPED = "skipped"  # unhealthy, distrusted, or not applicable (IPv6 on an IPv4 list)


class ListReason(StrEnum):
    """Why a list's answer is what it is, in RFC 5782 terms (beside the words)."""

    LISTED = "listed"  # §2.1: an A record in 127.0.0.0/8 (the return codes say what for)
    NOT_LISTED = "not-listed"  # §2.1: NXDOMAIN or no A record
    DNS_ERROR = "dns-error"  # no answer now (timeout, SERVFAIL)
    ERROR_ANSWER = "error-answer"  # an answer the list documents as an error, not a listing
    NO_IPV6 = "no-ipv6"  # skipped: the list has no IPv6 data
    UNHEALTHY = "unhealthy"  # skipped: the list failed its §5 test entries
    DISTRUSTED = "distrusted"  # skipped for a while after error answers
    NAME_TOO_LONG = "name-too-long"  # skipped: the query name is over 253 octets
    INVALID_DOMAIN = "invalid-domain"  # skipped: the subject is not a domain name


@dataclass(frozen=True, slots=True)
class ListResult:
    """What one list said about one subject."""

    list: str
    zone: str
    query: str
    status: ListStatus
    reason_code: ListReason
    codes: tuple[ipaddress.IPv4Address, ...] = ()
    symbols: tuple[Symbol, ...] = ()  # named and weighed by the definition (the policy scores)
    reason: str = ""  # the list's TXT text for a hit, else why it is not a plain answer
    allow: bool = False  # the list is an allow list (DNSWL)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this answer, with its symbols by name (their scores are the
        policy's: commands that show them add them, `mailwarden.pipeline.views`)."""
        return {
            "list": self.list,
            "zone": self.zone,
            "query": self.query,
            "status": self.status.value,
            "reason_code": self.reason_code.value,
            "codes": [str(c) for c in self.codes],
            "symbols": [s.name for s in self.symbols],
            "reason": self.reason,
            "allow": self.allow,
        }


@dataclass(frozen=True, slots=True)
class DNSListReport:
    """Every list's answer about one address or domain."""

    subject: str
    results: tuple[ListResult, ...]

    @property
    def symbols(self) -> tuple[Symbol, ...]:
        return tuple(s for r in self.results for s in r.symbols)

    @property
    def listed(self) -> tuple[ListResult, ...]:
        """Hits of block lists."""
        return tuple(r for r in self.results if r.status is ListStatus.LISTED and not r.allow)

    @property
    def allowed(self) -> tuple[ListResult, ...]:
        """Hits of allow lists (DNSWL): such mail is never greylisted."""
        return tuple(r for r in self.results if r.status is ListStatus.LISTED and r.allow)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this report, symbols by name (see `ListResult.to_dict`)."""
        return {
            "subject": self.subject,
            "results": [r.to_dict() for r in self.results],
            "symbols": [s.name for s in self.symbols],
            "listed": [r.list for r in self.listed],
            "allowed": [r.list for r in self.allowed],
            "warnings": list(self.warnings),
        }

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(
            f"{r.list}: {r.reason}"
            for r in self.results
            if r.status in (ListStatus.ERROR, ListStatus.TEMPERROR)
            or r.reason_code in (ListReason.UNHEALTHY, ListReason.DISTRUSTED)
        )


@dataclass(slots=True)
class ListHealth:
    """Mutable health of one list, kept by its checker."""

    healthy: bool = True
    checked_at: float | None = None
    reason: str = ""
    errors: int = 0  # error answers (127.255.255.x and the like) seen so far
    last_error: str = ""
    distrusted_until: float = 0.0
    problems: list[str] = field(default_factory=list)


def query_name(subject: IPAddress | str, zone: str) -> str:
    """The name queried: reversed octets or nibbles (RFC 5782 §2.1, §2.4), or domain.zone."""
    if isinstance(subject, ipaddress.IPv4Address | ipaddress.IPv6Address):
        pointer = subject.reverse_pointer
        return pointer.rsplit(".", 2)[0] + "." + zone
    return f"{subject}.{zone}"


class DNSListChecker:
    """Queries configured lists through `resolver`; keeps per-list health."""

    def __init__(
        self,
        resolver: Resolver,
        lists: Iterable[DNSList],
        clock: Callable[[], float] = time.time,
        *,
        error_hold: float = 600.0,
        health_interval: float = 3600.0,
    ) -> None:
        self.resolver = resolver
        self.lists: tuple[DNSList, ...] = tuple(lists)
        names = [lst.name for lst in self.lists]
        if len(set(names)) != len(names):
            raise ValueError("two DNS lists share a name")
        self.clock = clock
        self.error_hold = error_hold
        self.health_interval = health_interval
        self.health: dict[str, ListHealth] = {lst.name: ListHealth() for lst in self.lists}
        self._last_health_check: float | None = None

    # -- checks ----------------------------------------------------------------------------
    async def check_ip(self, ip: IPAddress | str) -> DNSListReport:
        """Every address list (DNSBL and DNSWL) about `ip`, concurrently."""
        address = parse_ip(ip) if isinstance(ip, str) else ip
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        lists = [lst for lst in self.lists if lst.kind is ListKind.IP]
        results = await gather_lookups(self.resolver, *(self._query(lst, address) for lst in lists))
        return DNSListReport(str(address), tuple(results))

    async def check_domain(self, domain: str) -> DNSListReport:
        """Every domain list (RHSBL) about `domain`, concurrently."""
        try:
            name = normalize(to_ascii(domain.strip()))
        except ValueError:
            name = ""
        lists = [lst for lst in self.lists if lst.kind is ListKind.DOMAIN]
        if not name or not is_domain_name(name) or "." not in name:
            return DNSListReport(
                domain,
                tuple(
                    ListResult(
                        lst.name,
                        lst.zone,
                        "",
                        ListStatus.SKIPPED,
                        ListReason.INVALID_DOMAIN,
                        reason=f"{domain!r} is not a domain name",
                        allow=lst.type is ListType.ALLOW,
                    )
                    for lst in lists
                ),
            )
        results = await gather_lookups(self.resolver, *(self._query(lst, name) for lst in lists))
        return DNSListReport(name, tuple(results))

    async def check_domains(self, identities: Mapping[str, str]) -> dict[str, DNSListReport]:
        """Several identities ({"helo": ..., "mail_from": ..., "from": ..., "dkim": ...})
        at once; a domain named by several identities is queried once."""
        unique = {normalize(d) for d in identities.values() if d}
        reports = await gather_lookups(self.resolver, *(self.check_domain(d) for d in unique))
        by_domain = dict(zip(unique, reports, strict=True))
        return {key: by_domain[normalize(d)] for key, d in identities.items() if d}

    async def _query(self, lst: DNSList, subject: IPAddress | str) -> ListResult:
        allow = lst.type is ListType.ALLOW
        if isinstance(subject, ipaddress.IPv6Address) and not lst.ipv6:
            return ListResult(
                lst.name,
                lst.zone,
                "",
                ListStatus.SKIPPED,
                ListReason.NO_IPV6,
                reason="no IPv6 data",
                allow=allow,
            )
        qname = query_name(subject, lst.zone)
        health = self.health[lst.name]
        if not health.healthy:
            reason = f"unhealthy: {health.reason}"
            return ListResult(
                lst.name,
                lst.zone,
                qname,
                ListStatus.SKIPPED,
                ListReason.UNHEALTHY,
                reason=reason,
                allow=allow,
            )
        if health.distrusted_until > self.clock():
            reason = f"distrusted after error answers: {health.last_error}"
            return ListResult(
                lst.name,
                lst.zone,
                qname,
                ListStatus.SKIPPED,
                ListReason.DISTRUSTED,
                reason=reason,
                allow=allow,
            )
        if len(qname) > 253:
            return ListResult(
                lst.name,
                lst.zone,
                qname,
                ListStatus.SKIPPED,
                ListReason.NAME_TOO_LONG,
                reason="name too long",
                allow=allow,
            )
        result = await self._lookup(lst, qname)
        if result.status is ListStatus.ERROR:
            self._record_error(lst, result.reason)
        if result.status is ListStatus.LISTED and lst.fetch_txt:
            text = await self._txt(qname)
            if text:
                return ListResult(
                    result.list,
                    result.zone,
                    result.query,
                    result.status,
                    result.reason_code,
                    result.codes,
                    tuple(Symbol(s.name, s.score, f"{s.detail}: {text}") for s in result.symbols),
                    text,
                    allow,
                )
        return result

    async def _lookup(self, lst: DNSList, qname: str) -> ListResult:
        allow = lst.type is ListType.ALLOW
        try:
            answer = await self.resolver.resolve(qname, RdType.A)
        except (NXDomain, NoData):
            return ListResult(
                lst.name, lst.zone, qname, ListStatus.NOT_LISTED, ListReason.NOT_LISTED, allow=allow
            )
        except TemporaryFailure as exc:
            return ListResult(
                lst.name,
                lst.zone,
                qname,
                ListStatus.TEMPERROR,
                ListReason.DNS_ERROR,
                reason=exc.detail,
                allow=allow,
            )
        codes = tuple(sorted(a for a in answer.addresses() if isinstance(a, ipaddress.IPv4Address)))
        errors = [self._error_meaning(lst, code) for code in codes]
        problems = [f"{code}: {e}" for code, e in zip(codes, errors, strict=True) if e]
        if problems or not codes:
            reason = "; ".join(problems) or "answer without IPv4 addresses"
            return ListResult(
                lst.name,
                lst.zone,
                qname,
                ListStatus.ERROR,
                ListReason.ERROR_ANSWER,
                codes,
                reason=reason,
                allow=allow,
            )
        symbols = _symbols(lst, codes)
        reason = "; ".join(dict.fromkeys(s.detail for s in symbols))
        return ListResult(
            lst.name,
            lst.zone,
            qname,
            ListStatus.LISTED,
            ListReason.LISTED,
            codes,
            symbols,
            reason,
            allow,
        )

    @staticmethod
    def _error_meaning(lst: DNSList, code: ipaddress.IPv4Address) -> str:
        text = str(code)
        if text in lst.error_codes:
            return lst.error_codes[text]
        if text in LIST_ERROR_CODES:
            return LIST_ERROR_CODES[text]
        if text.startswith("127.255.255."):
            return "error answer of the list"
        if code not in LOOPBACK_NET:  # RFC 5782 §2.3: listings are in 127.0.0.0/8
            return "answer outside 127.0.0.0/8 (wildcard or rewriting resolver?)"
        return ""

    def _record_error(self, lst: DNSList, reason: str) -> None:
        health = self.health[lst.name]
        health.errors += 1
        health.last_error = reason
        health.distrusted_until = self.clock() + self.error_hold
        log.warning(
            "DNS list %s (%s) answered with an error, distrusted for %gs: %s",
            lst.name,
            lst.zone,
            self.error_hold,
            reason,
        )

    async def _txt(self, qname: str) -> str:
        try:
            answer = await self.resolver.resolve(qname, RdType.TXT)
        except (NXDomain, NoData, TemporaryFailure):
            return ""
        return " ".join(t.joined.decode("utf-8", "replace") for t in answer.txt()).strip()

    # -- health ----------------------------------------------------------------------------
    async def health_check(self) -> dict[str, ListHealth]:
        """RFC 5782 §5 tests for every list, concurrently; failing lists become unhealthy."""
        await asyncio.gather(*(self._check_health(lst) for lst in self.lists))
        self._last_health_check = self.clock()
        return self.health

    async def maybe_health_check(self) -> bool:
        """Run the health check when none ran for `health_interval` seconds."""
        last = self._last_health_check
        if last is not None and self.clock() - last < self.health_interval:
            return False
        await self.health_check()
        return True

    async def health_loop(self, stop: asyncio.Event) -> None:
        """Check health now and then every `health_interval` seconds until `stop` is set."""
        while not stop.is_set():
            await self.maybe_health_check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.health_interval)

    def warnings(self) -> list[str]:
        """One line per list that is unhealthy or distrusted now."""
        now = self.clock()
        out = []
        for lst in self.lists:
            health = self.health[lst.name]
            if not health.healthy:
                out.append(f"DNS list {lst.name} ({lst.zone}) is unhealthy: {health.reason}")
            elif health.distrusted_until > now:
                out.append(
                    f"DNS list {lst.name} ({lst.zone}) answers with errors "
                    f"({health.errors} so far): {health.last_error}"
                )
        return out

    async def _check_health(self, lst: DNSList) -> None:
        tests: list[tuple[IPAddress | str, bool]] = []
        if lst.kind is ListKind.IP:
            listed: IPAddress | str = (
                parse_ip(lst.test_listed) if lst.test_listed else TEST_LISTED_V4
            )
            unlisted: IPAddress | str = (
                parse_ip(lst.test_unlisted) if lst.test_unlisted else TEST_UNLISTED_V4
            )
            tests = [(listed, True), (unlisted, False)]
            if lst.ipv6:
                tests += [(TEST_LISTED_V6, True), (TEST_UNLISTED_V6, False)]
        else:
            tests = [
                (lst.test_listed or TEST_LISTED_DOMAIN, True),
                (lst.test_unlisted or TEST_UNLISTED_DOMAIN, False),
            ]
        outcomes = await asyncio.gather(
            *(self._lookup(lst, query_name(subject, lst.zone)) for subject, _ in tests)
        )
        problems = []
        for (subject, should_list), outcome in zip(tests, outcomes, strict=True):
            if outcome.status is ListStatus.ERROR:
                problems.append(f"test entry {subject}: {outcome.reason}")
            elif outcome.status is ListStatus.TEMPERROR:
                problems.append(f"test entry {subject}: no answer ({outcome.reason})")
            elif should_list and outcome.status is not ListStatus.LISTED:
                problems.append(f"test entry {subject} is not listed")
            elif not should_list and outcome.status is ListStatus.LISTED:
                problems.append(f"{subject} is listed (the list answers for everything)")
        health = self.health[lst.name]
        health.checked_at = self.clock()
        health.problems = problems
        was_healthy = health.healthy
        health.healthy = not problems
        health.reason = "; ".join(problems)
        if problems:
            log.warning(
                "DNS list %s (%s) failed its health check: %s", lst.name, lst.zone, health.reason
            )
        else:
            health.distrusted_until = 0.0
            if not was_healthy:
                log.info("DNS list %s (%s) is healthy again", lst.name, lst.zone)


def _symbols(lst: DNSList, codes: Sequence[ipaddress.IPv4Address]) -> tuple[Symbol, ...]:
    """Symbols for the return codes of a hit: code map, bitmask, else the list's default
    symbol, each with the score the definition gives it (the policy's default for it)."""
    found: dict[str, Symbol] = {}
    for code in codes:
        matched = False
        for entry in lst.codes:
            if entry.pattern.matches(code):
                matched = True
                detail = entry.description or f"{lst.zone} answered {code}"
                found.setdefault(entry.symbol, Symbol(entry.symbol, entry.score, detail))
        last = code.packed[3]
        for bit in lst.bitmask:
            if last & bit.bit:
                matched = True
                detail = bit.description or f"{lst.zone} bit {bit.bit}"
                found.setdefault(bit.symbol, Symbol(bit.symbol, bit.score, detail))
        if not matched:
            symbol = lst.default_symbol
            found.setdefault(
                symbol, Symbol(symbol, lst.default_score, f"{lst.zone} answered {code}")
            )
    return tuple(found.values())
