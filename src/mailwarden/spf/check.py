"""SPF evaluation: check_host() of RFC 7208 §4, for the MAIL FROM and HELO identities (§2.3).

`SPFChecker` is the front: it caches parsed records, compiles the policies of domains it sees
often (compiled.py) and interprets the others (interpreter.py), prefetching their trees when
asked (prefetch.py).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import time
from collections.abc import Callable

from mailwarden.dns import IPAddress, Resolver, normalize, parse_ip, to_ascii

from .compiled import (
    Abort,
    CompiledPolicy,
    Compiler,
    Match,
    NotCompilable,
    Run,
    run_policy,
    run_summarized,
)
from .interpreter import Evaluation, Outcome, SPFLimits, valid_domain
from .prefetch import Prefetcher
from .record import Record, SPFSyntaxError, parse_record
from .result import Identity, SPFResult, SPFStatus

__all__ = ["SPFChecker", "split_sender"]

_RESULTS = {result.value: result for result in SPFStatus}


def split_sender(mail_from: str, helo: str) -> tuple[str, str]:
    """(local-part, domain) of a reverse-path; null paths use postmaster@<HELO> (§2.4, §4.3)."""
    address = mail_from.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    if not address:
        return "postmaster", helo
    local, at, domain = address.rpartition("@")
    if not at:
        return "postmaster", address
    return local or "postmaster", domain


_SHARED_RECORD_BYTES = 2048  # longer records are parsed by each checker (no memory held)


@functools.lru_cache(maxsize=4096)
def _parse_shared(raw: bytes) -> Record | None:
    """A valid record's text parsed once for the whole process (a `Record` is immutable; a
    fresh checker, such as a cold pipeline's, need not parse it again). None: not valid, the
    checker parses it and keeps the error itself."""
    try:
        return parse_record(raw.decode("ascii"))
    except (UnicodeDecodeError, SPFSyntaxError):
        return None


class SPFChecker:
    """Evaluates SPF policies through a resolver; holds a cache of parsed records.

    `receiver` is our host name, used for %{r} and in headers; `clock` gives %{t}.
    """

    def __init__(
        self,
        resolver: Resolver,
        *,
        receiver: str = "unknown",
        limits: SPFLimits | None = None,
        clock: Callable[[], float] = time.time,
        record_cache_size: int = 4096,
        compile_after: int | None = 2,
        max_policy_ttl: int = 3600,
        prefetch: bool = False,
    ) -> None:
        self.resolver = resolver
        self.receiver = receiver
        self.limits = limits or SPFLimits()
        self.clock = clock
        self._records: dict[bytes, Record | SPFSyntaxError] = {}
        self._record_cache_size = record_cache_size
        # A domain seen `compile_after` times gets its policy compiled (see compiled.py);
        # None interprets every check.
        self.compile_after = compile_after
        self.max_policy_ttl = max_policy_ttl
        self._compiled: dict[tuple[str, int], tuple[float, CompiledPolicy | None]] = {}
        self._sightings: dict[tuple[str, int], int] = {}
        # With a caching resolver, fetch a policy's whole tree at once while the interpreter
        # walks it in order: the wait is the tree's depth, not its number of lookups.
        self.prefetch = prefetch
        self._background: set[asyncio.Task[None]] = set()
        self._prefetcher = Prefetcher(resolver, self.parse_cached, self.limits)

    def _evaluation(
        self, address: IPAddress, local: str, sender_domain: str, helo: str
    ) -> Evaluation:
        """The interpreter's state for one check."""
        return Evaluation(
            self.resolver,
            self.limits,
            self.parse_cached,
            address,
            local,
            sender_domain,
            helo,
            receiver=self.receiver,
            clock=self.clock,
        )

    async def check_mailfrom(self, ip: IPAddress | str, mail_from: str, helo: str) -> SPFResult:
        """The MAIL FROM identity; a null reverse-path checks postmaster@<HELO> (RFC 7208 §2.4)."""
        local, domain = split_sender(mail_from, helo)
        return await self.check_host(ip, domain, f"{local}@{domain}", helo=helo)

    async def check_helo(self, ip: IPAddress | str, helo: str) -> SPFResult:
        """The HELO identity (RFC 7208 §2.3); an address literal or bare name gives none."""
        return await self.check_host(
            ip, helo, f"postmaster@{helo}", helo=helo, identity=Identity.HELO
        )

    def parse_cached(self, raw: bytes) -> Record:
        """Parse a record's bytes, remembering the outcome (SPFSyntaxError re-raised)."""
        cached = self._records.get(raw)
        if cached is None:
            # a valid record is parsed once for every checker of the process
            cached = _parse_shared(raw) if len(raw) <= _SHARED_RECORD_BYTES else None
            try:
                cached = cached or parse_record(raw.decode("ascii"))
            except UnicodeDecodeError:
                cached = SPFSyntaxError("record contains non-ASCII characters")
            except SPFSyntaxError as exc:
                cached = exc
            if len(self._records) >= self._record_cache_size:
                del self._records[next(iter(self._records))]
            self._records[raw] = cached
        if isinstance(cached, SPFSyntaxError):
            raise cached
        return cached

    async def check_host(
        self,
        ip: IPAddress | str,
        domain: str,
        sender: str,
        *,
        helo: str = "",
        identity: Identity = Identity.MAILFROM,
    ) -> SPFResult:
        """RFC 7208 §4: the result of `domain`'s policy for mail from `ip` sent by `sender`."""
        address = parse_ip(ip) if isinstance(ip, str) else ip
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        domain = _to_ascii(domain)
        local, _, sender_domain = sender.rpartition("@")
        local = local or "postmaster"
        sender_domain = _to_ascii(sender_domain) or domain
        policy = None
        if self.compile_after is not None and domain == normalize(domain):
            policy = await self._compiled_policy(domain, address.version)
        if policy is not None:
            return await self._run_compiled(
                policy, address, local, sender_domain, helo, domain, identity
            )
        evaluation = self._evaluation(address, local, sender_domain, helo)
        if self.prefetch and valid_domain(domain):
            task = asyncio.ensure_future(
                self._prefetcher.tree(domain, address.version, address=address)
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        try:
            outcome = await evaluation.check_host(domain, top=True)
        except Abort as abort:
            outcome = Outcome(SPFStatus(abort.result), abort.reason, abort.code)
        return SPFResult(
            result=outcome.result,
            identity=identity,
            domain=normalize(domain),
            sender=f"{evaluation.local}@{evaluation.sender_domain}",
            ip=address,
            helo=helo,
            reason=outcome.reason,
            reason_code=outcome.code,
            mechanism=outcome.mechanism,
            explanation=outcome.explanation,
            dns_queries=evaluation.resolver.queries,
            dns_mechanisms=evaluation.dns_mechanisms,
            void_lookups=evaluation.void_lookups,
        )

    async def drain(self) -> None:
        """Wait for background prefetches (before closing the event loop)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def _compiled_policy(self, domain: str, version: int) -> CompiledPolicy | None:
        """The compiled policy of a domain seen often enough, or None to interpret."""
        key = (domain, version)
        now = self.clock()
        entry = self._compiled.get(key)
        if entry is not None:
            if entry[0] > now:
                return entry[1]
            del self._compiled[key]
        seen = self._sightings.get(key, 0) + 1
        assert self.compile_after is not None
        if seen < self.compile_after:
            if len(self._sightings) >= self._record_cache_size:
                self._sightings.clear()
            self._sightings[key] = seen
            return None
        self._sightings.pop(key, None)
        compiler = Compiler(
            self.resolver,
            version,
            parse=self.parse_cached,
            valid_domain=valid_domain,
            mx_limit=self.limits.mx_names,
            max_depth=self.limits.dns_mechanisms,
        )
        policy: CompiledPolicy | None
        try:
            policy = await compiler.compile(domain)
            ttl = policy.ttl
        except NotCompilable as exc:
            if exc.retry_soon:  # a DNS failure: interpret now, try again next time
                return None
            policy, ttl = None, self.max_policy_ttl  # depends on the client: interpret
        if len(self._compiled) >= self._record_cache_size:
            del self._compiled[next(iter(self._compiled))]
        self._compiled[key] = (now + min(ttl, self.max_policy_ttl), policy)
        return policy

    async def _run_compiled(
        self,
        policy: CompiledPolicy,
        address: IPAddress,
        local: str,
        sender_domain: str,
        helo: str,
        domain: str,
        identity: Identity,
    ) -> SPFResult:
        """A compiled policy's result: a static tree by one bisection in its summary (no DNS,
        no awaiting); the interpreter's state is made only for dynamic terms and exp=."""
        state = Run(address, self.limits.dns_mechanisms, self.limits.void_lookups, int(address))
        evaluation = None
        try:
            if policy.static:
                match = run_summarized(policy, state)
            else:
                evaluation = self._evaluation(address, local, sender_domain, helo)
                match = await run_policy(policy, state, evaluation.dynamic_match)
        except Abort as abort:
            match = Match(abort.result, abort.reason, abort.code)
        explanation = None
        record = match.policy.record if match.policy is not None else None
        if match.result == "fail" and record is not None and record.exp is not None:
            assert match.policy is not None
            evaluation = evaluation or self._evaluation(address, local, sender_domain, helo)
            explanation = await evaluation.explanation(record.exp, match.policy.domain)
        queries = state.queries + (evaluation.resolver.queries if evaluation is not None else 0)
        return SPFResult(
            _RESULTS[match.result],
            identity,
            domain,
            f"{local}@{sender_domain}",
            address,
            helo,
            match.reason,
            match.code,
            match.mechanism,
            explanation,
            queries,
            state.dns_terms,
            state.void_lookups,
        )


def _to_ascii(domain: str) -> str:
    """A-labels for a domain given with U-labels; unconvertible names stay as they are."""
    try:
        return to_ascii(domain)
    except ValueError:
        return domain
