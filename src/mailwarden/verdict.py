"""The full verdict on one message: every check, scheduled concurrently, then the policy.

`Authenticator(resolver, authserv_id=...).check(message, ip=..., helo=..., mail_from=...)` runs
SPF (both identities), DKIM, ARC, iprev, the HELO checks and the DNS lists at once, then DMARC
from the SPF and DKIM results (and RHSBL for the DKIM domains), then the pure policy. It returns
a `MessageVerdict` with every typed result and the Authentication-Results field to add.

This is the one place that schedules checks; front ends (CLI, gateway) only call it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from mailwarden.arc import ARCResult, ARCVerifier, trusted_sealer_dmarc_pass
from mailwarden.authres import AuthResultsBuilder
from mailwarden.dkim import DKIMResult, DKIMStatus, DKIMVerifier
from mailwarden.dmarc import (
    DMARCEvaluator,
    DMARCPolicy,
    DMARCResult,
    DMARCStatus,
    OverrideReason,
    author_domains,
    tree_walk_names,
)
from mailwarden.dns import DNSError, IPAddress, RdType, Resolver, parse_ip
from mailwarden.dns.cache import CachingResolver
from mailwarden.dnsbl import DNSListChecker, DNSListReport
from mailwarden.helo import HeloResult, check_helo
from mailwarden.iprev import IprevResult, check_iprev
from mailwarden.message import Message, MessageError
from mailwarden.policy import (
    Facts,
    PolicyConfig,
    Verdict,
    arc_symbols,
    decide,
    dkim_symbols,
    dmarc_symbols,
    spf_symbols,
)
from mailwarden.spf import SPFChecker, SPFResult, split_sender
from mailwarden.symbols import Symbol

__all__ = [
    "Authenticator",
    "ConnectionFacts",
    "HeloFacts",
    "MessageVerdict",
]


@dataclass(frozen=True, slots=True)
class ConnectionFacts:
    """What is known at connect: iprev and the address DNS lists."""

    iprev: IprevResult | None
    dnsbl: DNSListReport | None


@dataclass(frozen=True, slots=True)
class HeloFacts:
    """What is known at HELO: SPF for the HELO identity and the HELO checks."""

    spf: SPFResult
    helo: HeloResult | None


@dataclass(frozen=True, slots=True)
class MessageVerdict:
    """Everything found about one message, and what the policy decided."""

    spf: SPFResult
    spf_helo: SPFResult
    dkim: tuple[DKIMResult, ...]
    dmarc: DMARCResult
    arc: ARCResult | None
    iprev: IprevResult | None
    helo: HeloResult | None
    dnsbl: DNSListReport | None
    rhsbl: dict[str, DNSListReport]
    policy: Verdict
    authentication_results: str  # the folded field, without its final line ending
    symbols: tuple[Symbol, ...]
    elapsed: float  # seconds from the start of the checks to the verdict


class Authenticator:
    """Runs every check on a message with one shared resolver (and its cache)."""

    def __init__(
        self,
        resolver: Resolver,
        *,
        authserv_id: str,
        clock: Callable[[], float] = time.time,
        spf: SPFChecker | None = None,
        dkim: DKIMVerifier | None = None,
        dmarc: DMARCEvaluator | None = None,
        arc: ARCVerifier | None = None,
        arc_enabled: bool = True,
        trusted_sealers: Iterable[str] = (),
        dnsbl: DNSListChecker | None = None,
        policy: PolicyConfig | None = None,
        network_checks: bool = True,
        our_names: Iterable[str] = (),
        our_addresses: Iterable[IPAddress | str] = (),
    ) -> None:
        # One cache for all checks: identical lookups are asked once, and prefetched answers
        # (whole SPF trees, the DMARC tree walk) are waiting when a check needs them.
        if not isinstance(resolver, CachingResolver):
            resolver = CachingResolver(resolver)
        self.resolver = resolver
        self.authserv_id = authserv_id
        self.clock = clock
        self.spf = spf or SPFChecker(resolver, receiver=authserv_id, clock=clock, prefetch=True)
        self.dkim = dkim or DKIMVerifier(resolver, clock=clock)
        self.dmarc = dmarc or DMARCEvaluator(resolver)
        # ARC (RFC 8617, being made Historic) is checked and reported; only a trusted
        # sealer's dmarc=pass can change anything (a local DMARC fail becomes
        # trusted_forwarder).
        if arc is None and arc_enabled:
            arc = ARCVerifier(resolver, clock=clock, key_source=self.dkim.key)
        self.arc = arc
        self.trusted_sealers = tuple(trusted_sealers)
        self.dnsbl = dnsbl
        self.policy = policy or PolicyConfig()
        self.network_checks = network_checks
        self.our_names = tuple(our_names) or (authserv_id,)
        self.our_addresses = tuple(our_addresses)
        self._background: set[asyncio.Task[None]] = set()

    # -- stages: each starts as soon as its inputs are known (the gateway calls them in turn)
    async def connection_checks(self, ip: IPAddress | str) -> ConnectionFacts:
        """At connect: iprev and the address DNS lists, concurrently."""
        address = parse_ip(ip) if isinstance(ip, str) else ip
        if not self.network_checks:
            return ConnectionFacts(None, None)
        if self.dnsbl is None:
            return ConnectionFacts(await check_iprev(self.resolver, address), None)
        iprev, dnsbl = await asyncio.gather(
            check_iprev(self.resolver, address), self.dnsbl.check_ip(address)
        )
        return ConnectionFacts(iprev, dnsbl)

    async def helo_checks(self, ip: IPAddress | str, helo: str) -> HeloFacts:
        """At HELO/EHLO: the HELO name's checks and SPF for the HELO identity."""
        address = parse_ip(ip) if isinstance(ip, str) else ip
        spf_task = self.spf.check_helo(address, helo)
        if not self.network_checks:
            return HeloFacts(await spf_task, None)
        helo_task = check_helo(
            self.resolver,
            helo,
            address,
            our_names=self.our_names,
            our_addresses=self.our_addresses,
        )
        spf_helo, helo_result = await asyncio.gather(spf_task, helo_task)
        return HeloFacts(spf_helo, helo_result)

    async def mail_checks(self, ip: IPAddress | str, helo: str, mail_from: str) -> SPFResult:
        """At MAIL FROM: SPF for the MAIL FROM identity (it may run while RCPTs arrive)."""
        address = parse_ip(ip) if isinstance(ip, str) else ip
        return await self.spf.check_mailfrom(address, mail_from, helo)

    async def check(
        self,
        message: Message | bytes,
        *,
        ip: IPAddress | str,
        helo: str,
        mail_from: str,
        rcpt: Sequence[str] = (),
        authenticated: bool = False,
        trusted_network: bool = False,
        extra_symbols: Sequence[Symbol] = (),
    ) -> MessageVerdict:
        """Every stage at once, for a message already received (CLI, batch, milter)."""
        started = time.perf_counter()
        connection = asyncio.ensure_future(self.connection_checks(ip))
        helo_facts = asyncio.ensure_future(self.helo_checks(ip, helo))
        spf = asyncio.ensure_future(self.mail_checks(ip, helo, mail_from))
        try:
            return await self.message_checks(
                message,
                ip=ip,
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
        message: Message | bytes,
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
        """At the end of DATA: DKIM, ARC and RHSBL, then DMARC, then the policy; the earlier
        stages' results are awaited here. Never raises for what the message or DNS contain."""
        started = time.perf_counter() if started is None else started
        address = parse_ip(ip) if isinstance(ip, str) else ip
        parsed: Message | None
        problem: str | None = None
        if isinstance(message, Message):
            parsed = message
        else:
            try:
                parsed = Message.from_bytes(message)
            except MessageError as exc:
                parsed, problem = None, str(exc)

        from_values = [f.text() for f in parsed.get_all("from")] if parsed is not None else []
        self._prefetch_dmarc(from_values)
        (
            dkim_results,
            arc_result,
            rhsbl,
            connection_facts,
            helo_result_facts,
            spf_mailfrom,
        ) = await asyncio.gather(
            self._dkim(parsed, problem),
            self._arc(parsed),
            self._rhsbl(helo, mail_from, from_values),
            connection,
            helo_facts,
            spf,
        )
        iprev, dnsbl = connection_facts.iprev, connection_facts.dnsbl
        spf_helo, helo_result = helo_result_facts.spf, helo_result_facts.helo

        dmarc_result, dkim_rhsbl = await asyncio.gather(
            self.dmarc.evaluate(from_values, spf_mailfrom, dkim_results),
            self._dkim_rhsbl(dkim_results),
        )
        rhsbl.update(dkim_rhsbl)
        trusted_pass = False
        if arc_result is not None and self.trusted_sealers:
            trusted = trusted_sealer_dmarc_pass(
                arc_result, self.trusted_sealers, author_domain=dmarc_result.domain or None
            )
            trusted_pass, sealer = trusted.passed, trusted.sealer
            if trusted_pass and dmarc_result.result is DMARCStatus.FAIL:
                dmarc_result = dataclasses.replace(  # RFC 9990 §4.5: trusted_forwarder
                    dmarc_result,
                    disposition=DMARCPolicy.NONE,
                    override_reason=OverrideReason.TRUSTED_FORWARDER,
                    override_comment=f"ARC chain sealed by trusted {sealer} shows dmarc=pass",
                )

        symbols: list[Symbol] = [*extra_symbols]
        symbols += spf_symbols(spf_mailfrom, spf_helo)
        symbols += dkim_symbols(dkim_results)
        symbols += dmarc_symbols(dmarc_result)
        symbols += arc_symbols(arc_result, trusted_pass=trusted_pass)
        if iprev is not None:
            symbols.append(iprev.symbol)
        if helo_result is not None:
            symbols += helo_result.symbols
        if dnsbl is not None:
            symbols += dnsbl.symbols
        for report in rhsbl.values():
            symbols += report.symbols
        facts = Facts(
            tuple(symbols),
            authenticated=authenticated,
            trusted_network=trusted_network,
            dmarc_disposition=(
                dmarc_result.disposition.value if dmarc_result.result is DMARCStatus.FAIL else None
            ),
            dmarc_domain=dmarc_result.domain,
        )
        verdict = decide(facts, self.policy)
        header = self._authentication_results(
            spf_mailfrom, spf_helo, dkim_results, dmarc_result, arc_result, iprev, dnsbl, address
        )
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
            authentication_results=header,
            symbols=tuple(symbols),
            elapsed=time.perf_counter() - started,
        )

    async def drain(self) -> None:
        """Wait for background prefetches (before closing the event loop)."""
        await self.spf.drain()
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _prefetch_dmarc(self, from_values: Sequence[str]) -> None:
        """Start the DMARC Tree Walk's queries now: its names depend only on the From domain,
        so they need not wait for SPF and DKIM (RFC 9989 §4.10)."""
        author = _author_domain(from_values)
        if not author:
            return
        queries = [(f"_dmarc.{name}", RdType.TXT) for name in tree_walk_names(author)]
        queries.append((author, RdType.A))  # whether the Author Domain exists (np=)
        for name, rdtype in queries:
            task = asyncio.ensure_future(self._quietly(name, rdtype))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _quietly(self, name: str, rdtype: RdType) -> None:
        with contextlib.suppress(DNSError):
            await self.resolver.resolve(name, rdtype)

    async def _dkim(self, message: Message | None, problem: str | None) -> list[DKIMResult]:
        if message is None:
            return [DKIMResult(DKIMStatus.PERMERROR, f"unreadable message: {problem}")]
        return await self.dkim.verify(message)

    async def _arc(self, message: Message | None) -> ARCResult | None:
        if self.arc is None or message is None:
            return None
        return await self.arc.verify(message)

    async def _rhsbl(
        self, helo: str, mail_from: str, from_values: Sequence[str]
    ) -> dict[str, DNSListReport]:
        """Domain lists for the HELO name, the MAIL FROM domain and the From domain."""
        if self.dnsbl is None or not self.network_checks:
            return {}
        identities = {"helo": helo, "mail_from": split_sender(mail_from, helo)[1]}
        author = _author_domain(from_values)
        if author:
            identities["from"] = author
        return await self.dnsbl.check_domains(identities)

    async def _dkim_rhsbl(self, results: Sequence[DKIMResult]) -> dict[str, DNSListReport]:
        if self.dnsbl is None or not self.network_checks:
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
    ) -> str:
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
        return builder.format_field(linesep="\r\n")


def _author_domain(from_values: Sequence[str]) -> str:
    """The domain of a single From address, for RHSBL; "" when there is no single one."""
    if len(from_values) != 1:
        return ""
    try:
        domains, _ = author_domains(from_values)
    except ValueError:
        return ""
    return domains[0] if len(domains) == 1 else ""
