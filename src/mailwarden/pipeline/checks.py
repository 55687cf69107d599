"""The checks of one message, scheduled concurrently, then the policy.

`Pipeline.check(message, ip=..., helo=..., mail_from=...)` runs SPF (both identities), DKIM,
ARC, iprev, the HELO checks and the DNS lists at once, then DMARC from the SPF and DKIM results
(and RHSBL for the DKIM domains), then the pure policy. Front ends that see a message in
stages (the gateway, the milter) start each stage as its inputs arrive, through the stage
methods or `SessionChecks` (stages.py), and get the same verdict.

This is the one place that schedules checks; front ends only translate their protocol. It is
also where they are timed (`mailwarden_stage_seconds`, `mailwarden_check_seconds`) and each
verdict's symbols and authentication results counted, so every front end gets the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import ipaddress
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, Generic, TypeVar

from mailwarden import metrics
from mailwarden.arc import (
    ARCResult,
    ARCVerifier,
    trusted_forwarder_override,
    trusted_sealer_dmarc_pass,
)
from mailwarden.authres import AuthenticationResults, AuthResultsBuilder
from mailwarden.body import SpooledMessage
from mailwarden.dkim import DKIMReason, DKIMResult, DKIMStatus, DKIMVerifier
from mailwarden.dmarc import (
    DMARCEvaluator,
    DMARCResult,
    DMARCStatus,
    MultipleAuthors,
    is_dmarc_record,
    tree_walk_names,
)
from mailwarden.dns import DNSError, IPAddress, RdType, Resolver, TemporaryFailure, parse_ip
from mailwarden.dns.cache import CachingResolver
from mailwarden.dnsbl import DNSListChecker, DNSListReport
from mailwarden.greylist import Greylister
from mailwarden.helo import check_helo
from mailwarden.iprev import IprevResult, check_iprev
from mailwarden.message import Message
from mailwarden.policy import (
    AuthorHandling,
    Facts,
    HeaderSyntax,
    PolicyConfig,
    arc_symbols,
    decide,
    dkim_symbols,
    dmarc_symbols,
    dnsbl_symbols,
    helo_symbols,
    iprev_symbols,
    spf_symbols,
)
from mailwarden.reports import Recorder
from mailwarden.runtime import finish_or_start, start
from mailwarden.settings import Settings
from mailwarden.spf import Identity, SPFChecker, SPFResult, split_sender
from mailwarden.symbols import Symbol
from mailwarden.transactions import TransactionRecorder

from .deadlines import timed_out_dkim, timed_out_dmarc, timed_out_spf
from .parsed import ParsedMessage, parse
from .results import ConnectionFacts, HeloFacts, MessageVerdict

T = TypeVar("T")

__all__ = ["Pipeline"]

_GAUGE_ENTRIES = 100_000  # greylist entries read for the gauges at most
# Members read for every message, as module constants (Enum.MEMBER reads are slow on 3.11)
_STRICT = HeaderSyntax.STRICT
_DMARC_FAIL, _DMARC_PASS = DMARCStatus.FAIL, DMARCStatus.PASS
_TXT = RdType.TXT


class Pipeline:
    """Every check, built from one `Settings`, sharing one resolver (and its cache).

    Build it with `mailwarden.pipeline.build(settings, resolver)`. `network_checks` False
    turns off iprev, HELO and DNS lists (the CLI's --no-network-checks); `greylister` is the
    greylisting engine of front ends that greylist (the gateway); `recorder` keeps every
    final DMARC evaluation for reports (the long-running front ends); `transactions` keeps
    every transaction the stage objects answer, for the dashboard.
    """

    def __init__(
        self,
        settings: Settings,
        resolver: Resolver,
        *,
        clock: Callable[[], float] = time.time,
        network_checks: bool = True,
        greylister: Greylister | None = None,
        recorder: Recorder | None = None,
        transactions: TransactionRecorder | None = None,
    ) -> None:
        # One cache for all checks: identical lookups are asked once, and prefetched answers
        # (whole SPF trees, the DMARC tree walk) are waiting when a check needs them.
        if not isinstance(resolver, CachingResolver):
            resolver = CachingResolver(resolver)
        self.settings = settings
        self.resolver = resolver
        self.clock = clock
        self.authserv_id = settings.gateway.hostname
        self.policy: PolicyConfig = settings.policy
        self.network_checks = network_checks
        self.greylister = greylister
        self.recorder = recorder
        self.transactions = transactions
        self.spf = SPFChecker(resolver, receiver=self.authserv_id, clock=clock, prefetch=True)
        self.dkim = DKIMVerifier(resolver, clock=clock)
        several = settings.policy.several_authors is AuthorHandling.STRICTEST
        self.dmarc = DMARCEvaluator(
            resolver,
            discovery=settings.dmarc.discovery,
            multiple_authors=MultipleAuthors.STRICTEST
            if several
            else MultipleAuthors.NOT_EVALUATED,
            eager=True,  # its resolver is a CachingResolver
        )
        # ARC (RFC 8617, being made Historic) is checked and reported; only a trusted
        # sealer's dmarc=pass can change anything (a local DMARC fail becomes
        # trusted_forwarder).
        self.arc = ARCVerifier(resolver, clock=clock, key_source=self.dkim.key)
        self.trusted_sealers = settings.dmarc.trusted_sealers
        lists = settings.dnsbl.selected
        self.dnsbl = DNSListChecker(resolver, lists) if lists and network_checks else None
        self.our_names = (self.authserv_id, *settings.gateway.our_names)
        self.our_addresses = _listen_addresses(settings)
        self._background: set[asyncio.Future[None]] = set()
        # False in the gateway's worker processes but one: the DMARC reports' schedule runs
        # in one process only (the recorder still records in every one)
        self.runs_schedules = True

    # -- stages: each starts as soon as its inputs are known, each within its deadline ------
    async def connection_checks(self, ip: IPAddress | str) -> ConnectionFacts:
        """At connect: iprev and the address DNS lists, concurrently (`deadlines.connect`;
        out of time, neither counts: a reputation check never refuses on a guess)."""
        seconds = self.settings.deadlines.connect
        started = time.perf_counter()
        try:
            return await _within(seconds, self._connection_checks(ip))
        except TimeoutError:
            return ConnectionFacts(None, None, timed_out=True)
        finally:
            metrics.stage_seconds("connect", time.perf_counter() - started)

    async def _connection_checks(self, ip: IPAddress | str) -> ConnectionFacts:
        address = parse_ip(ip) if isinstance(ip, str) else ip
        if not self.network_checks:
            return ConnectionFacts(None, None)
        iprev_task = timed("iprev", check_iprev(self.resolver, address))
        if self.dnsbl is None:
            return ConnectionFacts(await iprev_task, None)
        iprev, dnsbl = await asyncio.gather(
            iprev_task, timed("dnsbl", self.dnsbl.check_ip(address))
        )
        return ConnectionFacts(iprev, dnsbl)

    async def helo_checks(self, ip: IPAddress | str, helo: str) -> HeloFacts:
        """At HELO/EHLO: the HELO name's checks and SPF for the HELO identity
        (`deadlines.helo`; out of time, SPF for HELO is temperror)."""
        seconds = self.settings.deadlines.helo
        started = time.perf_counter()
        try:
            return await _within(seconds, self._helo_checks(ip, helo))
        except TimeoutError:
            address = parse_ip(ip) if isinstance(ip, str) else ip
            spf = timed_out_spf(Identity.HELO, address, helo, "", seconds)
            return HeloFacts(spf, None, timed_out=True)
        finally:
            metrics.stage_seconds("helo", time.perf_counter() - started)

    async def _helo_checks(self, ip: IPAddress | str, helo: str) -> HeloFacts:
        address = parse_ip(ip) if isinstance(ip, str) else ip
        spf_task = timed("spf_helo", self.spf.check_helo(address, helo))
        if not self.network_checks:
            return HeloFacts(await spf_task, None)
        helo_task = timed(
            "helo",
            check_helo(
                self.resolver,
                helo,
                address,
                our_names=self.our_names,
                our_addresses=self.our_addresses,
            ),
        )
        spf_helo, helo_result = await asyncio.gather(spf_task, helo_task)
        return HeloFacts(spf_helo, helo_result)

    async def mail_checks(self, ip: IPAddress | str, helo: str, mail_from: str) -> SPFResult:
        """At MAIL FROM: SPF for the MAIL FROM identity (it may run while RCPTs arrive;
        `deadlines.mail`, then temperror)."""
        address = parse_ip(ip) if isinstance(ip, str) else ip
        seconds = self.settings.deadlines.mail
        started = time.perf_counter()
        try:
            return await _within(seconds, self.spf.check_mailfrom(address, mail_from, helo))
        except TimeoutError:
            return timed_out_spf(Identity.MAILFROM, address, helo, mail_from, seconds)
        finally:
            took = time.perf_counter() - started
            metrics.stage_seconds("mail", took)
            metrics.check_seconds("spf", took)

    async def check(
        self,
        message: ParsedMessage | Message | SpooledMessage | bytes,
        *,
        ip: IPAddress | str,
        helo: str,
        mail_from: str,
        rcpt: Sequence[str] = (),
        authenticated: bool = False,
        trusted_network: bool = False,
        extra_symbols: Sequence[Symbol] = (),
        smtputf8: bool = False,
    ) -> MessageVerdict:
        """Every stage at once, for a message already received (CLI, batch, HTTP).
        `smtputf8`: the message came with SMTPUTF8 (RFC 6531), so its From may hold UTF-8."""
        started = time.perf_counter()
        address = parse_ip(ip) if isinstance(ip, str) else ip  # read once for every stage
        connection = start(self.connection_checks(address))  # each finished now if it can be
        helo_facts = start(self.helo_checks(address, helo))
        spf = start(self.mail_checks(address, helo, mail_from))
        try:
            return await self.message_checks(
                self.parse(message, smtputf8=smtputf8),
                ip=address,
                helo=helo,
                mail_from=mail_from,
                connection=connection,
                helo_facts=helo_facts,
                spf=spf,
                authenticated=authenticated,
                trusted_network=trusted_network,
                extra_symbols=extra_symbols,
                started=started,
            )
        finally:
            for task in (connection, helo_facts, spf):
                task.cancel()

    async def message_checks(
        self,
        message: ParsedMessage | Message | SpooledMessage | bytes,
        *,
        ip: IPAddress | str,
        helo: str,
        mail_from: str,
        connection: Awaitable[ConnectionFacts],
        helo_facts: Awaitable[HeloFacts],
        spf: Awaitable[SPFResult],
        authenticated: bool = False,
        trusted_network: bool = False,
        extra_symbols: Sequence[Symbol] = (),
        started: float | None = None,
    ) -> MessageVerdict:
        """At the end of the data: DKIM, ARC and RHSBL, then DMARC, then the policy; the
        earlier stages' results are awaited here. Never raises for what the message or DNS
        contain. Bytes are read with `parse` as for a message sent without SMTPUTF8."""
        data_started = time.perf_counter()
        started = data_started if started is None else started
        address = parse_ip(ip) if isinstance(ip, str) else ip
        parsed = self.parse(message)
        self._prefetch_dmarc(parsed.authors.domain)
        seconds = self.settings.deadlines.data
        deadline = asyncio.get_running_loop().time() + seconds
        timed_out: list[str] = []

        signatures = len(parsed.message.get_all("dkim-signature")) if parsed.message else 0
        # the stages, in the order their timeouts are named; without DNS lists, no RHSBL
        stages: list[tuple[str, Awaitable[Any], Callable[[], Any]]] = [
            (
                "dkim",
                timed("dkim", self._dkim(parsed)),
                lambda: timed_out_dkim(signatures, seconds),
            ),
            ("arc", timed("arc", self._arc(parsed)), lambda: None),
        ]
        lists = self.dnsbl is not None
        if lists:
            rhsbl_work = self._rhsbl(helo, mail_from, parsed.authors.domain)
            stages.append(("rhsbl", timed("rhsbl", rhsbl_work), dict))
        stages += [
            ("connect", connection, lambda: ConnectionFacts(None, None, timed_out=True)),
            (
                "helo",
                helo_facts,
                lambda: HeloFacts(
                    timed_out_spf(Identity.HELO, address, helo, "", seconds), None, True
                ),
            ),
            (
                "mail",
                spf,
                lambda: timed_out_spf(Identity.MAILFROM, address, helo, mail_from, seconds),
            ),
        ]
        found = await _all_within(deadline, timed_out, *stages)
        rhsbl: dict[str, DNSListReport] = found.pop(2) if lists else {}
        dkim_results, arc_result, connection_facts, helo_result_facts, spf_mailfrom = found
        iprev, dnsbl = connection_facts.iprev, connection_facts.dnsbl
        spf_helo, helo_result = helo_result_facts.spf, helo_result_facts.helo

        author = parsed.authors.domain
        dmarc_result, *dkim_rhsbl = await _all_within(
            deadline,
            timed_out,
            (
                "dmarc",
                timed("dmarc", self.dmarc.evaluate(parsed.authors, spf_mailfrom, dkim_results)),
                lambda: timed_out_dmarc(author, self.dmarc.discovery, seconds),
            ),
            *([("rhsbl", timed("rhsbl", self._dkim_rhsbl(dkim_results)), dict)] if lists else []),
        )
        if connection_facts.timed_out:
            timed_out.append("connect")
        if helo_result_facts.timed_out:
            timed_out.append("helo")
        if dkim_rhsbl:
            rhsbl.update(dkim_rhsbl[0])
        dmarc_result, trusted_pass = self._trusted_forwarder(dmarc_result, arc_result)

        symbols: list[Symbol] = [*extra_symbols]
        symbols += spf_symbols(spf_mailfrom, spf_helo)
        symbols += dkim_symbols(dkim_results)
        symbols += dmarc_symbols(dmarc_result)
        symbols += arc_symbols(arc_result, trusted_pass=trusted_pass)
        symbols += iprev_symbols(iprev)
        symbols += helo_symbols(helo_result)
        symbols += dnsbl_symbols([dnsbl, *rhsbl.values()])
        failed = dmarc_result.result is _DMARC_FAIL
        facts = Facts(
            tuple(symbols),
            authenticated=authenticated,
            trusted_network=trusted_network,
            dmarc_disposition=str(dmarc_result.disposition) if failed else None,
            dmarc_domain=dmarc_result.domain,
            dmarc_passed=dmarc_result.result is _DMARC_PASS,
            header_problem=parsed.header_problem,
            header_status=parsed.header_status,
            author_problem=parsed.authors.problem,
            author_reason=parsed.authors.reason,
        )
        verdict = decide(facts, self.policy)
        results = self._authentication_results(
            spf_mailfrom, spf_helo, dkim_results, dmarc_result, arc_result, iprev, dnsbl, address
        )
        # (str() of a StrEnum is its value, and cheaper than .value on Python 3.11)
        counted = [("spf", str(spf_mailfrom.result)), ("dmarc", str(dmarc_result.result))]
        counted += [("dkim", str(d.result)) for d in dkim_results] or [("dkim", "none")]
        counted.append(("arc", str(arc_result.result) if arc_result is not None else "none"))
        metrics.verdict_seen([s.name for s in symbols], counted)
        finished = time.perf_counter()
        metrics.stage_seconds("data", finished - data_started)
        return MessageVerdict(
            spf=spf_mailfrom,
            spf_helo=spf_helo,
            dkim=tuple(dkim_results),
            dmarc=dmarc_result,
            arc=arc_result,
            iprev=iprev,
            helo=helo_result,
            dnsbl=dnsbl,
            rhsbl=rhsbl,
            policy=verdict,
            authentication_results=results,
            symbols=tuple(symbols),
            elapsed=finished - started,
            timed_out=tuple(dict.fromkeys(timed_out)),
        )

    def parse(
        self, message: ParsedMessage | Message | SpooledMessage | bytes, *, smtputf8: bool = False
    ) -> ParsedMessage:
        """The message read once, as the settings say (`policy.header_syntax`)."""
        strict = self.policy.header_syntax is _STRICT
        return parse(message, strict=strict, smtputf8=smtputf8)

    async def drain(self) -> None:
        """Wait for background work (before closing the event loop): prefetches, and the
        recorder's last writes."""
        await self.spf.drain()
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self.recorder is not None:  # what is queued is written, and the store closed
            await self.recorder.close()
        if self.transactions is not None:
            await self.transactions.close()

    async def health_loop(self, stop: asyncio.Event, *, gauge_interval: float = 60.0) -> None:
        """RFC 5782 §5 test entries at start and then hourly: a failing list is ignored.
        Every `gauge_interval` seconds the greylist's and the DNS lists' gauges are read."""
        work = [self._gauge_loop(stop, gauge_interval)]
        if self.dnsbl is not None:
            work.append(self.dnsbl.health_loop(stop))
        await asyncio.gather(*work)

    async def _gauge_loop(self, stop: asyncio.Event, interval: float) -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):  # a store down now is counted next time
                await self.update_gauges()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def update_gauges(self) -> None:
        """Set the gauges that are read, not counted: greylist entries by state (pending,
        passed, allowed) and each DNS list's health."""
        if self.dnsbl is not None:
            for name, health in self.dnsbl.health.items():
                metrics.dns_list_health(name, health.healthy)
        if self.greylister is not None:
            now = self.clock()
            store = self.greylister.store
            entries = await store.entries(now, limit=_GAUGE_ENTRIES)
            passed = sum(1 for e in entries if e.passed)
            allowed = len(await store.allowed(now))
            metrics.greylist_entries(len(entries) - passed, passed, allowed)

    # -- parts ---------------------------------------------------------------------------
    def _trusted_forwarder(
        self, dmarc: DMARCResult, arc: ARCResult | None
    ) -> tuple[DMARCResult, bool]:
        """RFC 9990 §4.5: a trusted sealer's dmarc=pass turns a local fail into
        trusted_forwarder (disposition none). Also says whether such a sealer vouched."""
        if arc is None or not self.trusted_sealers:
            return dmarc, False
        author = dmarc.domain or None
        vouched = trusted_sealer_dmarc_pass(arc, self.trusted_sealers, author_domain=author)
        override = trusted_forwarder_override(dmarc, arc, self.trusted_sealers)
        if override is not None:
            dmarc = dataclasses.replace(
                dmarc,
                disposition=override.disposition,
                override_reason=override.reason,
                override_comment=override.comment,
            )
        return dmarc, vouched.passed

    def _prefetch_dmarc(self, author: str) -> None:
        """Start the Author Domain's ``_dmarc`` query now: its name depends only on the From
        domain, so it need not wait for SPF and DKIM (RFC 9989 §4.10). The rest of the Tree
        Walk is asked only when the decision needs it: at once when the Author Domain has no
        record (discovery will walk), else by the evaluator when alignment compares different
        domains; the Author Domain's existence (np=) only when DMARC fails."""
        if not author:
            return
        task = start(self._prefetch_walk(author))
        if not task.done():  # the answer was not cached yet
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _prefetch_walk(self, author: str) -> None:
        try:
            answer = await self.resolver.resolve(f"_dmarc.{author}", _TXT)
        except TemporaryFailure:
            return  # the evaluator asks again and reports the temperror
        except DNSError:
            pass  # no record at the Author Domain: discovery walks the tree
        else:
            texts = (txt.joined.decode("utf-8", "replace") for txt in answer.txt())
            if sum(1 for t in texts if is_dmarc_record(t)) == 1:
                return  # one record: the walk waits until alignment asks for it
        for name in tree_walk_names(author)[1:]:
            self._quietly_start(f"_dmarc.{name}", RdType.TXT)

    def _quietly_start(self, name: str, rdtype: RdType) -> None:
        task = asyncio.ensure_future(self._quietly(name, rdtype))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _quietly(self, name: str, rdtype: RdType) -> None:
        with contextlib.suppress(DNSError):
            await self.resolver.resolve(name, rdtype)

    async def _dkim(self, parsed: ParsedMessage) -> list[DKIMResult]:
        if parsed.message is None:
            return [_unreadable(parsed)]
        return await self.dkim.verify(parsed.message, body=parsed.body)

    async def _arc(self, parsed: ParsedMessage) -> ARCResult | None:
        if parsed.message is None:
            return None
        return await self.arc.verify(parsed.message, body=parsed.body)

    async def _rhsbl(self, helo: str, mail_from: str, author: str) -> dict[str, DNSListReport]:
        """Domain lists for the HELO name, the MAIL FROM domain and the From domain."""
        if self.dnsbl is None:
            return {}
        identities = {"helo": helo, "mail_from": split_sender(mail_from, helo)[1]}
        if author:
            identities["from"] = author
        return await self.dnsbl.check_domains(identities)

    async def _dkim_rhsbl(self, results: Sequence[DKIMResult]) -> dict[str, DNSListReport]:
        if self.dnsbl is None:
            return {}
        domains = {f"dkim:{r.domain}": r.domain for r in results if r.domain}
        return await self.dnsbl.check_domains(domains) if domains else {}

    def _authentication_results(
        self,
        spf_mailfrom: SPFResult,
        spf_helo: SPFResult,
        dkim: Sequence[DKIMResult],
        dmarc: DMARCResult,
        arc: ARCResult | None,
        iprev: IprevResult | None,
        dnsbl: DNSListReport | None,
        ip: IPAddress,
    ) -> AuthenticationResults:
        builder = AuthResultsBuilder(self.authserv_id)
        if iprev is not None:
            builder.iprev(
                iprev.result.value,
                ip=iprev.policy_iprev,
                hostname=iprev.name,
                reason=iprev.reason or None if iprev.result.value != "pass" else None,
            )
        builder.spf(spf_mailfrom).spf(spf_helo)
        if not dkim:
            builder.dkim("none")
        for result in dkim:
            builder.dkim_result(result)
        builder.dmarc(dmarc)
        if arc is not None and arc.result.value != "none":
            builder.add(arc.resinfo(remote_ip=str(ip)))
        if dnsbl is not None:
            for listed in dnsbl.allowed:
                code = str(listed.codes[0]) if listed.codes else None
                builder.dnswl("pass", zone=listed.zone, ip=code, txt=listed.reason or None)
        return builder.build()


async def _all_within(
    deadline: float,
    timed_out: list[str],
    *stages: tuple[str, Awaitable[Any], Callable[[], Any]],
) -> list[Any]:
    """Every stage's result, run concurrently until `deadline` (loop time); a stage still
    running then is cancelled, named in `timed_out`, and its fallback stands in. Each stage
    starts at once (`runtime.start`): one that needs no wait (warm caches) finishes without
    a task; one wait for the others (not one timeout per stage): this is the warm path."""
    tasks = [start(work) for _, work, _ in stages]
    waiting = [task for task in tasks if not task.done()]
    pending: set[asyncio.Future[Any]] = set()
    if waiting:
        try:
            delay = max(0.0, deadline - asyncio.get_running_loop().time())
            _, pending = await asyncio.wait(waiting, timeout=delay)
        except BaseException:  # cancelled from outside: so are the stages
            for task in tasks:
                task.cancel()
            raise
    results: list[Any] = []
    for (what, _, fallback), task in zip(stages, tasks, strict=True):
        if task in pending:
            task.cancel()
            timed_out.append(what)
            results.append(fallback())
        else:
            results.append(task.result())
    return results


async def _within(seconds: float, work: Awaitable[T]) -> T:
    """`work`'s result, or TimeoutError (the work cancelled) after `seconds`. Like
    `asyncio.timeout`, but bound to no task: a stage holding it can be started eagerly
    (`runtime.finish_or_start`), and work that needs no wait costs no timer nor future."""
    finished, outcome = finish_or_start(work)
    if finished:
        result: T = outcome
        return result
    task: asyncio.Task[T] = outcome
    try:
        await asyncio.wait((task,), timeout=seconds)
    except BaseException:  # cancelled from outside: so is the work
        task.cancel()
        raise
    if not task.done():
        task.cancel()
        raise TimeoutError
    return task.result()


def timed(check: str, work: Awaitable[T]) -> Awaitable[T]:
    """`work`, its time counted under `check` (also when it ran out of time)."""
    return _Timed(check, work)


class _Timed(Generic[T]):
    """The awaitable of `timed`. A front end may cancel a stage before its checks even
    started (a client that connects and leaves at once): the check's coroutine, never
    awaited then, is closed quietly instead of warning "never awaited"."""

    __slots__ = ("awaited", "check", "work")

    def __init__(self, check: str, work: Awaitable[T]) -> None:
        self.check = check
        self.work = work
        self.awaited = False

    def __await__(self) -> Generator[Any, None, T]:
        self.awaited = True
        started = time.perf_counter()
        try:
            return (yield from self.work.__await__())
        finally:
            metrics.check_seconds(self.check, time.perf_counter() - started)

    def __del__(self) -> None:
        if not self.awaited and inspect.iscoroutine(self.work):
            self.work.close()


def _unreadable(parsed: ParsedMessage) -> DKIMResult:
    return DKIMResult(
        DKIMStatus.PERMERROR,
        f"unreadable message: {parsed.problem}",
        DKIMReason.UNREADABLE_MESSAGE,
    )


def _listen_addresses(settings: Settings) -> tuple[IPAddress, ...]:
    """Our own address when the gateway listens on one (a HELO claiming it is forged)."""
    return _own_address(settings.gateway.listen[0])


@functools.lru_cache(maxsize=64)
def _own_address(host: str) -> tuple[IPAddress, ...]:
    """Read once per host: a name (not an address) costs ipaddress two exceptions, and a
    pipeline is built per one-shot command and per cold check."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return ()
    return () if address.is_unspecified or address.is_loopback else (address,)
