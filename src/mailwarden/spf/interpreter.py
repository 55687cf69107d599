"""The SPF interpreter: check_host() of RFC 7208 §4 walking a policy term by term, with the
processing limits of §4.6.4, the mechanisms of §5 and exp= of §6.2. `SPFChecker` (check.py)
is the front that chooses between it and a compiled policy."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from mailwarden.dns import (
    CountingResolver,
    DNSError,
    IPAddress,
    NoData,
    NXDomain,
    RdType,
    Resolver,
    TemporaryFailure,
    reverse_pointer,
)
from mailwarden.frozen import quick_init

from .compiled import Abort, Run
from .macros import Macros
from .record import (
    MacroString,
    Mechanism,
    MechanismKind,
    Qualifier,
    Record,
    SPFSyntaxError,
    is_spf_record,
    parse_explanation,
)
from .result import SPFReason, SPFStatus

__all__ = ["Evaluation", "Outcome", "SPFLimits", "valid_domain"]

QUALIFIER_RESULT = {
    Qualifier.PASS: SPFStatus.PASS,
    Qualifier.FAIL: SPFStatus.FAIL,
    Qualifier.SOFTFAIL: SPFStatus.SOFTFAIL,
    Qualifier.NEUTRAL: SPFStatus.NEUTRAL,
}


@quick_init
@dataclass(frozen=True, slots=True)
class SPFLimits:
    """RFC 7208 §4.6.4 processing limits."""

    dns_mechanisms: int = 10  # include, a, mx, ptr, exists, redirect
    void_lookups: int = 2  # NXDOMAIN or empty answers
    mx_names: int = 10  # MX records per mx mechanism (more is a permerror)
    ptr_names: int = 10  # PTR names checked per ptr mechanism or %{p} (the rest ignored)


@dataclass(slots=True)
class Outcome:
    """What a policy (or an included one) gave, and what decided it."""

    result: SPFStatus
    reason: str
    code: SPFReason
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


class Evaluation:
    """State of one check_host() run: counters, and the values macros expand to."""

    def __init__(
        self,
        resolver: Resolver,
        limits: SPFLimits,
        parse: Callable[[bytes], Record],
        ip: IPAddress,
        local: str,
        sender_domain: str,
        helo: str,
        *,
        receiver: str,
        clock: Callable[[], float],
    ) -> None:
        self.limits = limits
        self.parse = parse
        self.resolver = CountingResolver(resolver)
        self.ip = ip
        self.local = local
        self.sender_domain = sender_domain
        self.helo = helo
        self.dns_mechanisms = 0
        self.void_lookups = 0
        self._validated: list[str] | None = None
        self.address_type = RdType.A if ip.version == 4 else RdType.AAAA
        self.macros = Macros(
            ip,
            local,
            sender_domain,
            helo,
            receiver=receiver,
            clock=clock,
            validated_names=self.validated_names,
        )

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
    async def check_host(self, domain: str, *, top: bool) -> Outcome:
        if not valid_domain(domain):  # RFC 7208 §4.3
            return Outcome(
                SPFStatus.NONE, f"{domain!r} is not a valid domain name", SPFReason.INVALID_DOMAIN
            )
        record = await self.fetch_record(domain)
        if record is None:
            return Outcome(SPFStatus.NONE, f"no SPF record at {domain}", SPFReason.NO_RECORD)
        for mechanism in record.mechanisms:  # RFC 7208 §4.6.2: first match wins
            if await self.matches(mechanism, domain):
                result = QUALIFIER_RESULT[mechanism.qualifier]
                outcome = Outcome(
                    result, f"matched {mechanism.text}", SPFReason.MATCHED, mechanism.text
                )
                if result is SPFStatus.FAIL and top and record.exp is not None:
                    outcome.explanation = await self.explanation(record.exp, domain)
                return outcome
        if record.redirect is not None and not record.has_all:  # RFC 7208 §6.1
            self.count_dns_mechanism("redirect")
            target = await self.macros.expand_domain(record.redirect, domain)
            outcome = await self.check_host(target, top=top)
            if outcome.result is SPFStatus.NONE:
                raise Abort(
                    SPFStatus.PERMERROR,
                    f"redirect target {target} has no SPF record",
                    SPFReason.REDIRECT_NONE,
                )
            return outcome
        return Outcome(
            SPFStatus.NEUTRAL,
            f"no mechanism matched in the policy of {domain}",
            SPFReason.DEFAULT,
        )

    async def fetch_record(self, domain: str) -> Record | None:
        try:
            answer = await self.resolver.resolve(domain, RdType.TXT)
        except TemporaryFailure as exc:
            raise Abort(
                SPFStatus.TEMPERROR,
                f"DNS failure fetching the SPF record of {domain}: {exc.detail or exc.kind}",
                SPFReason.DNS_ERROR,
            ) from None
        except (NXDomain, NoData):
            return None
        candidates = [txt.joined for txt in answer.txt() if is_spf_record(txt.joined)]
        if not candidates:
            return None
        if len(candidates) > 1:  # RFC 7208 §4.5
            raise Abort(
                SPFStatus.PERMERROR,
                f"{domain} publishes {len(candidates)} SPF records",
                SPFReason.MULTIPLE_RECORDS,
            )
        try:
            return self.parse(candidates[0])
        except SPFSyntaxError as exc:
            raise Abort(
                SPFStatus.PERMERROR,
                f"syntax error in the SPF record of {domain}: {exc}",
                SPFReason.SYNTAX_ERROR,
            ) from None

    # -- limits (RFC 7208 §4.6.4) ----------------------------------------------------------
    def count_dns_mechanism(self, term: str) -> None:
        self.dns_mechanisms += 1
        if self.dns_mechanisms > self.limits.dns_mechanisms:
            raise Abort(
                SPFStatus.PERMERROR,
                f"more than {self.limits.dns_mechanisms} DNS-querying terms (at {term})",
                SPFReason.DNS_LIMIT,
            )

    def count_void(self, name: str) -> None:
        self.void_lookups += 1
        if self.void_lookups > self.limits.void_lookups:
            raise Abort(
                SPFStatus.PERMERROR,
                f"more than {self.limits.void_lookups} void DNS lookups (at {name})",
                SPFReason.VOID_LIMIT,
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
                SPFReason.DNS_ERROR,
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
            await self.macros.expand_domain(mechanism.domain, domain)
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
            raise Abort(
                SPFStatus.PERMERROR,
                f"included domain {target} has no SPF record",
                SPFReason.INCLUDE_NONE,
            )
        return False

    async def mx(self, target: str, mechanism: Mechanism) -> bool:
        """RFC 7208 §5.4: the addresses of every MX host, at most 10 MX records."""
        exchanges = await self.lookup(target, RdType.MX, void=True)
        if len(exchanges) > self.limits.mx_names:  # RFC 7208 §4.6.4
            raise Abort(
                SPFStatus.PERMERROR,
                f"{target} has more than {self.limits.mx_names} MX records",
                SPFReason.MX_LIMIT,
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

    # -- explanation (RFC 7208 §6.2) ---------------------------------------------------------
    async def explanation(self, spec: MacroString, domain: str) -> str | None:
        """RFC 7208 §6.2: any problem fetching or expanding exp= means no explanation."""
        try:
            name = await self.macros.expand_domain(spec, domain)
            if not valid_domain(name):
                return None
            answer = await self.resolver.resolve(name, RdType.TXT)
            records = answer.txt()
            if len(records) != 1:
                return None
            text = records[0].joined.decode("ascii")
            return await self.macros.expand(parse_explanation(text), domain, explanation=True)
        except (DNSError, Abort, UnicodeDecodeError, SPFSyntaxError):
            return None
