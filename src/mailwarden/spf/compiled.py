"""Compiled SPF policies: a domain's whole include/redirect tree resolved ahead of time.

For a domain seen repeatedly (the large senders that make up most traffic) every DNS answer the
policy depends on is the same for each client of one address family, except where a term
expands macros or depends on the client (ptr, exists, macros): those terms stay dynamic, and
the interpreter evaluates them when a run reaches them. Compiling fetches the tree once and
turns it into steps; running the static steps for a client address needs no DNS.
The processing limits of RFC 7208 §4.6.4 stay exact: every step carries its cost (DNS-querying
terms, void lookups, queries), counted as the interpreter would count them on the same path,
because the path taken depends on the address. A compiled policy lives no longer than the
shortest TTL of the answers it was built from.
"""

from __future__ import annotations

import asyncio
import bisect
import ipaddress
from collections.abc import Awaitable, Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from mailwarden.dns import (
    MX,
    TXT,
    DNSError,
    IPAddress,
    NoData,
    NXDomain,
    RData,
    RdType,
    Resolver,
    TemporaryFailure,
)

from .record import (
    MacroString,
    Mechanism,
    MechanismKind,
    Qualifier,
    Record,
    SPFSyntaxError,
    is_spf_record,
)
from .result import SPFReason

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
T = TypeVar("T")

_MATCHED = SPFReason.MATCHED
QUALIFIER_RESULT = {
    Qualifier.PASS: "pass",
    Qualifier.FAIL: "fail",
    Qualifier.SOFTFAIL: "softfail",
    Qualifier.NEUTRAL: "neutral",
}


class NotCompilable(Exception):
    """The policy depends on the client beyond its address, or DNS failed while compiling."""

    def __init__(self, reason: str, *, retry_soon: bool = False) -> None:
        super().__init__(reason)
        self.retry_soon = retry_soon


@dataclass(slots=True)
class Step:
    """One term of a compiled record, with what reaching it costs."""

    mechanism: Mechanism | None  # None for the redirect step
    target: str = ""  # the name looked up (a, mx), for reasons
    dns_terms: int = 0  # counts against the limit of 10 (§4.6.4)
    queries: int = 0  # resolver queries the interpreter makes for this term
    void: bool = False  # counts against the void lookup limit (§4.6.4)
    abort: tuple[str, str, SPFReason] | None = None  # (result, reason, code) once counted
    ranges: tuple[tuple[int, int], ...] = ()  # first and last address, as integers
    matches_all: bool = False
    sub: CompiledPolicy | None = None  # include target or redirect target
    dynamic: bool = False  # evaluated by the interpreter (ptr, exists, macros); target=domain
    plain: bool = False  # costs nothing and needs nothing but the address (ip4, ip6, all)
    block: tuple[list[int], list[Step | None]] | None = None  # merged plain steps, see blocks()
    result: str = ""  # what a match gives, and why: filled in by `Compiler.compile`
    reason: str = ""


@dataclass(slots=True)
class CompiledPolicy:
    """A compiled check_host() of one domain for one address family."""

    domain: str
    queries: int  # the TXT query (0 when the name is not a valid domain)
    none_reason: str | None = None  # the domain has no SPF policy: result none
    none_code: SPFReason = SPFReason.NO_RECORD  # and why, as a code
    abort: tuple[str, str, SPFReason] | None = None  # permerror found selecting the record
    record: Record | None = None
    steps: list[Step] = field(default_factory=list)
    redirect: Step | None = None
    ttl: int = 2**31
    static: bool = True  # no dynamic term anywhere in the tree: runs without awaiting
    version: int = 4  # the address family it was compiled for
    summary: Summary | None = None  # of a static tree, made on first use: see summarize()


@dataclass(frozen=True, slots=True)
class Summary:
    """A static policy tree evaluated once per address segment: the segment starts, and for
    each the outcome (a Match or an Abort) with the DNS terms, void lookups and queries its
    path costs. Counters only grow along a path, so when the totals are within the limits no
    limit can have been exceeded on the way, and the outcome stands as it is."""

    starts: list[int]
    outcomes: list[tuple[Match | Abort, int, int, int]]


class Compiler:
    """Builds a `CompiledPolicy` through a resolver; raises NotCompilable when it cannot."""

    def __init__(
        self,
        resolver: Resolver,
        version: int,
        *,
        parse: Callable[[bytes], Record],
        valid_domain: Callable[[str], bool],
        mx_limit: int,
        max_depth: int,
    ) -> None:
        self.resolver = resolver
        self.version = version
        self.address_type = RdType.A if version == 4 else RdType.AAAA
        self.parse = parse
        self.valid_domain = valid_domain
        self.mx_limit = mx_limit
        self.max_depth = max_depth
        self.ttl = 2**31

    async def answer(self, name: str, rdtype: RdType) -> list[RData] | None:
        """Records of `name`, or None for NXDOMAIN/NODATA; a temporary failure aborts."""
        try:
            answer = await self.resolver.resolve(name, rdtype)
        except TemporaryFailure as exc:
            raise NotCompilable(f"DNS failure at {name}", retry_soon=True) from exc
        except (NXDomain, NoData) as exc:
            self.ttl = min(self.ttl, exc.ttl or 60)
            return None
        except DNSError as exc:  # pragma: no cover - the three kinds above are exhaustive
            raise NotCompilable(str(exc), retry_soon=True) from exc
        self.ttl = min(self.ttl, answer.ttl)
        return list(answer.records)

    async def compile(self, domain: str, depth: int = 0) -> CompiledPolicy:
        """The policy of `domain` with every include and redirect target compiled in."""
        if depth > self.max_depth:  # deeper trees always exceed the limits: interpret them
            raise NotCompilable("include or redirect chain deeper than the DNS term limit")
        if not self.valid_domain(domain):  # RFC 7208 §4.3
            return CompiledPolicy(
                domain,
                0,
                none_reason=f"{domain!r} is not a valid domain name",
                none_code=SPFReason.INVALID_DOMAIN,
                version=self.version,
            )
        records = await self.answer(domain, RdType.TXT)
        policy = CompiledPolicy(domain, 1, version=self.version)
        joined = [r.joined for r in records or () if isinstance(r, TXT)]
        texts = [text for text in joined if is_spf_record(text)]
        if not texts:
            policy.none_reason = f"no SPF record at {domain}"
            return policy
        if len(texts) > 1:  # RFC 7208 §4.5
            policy.abort = (
                "permerror",
                f"{domain} publishes {len(texts)} SPF records",
                SPFReason.MULTIPLE_RECORDS,
            )
            return policy
        try:
            record = self.parse(texts[0])
        except SPFSyntaxError as exc:
            policy.abort = (
                "permerror",
                f"syntax error in the SPF record of {domain}: {exc}",
                SPFReason.SYNTAX_ERROR,
            )
            return policy
        policy.record = record
        steps = await _all(self.step(m, domain, depth) for m in record.mechanisms)
        for step in steps:
            assert step.mechanism is not None
            step.result = QUALIFIER_RESULT[step.mechanism.qualifier]
            step.reason = f"matched {step.mechanism.text}"
            step.plain = not (step.dynamic or step.dns_terms or step.void or step.abort or step.sub)
        policy.steps.extend(self.blocks(steps))
        if record.redirect is not None and not record.has_all:  # RFC 7208 §6.1
            if not record.redirect.is_literal:
                raise NotCompilable("redirect= uses macros")
            target = literal_domain(record.redirect)
            policy.redirect = Step(None, dns_terms=1, sub=await self.compile(target, depth + 1))
        policy.ttl = self.ttl
        subs = [step.sub for step in policy.steps if step.sub is not None]
        if policy.redirect is not None and policy.redirect.sub is not None:
            subs.append(policy.redirect.sub)
        policy.static = not any(step.dynamic for step in policy.steps) and all(
            sub.static for sub in subs
        )
        return policy

    async def step(self, mechanism: Mechanism, domain: str, depth: int) -> Step:
        kind = mechanism.kind
        if kind is MechanismKind.ALL:
            return Step(mechanism, matches_all=True)
        if mechanism.network is not None:
            return Step(mechanism, ranges=self.ranges((mechanism.network,)))
        if kind in (MechanismKind.PTR, MechanismKind.EXISTS) or (
            mechanism.domain is not None and not mechanism.domain.is_literal
        ):  # depends on the client: the interpreter evaluates this one term at run time
            return Step(mechanism, domain, dynamic=True)
        target = literal_domain(mechanism.domain) if mechanism.domain else domain
        if kind is MechanismKind.INCLUDE:
            return Step(mechanism, dns_terms=1, sub=await self.compile(target, depth + 1))
        bits = mechanism.cidr4 if self.address_type is RdType.A else mechanism.cidr6
        if kind is MechanismKind.A:
            if not self.valid_domain(target):
                return Step(mechanism, target, dns_terms=1)
            found = await self.answer(target, self.address_type)
            return Step(
                mechanism,
                target,
                dns_terms=1,
                queries=1,
                void=found is None,
                ranges=self.ranges(_networks(found or (), bits)),
            )
        # mx (RFC 7208 §5.4)
        if not self.valid_domain(target):
            return Step(mechanism, target, dns_terms=1)
        exchanges = await self.answer(target, RdType.MX)
        step = Step(mechanism, target, dns_terms=1, queries=1, void=exchanges is None)
        names = [mx.exchange for mx in exchanges or () if isinstance(mx, MX)]
        if len(names) > self.mx_limit:
            step.abort = (
                "permerror",
                f"{target} has more than {self.mx_limit} MX records",
                SPFReason.MX_LIMIT,
            )
            return step
        hosts = [name for name in names if name and self.valid_domain(name)]
        step.queries += len(hosts)
        answers = await _all(self.answer(h, self.address_type) for h in hosts)
        addresses = [address for found in answers for address in found or ()]
        step.ranges = self.ranges(_networks(addresses, bits))
        return step

    def blocks(self, steps: list[Step]) -> list[Step]:
        """Runs of plain steps (ip4, ip6, all: no cost, no DNS) merged into one block each,
        looked up by bisection: the address space cut into segments, each naming the first
        step of the run that matches there (RFC 7208 §4.6.2: first match wins)."""
        out: list[Step] = []
        run: list[Step] = []
        for step in [*steps, None]:
            if step is not None and step.plain:
                run.append(step)
                continue
            if len(run) > 1:
                out.append(Step(run[0].mechanism, plain=True, block=self.segments(run)))
            else:
                out.extend(run)
            run = []
            if step is not None:
                out.append(step)
        return out

    def segments(self, run: list[Step]) -> tuple[list[int], list[Step | None]]:
        top = (1 << (32 if self.version == 4 else 128)) - 1
        spans = [
            (first, last, index)
            for index, step in enumerate(run)
            for first, last in (((0, top),) if step.matches_all else step.ranges)
        ]
        points = sorted({0} | {first for first, _, _ in spans} | {last + 1 for _, last, _ in spans})
        starts = [p for p in points if p <= top]
        winners: list[Step | None] = []
        for start in starts:
            covering = [index for first, last, index in spans if first <= start <= last]
            winners.append(run[min(covering)] if covering else None)
        return starts, winners

    def ranges(self, networks: Iterable[Network]) -> tuple[tuple[int, int], ...]:
        """The networks of the compiled family as integer ranges (others never match)."""
        return tuple(
            (int(net.network_address), int(net.broadcast_address))
            for net in networks
            if net.version == self.version
        )


async def _all(work: Iterable[Awaitable[T]]) -> list[T]:
    """Run concurrently; the first failure is raised once every one has finished."""
    results = await asyncio.gather(*work, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]


def literal_domain(spec: MacroString) -> str:
    """A domain-spec without macros, as the interpreter's expand_domain() would give it."""
    text = "".join(part for part in spec.parts if isinstance(part, str))  # %% %_ %- decoded
    if text.endswith("."):
        text = text[:-1]
    while len(text) > 253 and "." in text:
        text = text.split(".", 1)[1]
    return text.lower()


def _networks(addresses: Iterable[RData], bits: int) -> tuple[Network, ...]:
    out: list[Network] = []
    for address in addresses:
        if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
            out.append(ipaddress.ip_network((address, bits), strict=False))
    return tuple(out)


@dataclass(slots=True)
class Run:
    """Counters of one run of a compiled policy, as the interpreter would count them."""

    ip: IPAddress
    dns_limit: int
    void_limit: int
    ip_int: int = 0
    dns_terms: int = 0
    void_lookups: int = 0
    queries: int = 0


class Abort(Exception):
    """An evaluation (interpreted or compiled) ends in permerror or temperror."""

    def __init__(self, result: str, reason: str, code: SPFReason) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason
        self.code = code


@dataclass(slots=True)
class Match:
    """What a run ends with: a result, the matching term, and the record it came from."""

    result: str
    reason: str
    code: SPFReason
    mechanism: str | None = None
    policy: CompiledPolicy | None = None  # whose exp= applies on fail


DynamicMatch = Callable[[Mechanism, str, Run], Awaitable[bool]]


def run_summarized(policy: CompiledPolicy, state: Run) -> Match:
    """Evaluate a static policy for a fresh `state` by one bisection in its summary; when the
    path would exceed a limit, walk it to find where (the permerror names the term)."""
    summary = policy.summary or summarize(policy)
    index = bisect.bisect_right(summary.starts, state.ip_int) - 1
    outcome, dns_terms, void_lookups, queries = summary.outcomes[index]
    if dns_terms > state.dns_limit or void_lookups > state.void_limit:
        return run_static(policy, state)
    state.dns_terms, state.void_lookups, state.queries = dns_terms, void_lookups, queries
    if isinstance(outcome, Abort):
        raise Abort(outcome.result, outcome.reason, outcome.code)
    return outcome


def summarize(policy: CompiledPolicy) -> Summary:
    """Evaluate a static tree once for each segment of the address space between the bounds
    of all its ranges (the path taken depends on nothing else)."""
    top = (1 << (32 if policy.version == 4 else 128)) - 1
    bounds: set[int] = {0}
    _bounds(policy, bounds)
    starts = sorted(b for b in bounds if b <= top)
    outcomes: list[tuple[Match | Abort, int, int, int]] = []
    for start in starts:
        ip = ipaddress.IPv4Address(start) if policy.version == 4 else ipaddress.IPv6Address(start)
        state = Run(ip, 1 << 30, 1 << 30, start)  # no limit: the path's own totals
        outcome: Match | Abort
        try:
            outcome = run_static(policy, state)
        except Abort as abort:
            outcome = abort
        outcomes.append((outcome, state.dns_terms, state.void_lookups, state.queries))
    policy.summary = Summary(starts, outcomes)
    return policy.summary


def _bounds(policy: CompiledPolicy, bounds: set[int]) -> None:
    for step in policy.steps:
        if step.block is not None:
            bounds.update(step.block[0])
        for first, last in step.ranges:
            bounds.update((first, last + 1))
        if step.sub is not None:
            _bounds(step.sub, bounds)
    if policy.redirect is not None and policy.redirect.sub is not None:
        _bounds(policy.redirect.sub, bounds)


def run_static(policy: CompiledPolicy, state: Run) -> Match:
    """Evaluate a compiled policy without dynamic terms: no awaits at all."""
    steps = _run(policy, state)
    try:
        steps.send(None)
    except StopIteration as done:
        result: Match = done.value
        return result
    steps.close()
    raise RuntimeError(f"the policy of {policy.domain} has a dynamic term")  # pragma: no cover


async def run_policy(policy: CompiledPolicy, state: Run, dynamic: DynamicMatch) -> Match:
    """Evaluate a compiled policy for `state.ip`; raises Abort for permerror/temperror.

    `dynamic(mechanism, domain, state)` evaluates a term that depends on the client, counting
    its cost in `state` as the interpreter does.
    """
    steps = _run(policy, state)
    answer: bool | None = None
    try:
        while True:
            mechanism, domain = steps.send(answer)
            answer = await dynamic(mechanism, domain, state)
    except StopIteration as done:
        result: Match = done.value
        return result
    finally:
        steps.close()


def _run(
    policy: CompiledPolicy, state: Run
) -> Generator[tuple[Mechanism, str], bool | None, Match]:
    """The evaluation itself, as a generator: it yields each dynamic term it reaches and is
    sent back whether that term matched, so one body serves the sync and async drivers."""
    state.queries += policy.queries
    if policy.none_reason is not None:
        return Match("none", policy.none_reason, policy.none_code)
    if policy.abort is not None:
        raise Abort(*policy.abort)
    address = state.ip_int
    for step in policy.steps:  # RFC 7208 §4.6.2: first match wins
        mechanism = step.mechanism
        assert mechanism is not None
        if step.block is not None:  # consecutive ip4/ip6/all terms: one bisection
            starts, winners = step.block
            winner = winners[bisect.bisect_right(starts, address) - 1]
            if winner is not None:
                assert winner.mechanism is not None
                return Match(winner.result, winner.reason, _MATCHED, winner.mechanism.text, policy)
            continue
        if step.plain:  # the common case, kept short: ip4, ip6, all
            if step.matches_all:
                return Match(step.result, step.reason, _MATCHED, mechanism.text, policy)
            for first, last in step.ranges:
                if first <= address <= last:
                    return Match(step.result, step.reason, _MATCHED, mechanism.text, policy)
            continue
        if step.dynamic:
            if (yield (mechanism, step.target)):
                return Match(step.result, step.reason, _MATCHED, mechanism.text, policy)
            continue
        if step.dns_terms:
            state.dns_terms += 1
            if state.dns_terms > state.dns_limit:
                raise Abort(
                    "permerror",
                    f"more than {state.dns_limit} DNS-querying terms (at {mechanism.text})",
                    SPFReason.DNS_LIMIT,
                )
        state.queries += step.queries
        if step.void:
            state.void_lookups += 1
            if state.void_lookups > state.void_limit:
                raise Abort(
                    "permerror",
                    f"more than {state.void_limit} void DNS lookups (at {step.target})",
                    SPFReason.VOID_LIMIT,
                )
        if step.abort is not None:
            raise Abort(*step.abort)
        if step.sub is not None:  # include (RFC 7208 §5.2)
            inner = yield from _run(step.sub, state)
            if inner.result == "none":
                raise Abort(
                    "permerror",
                    f"included domain {step.sub.domain} has no SPF record",
                    SPFReason.INCLUDE_NONE,
                )
            matched = inner.result == "pass"
        else:
            matched = step.matches_all
            for first, last in step.ranges:
                if first <= address <= last:
                    matched = True
                    break
        if matched:
            return Match(step.result, step.reason, _MATCHED, mechanism.text, policy)
    redirect = policy.redirect
    if redirect is not None and redirect.sub is not None:
        state.dns_terms += 1
        if state.dns_terms > state.dns_limit:
            raise Abort(
                "permerror",
                f"more than {state.dns_limit} DNS-querying terms (at redirect)",
                SPFReason.DNS_LIMIT,
            )
        outcome = yield from _run(redirect.sub, state)
        if outcome.result == "none":
            raise Abort(
                "permerror",
                f"redirect target {redirect.sub.domain} has no SPF record",
                SPFReason.REDIRECT_NONE,
            )
        return outcome
    return Match(
        "neutral", f"no mechanism matched in the policy of {policy.domain}", SPFReason.DEFAULT
    )
