"""SPF evaluation: check_host() of RFC 7208 §4, for the MAIL FROM and HELO identities (§2.3)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple
from urllib.parse import quote

from mailwarden.dns import (
    CountingResolver,
    DNSError,
    IPAddress,
    NoData,
    NXDomain,
    RdType,
    Resolver,
    TemporaryFailure,
    normalize,
    parse_ip,
    reverse_pointer,
    to_ascii,
)

from .compiled import (
    Abort,
    CompiledPolicy,
    Compiler,
    Match,
    NotCompilable,
    Run,
    literal_domain,
    run_policy,
    run_summarized,
)
from .record import (
    Macro,
    MacroString,
    Mechanism,
    MechanismKind,
    Qualifier,
    Record,
    SPFSyntaxError,
    is_spf_record,
    parse_explanation,
    parse_record,
)


class SPFStatus(StrEnum):
    """RFC 7208 §2.6 results."""

    NONE = "none"
    NEUTRAL = "neutral"
    PASS = "pass"
    FAIL = "fail"
    SOFTFAIL = "softfail"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


_RESULTS = {result.value: result for result in SPFStatus}


class Identity(StrEnum):
    """RFC 7208 §2.3/§2.4: the identity a check authorizes."""

    MAILFROM = "mailfrom"
    HELO = "helo"


_QUALIFIER_RESULT = {
    Qualifier.PASS: SPFStatus.PASS,
    Qualifier.FAIL: SPFStatus.FAIL,
    Qualifier.SOFTFAIL: SPFStatus.SOFTFAIL,
    Qualifier.NEUTRAL: SPFStatus.NEUTRAL,
}


@dataclass(frozen=True, slots=True)
class SPFLimits:
    """RFC 7208 §4.6.4 processing limits."""

    dns_mechanisms: int = 10  # include, a, mx, ptr, exists, redirect
    void_lookups: int = 2  # NXDOMAIN or empty answers
    mx_names: int = 10  # MX records per mx mechanism (more is a permerror)
    ptr_names: int = 10  # PTR names checked per ptr mechanism or %{p} (the rest ignored)


class SPFResult(NamedTuple):
    """The outcome of one check, with enough detail to explain it (immutable; a NamedTuple
    because a warm evaluation takes microseconds and a frozen dataclass costs several)."""

    result: SPFStatus
    identity: Identity
    domain: str  # the domain whose policy was checked (empty when none could be)
    sender: str  # the <sender> of check_host: local-part@domain
    ip: IPAddress
    helo: str
    reason: str  # plain words: what matched, or what went wrong
    mechanism: str | None = None  # the matching term as written, if any
    explanation: str | None = None  # the expanded exp= text (fail only)
    dns_queries: int = 0
    dns_mechanisms: int = 0
    void_lookups: int = 0


@dataclass(slots=True)
class _Outcome:
    result: SPFStatus
    reason: str
    mechanism: str | None = None
    explanation: str | None = None


@functools.lru_cache(maxsize=65536)
def valid_domain(domain: str) -> bool:
    """RFC 7208 §4.3: a multi-label name whose labels are 1..63 octets, 253 in all."""
    if domain.endswith("."):
        domain = domain[:-1]
    if not domain or len(domain) > 253:
        return False
    labels = domain.split(".")
    return len(labels) >= 2 and all(0 < len(label) <= 63 for label in labels)


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
            try:
                cached = parse_record(raw.decode("ascii"))
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
        evaluation = _Evaluation(self, address, local, sender_domain, helo)
        if self.prefetch and valid_domain(domain):
            task = asyncio.ensure_future(self._prefetch(domain, address.version, 0))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        try:
            outcome = await evaluation.check_host(domain, top=True)
        except Abort as abort:
            outcome = _Outcome(SPFStatus(abort.result), abort.reason)
        return SPFResult(
            result=outcome.result,
            identity=identity,
            domain=normalize(domain),
            sender=f"{evaluation.local}@{evaluation.sender_domain}",
            ip=address,
            helo=helo,
            reason=outcome.reason,
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

    async def _prefetch(self, domain: str, version: int, depth: int) -> None:
        """Ask for every record a policy tree needs, concurrently; answers land in the cache."""
        try:
            answer = await self.resolver.resolve(domain, RdType.TXT)
            texts = [t.joined for t in answer.txt() if is_spf_record(t.joined)]
            record = self.parse_cached(texts[0]) if len(texts) == 1 else None
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
                work.append(self._prefetch(target, version, depth + 1))
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
                evaluation = _Evaluation(self, address, local, sender_domain, helo)
                match = await run_policy(policy, state, evaluation.dynamic_match)
        except Abort as abort:
            match = Match(abort.result, abort.reason)
        explanation = None
        record = match.policy.record if match.policy is not None else None
        if match.result == "fail" and record is not None and record.exp is not None:
            assert match.policy is not None
            evaluation = evaluation or _Evaluation(self, address, local, sender_domain, helo)
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


class _Evaluation:
    """State of one check_host() run: counters and the values macros expand to."""

    def __init__(
        self, checker: SPFChecker, ip: IPAddress, local: str, sender_domain: str, helo: str
    ) -> None:
        self.checker = checker
        self.limits = checker.limits
        self.resolver = CountingResolver(checker.resolver)
        self.ip = ip
        self.local = local
        self.sender_domain = sender_domain
        self.helo = helo
        self.dns_mechanisms = 0
        self.void_lookups = 0
        self._validated: list[str] | None = None
        self.address_type = RdType.A if ip.version == 4 else RdType.AAAA

    @functools.cached_property
    def ip_text(self) -> str:
        return str(self.ip)

    async def dynamic_match(self, mechanism: Mechanism, domain: str, state: Run) -> bool:
        """One client-dependent term of a compiled policy, with the run's counters."""
        self.dns_mechanisms = state.dns_terms
        self.void_lookups = state.void_lookups
        try:
            return await self.matches(mechanism, domain)
        finally:
            state.dns_terms = self.dns_mechanisms
            state.void_lookups = self.void_lookups

    # -- record selection (RFC 7208 §4.4, §4.5) --------------------------------------------
    async def check_host(self, domain: str, *, top: bool) -> _Outcome:
        if not valid_domain(domain):  # RFC 7208 §4.3
            return _Outcome(SPFStatus.NONE, f"{domain!r} is not a valid domain name")
        record = await self.fetch_record(domain)
        if record is None:
            return _Outcome(SPFStatus.NONE, f"no SPF record at {domain}")
        for mechanism in record.mechanisms:  # RFC 7208 §4.6.2: first match wins
            if await self.matches(mechanism, domain):
                result = _QUALIFIER_RESULT[mechanism.qualifier]
                outcome = _Outcome(result, f"matched {mechanism.text}", mechanism.text)
                if result is SPFStatus.FAIL and top and record.exp is not None:
                    outcome.explanation = await self.explanation(record.exp, domain)
                return outcome
        if record.redirect is not None and not record.has_all:  # RFC 7208 §6.1
            self.count_dns_mechanism("redirect")
            target = await self.expand_domain(record.redirect, domain)
            outcome = await self.check_host(target, top=top)
            if outcome.result is SPFStatus.NONE:
                raise Abort(SPFStatus.PERMERROR, f"redirect target {target} has no SPF record")
            return outcome
        return _Outcome(SPFStatus.NEUTRAL, f"no mechanism matched in the policy of {domain}")

    async def fetch_record(self, domain: str) -> Record | None:
        try:
            answer = await self.resolver.resolve(domain, RdType.TXT)
        except TemporaryFailure as exc:
            raise Abort(
                SPFStatus.TEMPERROR,
                f"DNS failure fetching the SPF record of {domain}: {exc.detail or exc.kind}",
            ) from None
        except (NXDomain, NoData):
            return None
        candidates = [txt.joined for txt in answer.txt() if is_spf_record(txt.joined)]
        if not candidates:
            return None
        if len(candidates) > 1:  # RFC 7208 §4.5
            raise Abort(SPFStatus.PERMERROR, f"{domain} publishes {len(candidates)} SPF records")
        try:
            return self.checker.parse_cached(candidates[0])
        except SPFSyntaxError as exc:
            raise Abort(
                SPFStatus.PERMERROR, f"syntax error in the SPF record of {domain}: {exc}"
            ) from None

    # -- limits (RFC 7208 §4.6.4) ----------------------------------------------------------
    def count_dns_mechanism(self, term: str) -> None:
        self.dns_mechanisms += 1
        if self.dns_mechanisms > self.limits.dns_mechanisms:
            raise Abort(
                SPFStatus.PERMERROR,
                f"more than {self.limits.dns_mechanisms} DNS-querying terms (at {term})",
            )

    def count_void(self, name: str) -> None:
        self.void_lookups += 1
        if self.void_lookups > self.limits.void_lookups:
            raise Abort(
                SPFStatus.PERMERROR,
                f"more than {self.limits.void_lookups} void DNS lookups (at {name})",
            )

    async def lookup(self, name: str, rdtype: RdType, *, void: bool) -> list[IPAddress] | list[str]:
        """Addresses (A/AAAA) or names (MX/PTR exchange or target) of `name`; a DNS error aborts.

        RFC 7208 §5: a timeout or SERVFAIL is a temperror; NXDOMAIN counts as no records.
        """
        if not valid_domain(name):  # a name no DNS query can carry does not exist
            return []
        try:
            answer = await self.resolver.resolve(name, rdtype)
        except TemporaryFailure as exc:
            raise Abort(
                SPFStatus.TEMPERROR,
                f"DNS failure looking up {name}/{rdtype}: {exc.detail or exc.kind}",
            ) from None
        except (NXDomain, NoData):
            if void:
                self.count_void(name)
            return []
        if rdtype is RdType.MX:
            return [mx.exchange for mx in answer.mx()]
        if rdtype is RdType.PTR:
            return answer.names()
        return answer.addresses()

    # -- mechanisms (RFC 7208 §5) ----------------------------------------------------------
    async def matches(self, mechanism: Mechanism, domain: str) -> bool:
        kind = mechanism.kind
        if kind is MechanismKind.ALL:
            return True
        if mechanism.network is not None:  # ip4 / ip6 (RFC 7208 §5.6)
            return self.ip in mechanism.network
        self.count_dns_mechanism(mechanism.text)
        target = (
            await self.expand_domain(mechanism.domain, domain)
            if mechanism.domain is not None
            else domain
        )
        if kind is MechanismKind.INCLUDE:
            return await self.include(target)
        if kind is MechanismKind.A:
            found = await self.lookup(target, self.address_type, void=True)
            return self.in_cidr(found, mechanism)
        if kind is MechanismKind.MX:
            return await self.mx(target, mechanism)
        if kind is MechanismKind.PTR:
            return any(
                name == target or name.endswith("." + target)
                for name in await self.validated_names(count_void=True)
            )
        # exists: an A query whatever the client's address family (RFC 7208 §5.7)
        return bool(await self.lookup(target, RdType.A, void=True))

    def in_cidr(self, addresses: list[IPAddress] | list[str], mechanism: Mechanism) -> bool:
        bits = mechanism.cidr4 if self.ip.version == 4 else mechanism.cidr6
        if bits == self.ip.max_prefixlen:
            return self.ip in addresses
        network = ipaddress.ip_network((self.ip, bits), strict=False)
        return any(not isinstance(a, str) and a in network for a in addresses)

    async def include(self, target: str) -> bool:
        """RFC 7208 §5.2: pass matches; fail/softfail/neutral do not; none is a permerror."""
        outcome = await self.check_host(target, top=False)
        if outcome.result is SPFStatus.PASS:
            return True
        if outcome.result is SPFStatus.NONE:
            raise Abort(SPFStatus.PERMERROR, f"included domain {target} has no SPF record")
        return False

    async def mx(self, target: str, mechanism: Mechanism) -> bool:
        """RFC 7208 §5.4: the addresses of every MX host, at most 10 MX records."""
        exchanges = await self.lookup(target, RdType.MX, void=True)
        if len(exchanges) > self.limits.mx_names:  # RFC 7208 §4.6.4
            raise Abort(
                SPFStatus.PERMERROR, f"{target} has more than {self.limits.mx_names} MX records"
            )
        names = [str(name) for name in exchanges if name]
        results = await asyncio.gather(
            *(self.lookup(name, self.address_type, void=False) for name in names),
            return_exceptions=True,
        )
        failure: Abort | None = None
        for found in results:
            if isinstance(found, Abort):
                failure = failure or found
            elif isinstance(found, BaseException):
                raise found
            elif self.in_cidr(found, mechanism):
                return True
        if failure is not None:
            raise failure
        return False

    async def validated_names(self, *, count_void: bool = False) -> list[str]:
        """RFC 7208 §5.5: PTR names of the client that resolve back to its address."""
        if self._validated is not None:
            return self._validated
        try:
            answer = await self.resolver.resolve(reverse_pointer(self.ip), RdType.PTR)
            names = answer.names()[: self.limits.ptr_names]  # the rest is ignored (§4.6.4)
        except (NXDomain, NoData):
            if count_void:
                self.count_void(reverse_pointer(self.ip))
            names = []
        except TemporaryFailure:
            names = []  # RFC 7208 §5.5: a DNS error means no match
        results = await asyncio.gather(
            *(self._resolves_back(name) for name in names), return_exceptions=True
        )
        self._validated = [n.lower() for n, ok in zip(names, results, strict=True) if ok is True]
        return self._validated

    async def _resolves_back(self, name: str) -> bool:
        if not valid_domain(name):
            return False
        try:
            answer = await self.resolver.resolve(name, self.address_type)
        except DNSError:  # RFC 7208 §5.5: a DNS error skips that name
            return False
        return self.ip in answer.addresses()

    # -- macros (RFC 7208 §7) --------------------------------------------------------------
    async def expand_domain(self, spec: MacroString, domain: str) -> str:
        """Expand a domain-spec; over-long results lose labels on the left (RFC 7208 §7.3)."""
        text = await self.expand(spec, domain)
        if text.endswith("."):
            text = text[:-1]
        while len(text) > 253 and "." in text:
            text = text.split(".", 1)[1]
        return text.lower()

    async def expand(self, spec: MacroString, domain: str, *, explanation: bool = False) -> str:
        if spec.is_literal:
            return "".join(spec.parts)  # type: ignore[arg-type]
        out: list[str] = []
        for part in spec.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                # only %{p} needs DNS: the other letters expand without awaiting
                value = await self.p_macro(domain) if part.letter == "p" else None
                out.append(self.expand_macro(part, domain, value))
        return "".join(out)

    def expand_macro(self, macro: Macro, domain: str, value: str | None = None) -> str:
        """One macro (RFC 7208 §7.3); `value` is the letter's value when already known."""
        if value is None:
            value = self.macro_value(macro.letter, domain)
        if macro.delimiters or macro.reverse or macro.digits is not None:
            if macro.delimiters in ("", "."):
                parts = value.split(".")
            else:
                parts = re.split("[" + re.escape(macro.delimiters) + "]", value)
            if macro.reverse:
                parts.reverse()
            if macro.digits is not None:
                parts = parts[-macro.digits :]
            value = ".".join(parts)
        if macro.url_escape:  # RFC 7208 §7.3: upper-case letters are URL-escaped
            value = quote(value, safe="-._~")
        return value

    def macro_value(self, letter: str, domain: str) -> str:
        """The value of a macro letter other than "p" (RFC 7208 §7.2)."""
        if letter == "s":
            return f"{self.local}@{self.sender_domain}"
        if letter == "l":
            return self.local
        if letter == "o":
            return self.sender_domain
        if letter == "d":
            return domain
        if letter == "i":
            if self.ip.version == 4:
                return self.ip_text
            return ".".join(self.ip.exploded.replace(":", ""))  # RFC 7208 §7.3: nibbles
        if letter == "v":
            return "in-addr" if self.ip.version == 4 else "ip6"
        if letter == "h":
            return self.helo
        if letter == "c":
            return self.ip_text
        if letter == "r":
            return self.checker.receiver
        return str(int(self.checker.clock()))  # "t"

    async def p_macro(self, domain: str) -> str:
        """RFC 7208 §7.3: a validated name, the domain or a subdomain of it preferred."""
        names = await self.validated_names()
        for name in names:
            if name == domain or name.endswith("." + domain):
                return name
        return names[0] if names else "unknown"

    async def explanation(self, spec: MacroString, domain: str) -> str | None:
        """RFC 7208 §6.2: any problem fetching or expanding exp= means no explanation."""
        try:
            name = await self.expand_domain(spec, domain)
            if not valid_domain(name):
                return None
            answer = await self.resolver.resolve(name, RdType.TXT)
            records = answer.txt()
            if len(records) != 1:
                return None
            text = records[0].joined.decode("ascii")
            return await self.expand(parse_explanation(text), domain, explanation=True)
        except (DNSError, Abort, UnicodeDecodeError, SPFSyntaxError):
            return None
