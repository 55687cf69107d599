"""DMARC evaluation (RFC 9989 §5.3, RFC 7489 compatible) from the typed SPF and DKIM results.

`DMARCEvaluator(resolver).evaluate(from_values, spf, dkim)` never raises for a protocol outcome:
the `DMARCResult` says what happened and why. Nothing is re-verified here: SPF and DKIM come in
as results; the only I/O is DMARC record discovery (and, when np= matters, whether the Author
Domain exists) through the injected resolver.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from mailwarden.author import AuthorProblem, Authors, read_authors
from mailwarden.dns import Resolver, TemporaryFailure, is_domain_name, normalize, to_ascii
from mailwarden.frozen import quick_init
from mailwarden.runtime import start
from mailwarden.spf import Identity, SPFResult

from .discovery import (
    Discovery,
    DiscoveryTempError,
    Lookup,
    PolicyDiscovery,
    PublicSuffixes,
    RecordSource,
    discover_policy,
    domain_exists,
    organizational_domain,
)
from .record import Alignment, DMARCPolicy, DMARCRecord

T = TypeVar("T")

__all__ = [
    "DKIMLike",
    "DMARCEvaluator",
    "DMARCReason",
    "DMARCResult",
    "DMARCStatus",
    "LocalPolicy",
    "MultipleAuthors",
    "Override",
    "OverrideReason",
    "PolicyTag",
]


class DMARCStatus(StrEnum):
    """RFC 9989 / RFC 8601 §2.7.7 dmarc results."""

    PASS = "pass"
    FAIL = "fail"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


class OverrideReason(StrEnum):
    """Why the disposition differs from the domain's policy (RFC 9990 PolicyOverrideType)."""

    LOCAL_POLICY = "local_policy"
    MAILING_LIST = "mailing_list"
    TRUSTED_FORWARDER = "trusted_forwarder"
    POLICY_TEST_MODE = "policy_test_mode"
    OTHER = "other"


class PolicyTag(StrEnum):
    """Which tag of the record gave the policy."""

    P = "p"
    SP = "sp"
    NP = "np"


class MultipleAuthors(StrEnum):
    """What to do when the From field names several Author Domains (RFC 9989 §5.3.1)."""

    NOT_EVALUATED = "not_evaluated"  # DMARC validation is not possible: permerror
    STRICTEST = "strictest"  # the MAY of §5.3.1: evaluate each, report the strictest


class DKIMLike(Protocol):
    """A DKIM verification outcome: `result` is "pass" for a valid signature, `domain` its d=."""

    @property
    def result(self) -> str: ...

    @property
    def domain(self) -> str: ...


class DMARCReason(StrEnum):
    """Why a verdict is what it is, in RFC 9989 / RFC 7489 terms (beside the words)."""

    ALIGNED = "aligned"  # §4.4: a passing SPF or DKIM identifier is aligned: pass
    NOT_ALIGNED = "not-aligned"  # §4.4: no aligned passing identifier: fail
    NO_RECORD = "no-record"  # §4.10.1: no DMARC record: none
    NO_POLICY = "no-policy"  # §4.10.1: no valid p (or a bad sp/np) and no valid rua: none
    DNS_ERROR = "dns-error"  # §4.10.2: DNS trouble in discovery, alignment or np: temperror
    NO_FROM = "no-from"  # §5.3.1: no From field: not evaluated
    MULTIPLE_FROM = "multiple-from"  # §5.3.1: several From fields: not evaluated
    INVALID_FROM = "invalid-from"  # no Author Domain can be read: not evaluated
    MULTIPLE_AUTHORS = "multiple-authors"  # §5.3.1: several Author Domains: not evaluated
    # SPF could not be checked (no client address known) and no DKIM signature passed
    # aligned: an aligned SPF pass would make it pass (§4.4), so a fail cannot be told
    SPF_NOT_EVALUATED = "spf-not-evaluated"


@dataclass(frozen=True, slots=True)
class Override:
    """A local-policy decision replacing the domain's requested disposition."""

    disposition: DMARCPolicy
    reason: OverrideReason
    comment: str = ""


@quick_init
@dataclass(frozen=True, slots=True)
class DMARCResult:
    """One DMARC verdict, with everything needed to explain it and to report it (RFC 9990).

    `policy` is the policy applied after sp/np selection, t=y and pct (Authentication-Results
    policy.dmarc); `disposition` is what the receiver should do with this message (none for
    anything but fail, unless local policy says otherwise).
    """

    result: DMARCStatus
    reason: str
    reason_code: DMARCReason
    domain: str  # the Author Domain (A-labels, lower case); "" when none could be found
    discovery_method: Discovery
    authors: tuple[str, ...] = ()  # every Author Domain of the From field
    evaluated: bool = True  # False: the message was not DMARC-evaluable (From problems)
    policy_domain: str | None = None  # where the record was found
    record: DMARCRecord | None = None
    record_source: RecordSource = RecordSource.NONE
    organizational_domain: str | None = None
    requested_policy: DMARCPolicy | None = None  # from p, sp or np, before t=y / pct
    policy_tag: PolicyTag | None = None
    policy: DMARCPolicy | None = None
    disposition: DMARCPolicy = DMARCPolicy.NONE
    override_reason: OverrideReason | None = None
    override_comment: str = ""
    testing: bool = False  # t=y
    pct: int | None = None  # RFC 7489 pct, when honoured
    sampled_out: bool = False  # RFC 7489 §6.6.4: the message fell outside pct
    author_exists: bool | None = None  # checked only on fail when np= could apply
    spf_domain: str | None = None  # the MAIL FROM domain with an SPF pass, if any
    spf_aligned: bool | None = None  # None: no SPF pass for the MAIL FROM identity
    dkim_domains: tuple[str, ...] = ()  # d= of every passing signature
    dkim_aligned: tuple[str, ...] = ()  # those that align with the Author Domain
    dns_queries: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this verdict, for every command that shows one."""
        return {
            "result": self.result.value,
            "domain": self.domain,
            "policy": self.policy.value if self.policy else None,
            "disposition": self.disposition.value,
            "reason": self.reason,
            "reason_code": self.reason_code.value,
            "discovery_method": self.discovery_method.value,
            "alignment": {
                "spf": bool(self.spf_aligned),
                "dkim": bool(self.dkim_aligned),
                "spf_domain": self.spf_domain,
                "dkim_domains": list(self.dkim_aligned),
            },
            "policy_domain": self.policy_domain,
            "policy_tag": self.policy_tag.value if self.policy_tag else None,
            "requested_policy": self.requested_policy.value if self.requested_policy else None,
            "override_reason": self.override_reason.value if self.override_reason else None,
            "override_comment": self.override_comment or None,
            "testing": self.testing,
            "pct": self.pct,
            "sampled_out": self.sampled_out,
            "evaluated": self.evaluated,
            "authors": list(self.authors),
            "organizational_domain": self.organizational_domain,
            "dns_queries": self.dns_queries,
        }

    def without_spf(self) -> DMARCResult:
        """This verdict when SPF could not be checked at all (no client address known): a
        fail may be the missing SPF result's doing, since an aligned SPF pass alone passes
        (RFC 9989 §4.4), so it becomes not evaluated (result none, `evaluated` False, no
        disposition). Any other verdict stands: a pass needs one aligned identifier."""
        if self.result is not DMARCStatus.FAIL:
            return self
        return replace(
            self,
            result=DMARCStatus.NONE,
            reason=f"SPF not checked and {self.reason}: DMARC not evaluated",
            reason_code=DMARCReason.SPF_NOT_EVALUATED,
            evaluated=False,
            disposition=DMARCPolicy.NONE,
            override_reason=None,
            override_comment="",
            sampled_out=False,
        )


LocalPolicy = Callable[[DMARCResult], Override | None]

# Why a message whose From field(s) cannot give one Author Domain is not evaluated.
_AUTHOR_REASON = {
    AuthorProblem.NO_FROM: DMARCReason.NO_FROM,
    AuthorProblem.SEVERAL_FROM: DMARCReason.MULTIPLE_FROM,
    AuthorProblem.SYNTAX: DMARCReason.INVALID_FROM,
    AuthorProblem.EMPTY: DMARCReason.INVALID_FROM,
    AuthorProblem.DOMAIN_LITERAL: DMARCReason.INVALID_FROM,
    AuthorProblem.INVALID_DOMAIN: DMARCReason.INVALID_FROM,
    AuthorProblem.SEVERAL_DOMAINS: DMARCReason.MULTIPLE_AUTHORS,
    AuthorProblem.TOO_MANY_DOMAINS: DMARCReason.MULTIPLE_AUTHORS,
}

_RESULT_RANK = {
    DMARCStatus.PASS: 0,
    DMARCStatus.NONE: 1,
    DMARCStatus.PERMERROR: 2,
    DMARCStatus.TEMPERROR: 3,
}
_POLICY_RANK = {DMARCPolicy.NONE: 0, DMARCPolicy.QUARANTINE: 1, DMARCPolicy.REJECT: 2}


def _strictness(result: DMARCResult) -> tuple[int, int]:
    return (_RESULT_RANK.get(result.result, 4), _POLICY_RANK[result.disposition])


def _identifier(domain: str) -> str | None:
    try:
        name = normalize(to_ascii(domain.strip()))
    except ValueError:
        return None
    return name if is_domain_name(name) else None


class DMARCEvaluator:
    """Evaluates DMARC for messages through a resolver.

    `discovery` chooses the RFC 9989 DNS Tree Walk (default) or the RFC 7489 Public Suffix List
    method (`psl`: a `publicsuffixlist.PublicSuffixList`, loaded on first use when not given).
    `local_policy` may override the disposition of a verdict; `multiple_authors` says what a
    From field with several Author Domains gets; `random` draws RFC 7489 pct samples.

    `eager` starts the alignment's concurrent look-ups with `mailwarden.runtime.start` (each
    runs at once, and finishes without a task or a turn of the loop when its answers are
    cached) instead of one task each: only for a resolver that may be started so, one behind
    a `CachingResolver` (the pipeline's).
    """

    def __init__(
        self,
        resolver: Resolver,
        *,
        discovery: Discovery = Discovery.TREE_WALK,
        psl: PublicSuffixes | None = None,
        local_policy: LocalPolicy | None = None,
        multiple_authors: MultipleAuthors = MultipleAuthors.NOT_EVALUATED,
        random: Callable[[], float] = random.random,
        eager: bool = False,
    ) -> None:
        self.resolver = resolver
        self.eager = eager
        self.discovery = discovery
        self._psl = psl
        self.local_policy = local_policy
        self.multiple_authors = multiple_authors
        self.random = random

    @property
    def psl(self) -> PublicSuffixes | None:
        if self._psl is None and self.discovery is Discovery.PSL:
            from publicsuffixlist import PublicSuffixList

            self._psl = PublicSuffixList()
        return self._psl

    async def evaluate(
        self,
        from_values: Sequence[str] | Authors,
        spf: SPFResult | None,
        dkim: Sequence[DKIMLike] = (),
    ) -> DMARCResult:
        """The verdict for a message whose From field(s) have these values (or were read
        already into `Authors`)."""
        authors = from_values if isinstance(from_values, Authors) else read_authors(from_values)
        domains = authors.domains
        several = authors.problem in _SEVERAL
        if authors.problem is not None and not (
            several and domains and self.multiple_authors is MultipleAuthors.STRICTEST
        ):
            return self._not_evaluated(authors.reason, _AUTHOR_REASON[authors.problem], domains)
        lookup = Lookup(self.resolver)
        if len(domains) == 1:  # the common case: no task for a single evaluation
            return await self._evaluate(domains[0], spf, dkim, lookup, domains)
        results = await asyncio.gather(
            *(self._evaluate(d, spf, dkim, lookup, domains) for d in domains)
        )
        return max(results, key=_strictness)  # §5.3.1 MAY: the strictest verdict

    async def evaluate_domain(
        self, author_domain: str, spf: SPFResult | None, dkim: Sequence[DKIMLike] = ()
    ) -> DMARCResult:
        """The verdict for an Author Domain already extracted from the message."""
        domain = _identifier(author_domain)
        if domain is None:
            return self._not_evaluated(
                f"invalid Author Domain {author_domain!r}", DMARCReason.INVALID_FROM, ()
            )
        return await self._evaluate(domain, spf, dkim, Lookup(self.resolver), (domain,))

    def _not_evaluated(self, why: str, code: DMARCReason, authors: tuple[str, ...]) -> DMARCResult:
        # RFC 9989 §5.3.1: zero or several Author Domains: DMARC validation is not possible.
        return DMARCResult(
            DMARCStatus.PERMERROR,
            f"{why}: DMARC not evaluated",
            code,
            "",
            self.discovery,
            authors=authors,
            evaluated=False,
        )

    async def _evaluate(
        self,
        author: str,
        spf: SPFResult | None,
        dkim: Sequence[DKIMLike],
        lookup: Lookup,
        authors: tuple[str, ...],
    ) -> DMARCResult:
        # The verdict's fields are gathered in one dict and the result built once at the end
        # (a frozen 26-field dataclass copied at every step cost more than the steps).
        verdict: dict[str, Any] = {
            "result": _NONE,
            "reason": "",
            "reason_code": _NO_RECORD,
            "domain": author,
            "discovery_method": self.discovery,
            "authors": authors,
        }
        try:
            found = await discover_policy(lookup, author, self.discovery, self.psl)
        except DiscoveryTempError as exc:
            verdict.update(
                result=DMARCStatus.TEMPERROR,
                reason=str(exc),
                reason_code=DMARCReason.DNS_ERROR,
                dns_queries=lookup.queries,
            )
            return DMARCResult(**verdict)
        verdict.update(
            policy_domain=found.policy_domain,
            record=found.record,
            record_source=found.source,
            organizational_domain=found.organizational_domain,
            dns_queries=lookup.queries,
        )
        record = found.record
        if record is None:  # §4.10.1: no record, DMARC does not apply
            verdict.update(reason=f"no DMARC record for {author}", reason_code=_NO_RECORD)
            return DMARCResult(**verdict)
        if not record.policy_usable and not record.rua:
            # §4.10.1: no valid p (or an invalid sp/np) and no valid rua: no DMARC processing
            problem = "no valid p" if record.p is None else "an invalid sp/np"
            verdict.update(
                reason=f"record at {found.policy_domain} has {problem} and no valid rua",
                reason_code=DMARCReason.NO_POLICY,
            )
            return DMARCResult(**verdict)
        await self._align(verdict, found, record, spf, dkim, lookup)
        applied = await self._apply_policy(verdict, found, record, lookup)
        if applied and self.local_policy is not None:
            # the local policy sees the verdict as it stood before the alignment's queries
            decision = self.local_policy(DMARCResult(**verdict))
            if decision is not None:
                verdict.update(
                    disposition=decision.disposition,
                    override_reason=decision.reason,
                    override_comment=decision.comment,
                )
        verdict["dns_queries"] = lookup.queries
        return DMARCResult(**verdict)

    async def _align(
        self,
        verdict: dict[str, Any],
        found: PolicyDiscovery,
        record: DMARCRecord,
        spf: SPFResult | None,
        dkim: Sequence[DKIMLike],
        lookup: Lookup,
    ) -> None:
        """The identifiers' alignment (RFC 9989 §4.4): result, reason and the alignment
        fields set in `verdict`."""
        author: str = verdict["domain"]
        org_cache: dict[str, str] = {}
        if found.organizational_domain is not None:
            org_cache[author] = found.organizational_domain

        async def org_of(domain: str) -> str:
            if domain not in org_cache:
                org_cache[domain] = await organizational_domain(
                    lookup, domain, self.discovery, self.psl
                )
            return org_cache[domain]

        async def aligned(identifier: str, mode: Alignment) -> bool | None:
            """True/False, or None when DNS trouble leaves it open (RFC 9989 §4.10.2)."""
            if identifier == author:
                return True
            if mode is _STRICT:
                return False
            try:
                org = await org_of(author)
                if identifier != org and not identifier.endswith("." + org):
                    return False  # cannot share an Organizational Domain
                return await org_of(identifier) == org
            except DiscoveryTempError:
                return None

        spf_domain: str | None = None
        if (
            spf is not None
            and spf.identity is _MAILFROM  # §4.4.2: the MAIL FROM identity only
            and spf.result == "pass"
        ):
            spf_domain = _identifier(spf.domain)
        dkim_domains: list[str] = []
        for signature in dkim:
            if str(signature.result).lower() == "pass" and signature.domain:
                d = _identifier(signature.domain)
                if d is not None and d not in dkim_domains:
                    dkim_domains.append(d)

        wanted = [(d, record.adkim) for d in dkim_domains]
        if spf_domain:
            wanted.append((spf_domain, record.aspf))
        # identical or strictly compared identifiers are decided at once; the others may need
        # the Organizational Domains, and their independent lookups run together
        outcomes: list[bool | None] = [
            True if d == author else False if mode is _STRICT else None for d, mode in wanted
        ]
        open_checks = [
            (i, aligned(d, mode))
            for i, (d, mode) in enumerate(wanted)
            if d != author and mode is not _STRICT
        ]
        if len(open_checks) == 1:
            outcomes[open_checks[0][0]] = await open_checks[0][1]
        elif open_checks:
            decided = await self._together([check for _, check in open_checks])
            for (i, _), ok in zip(open_checks, decided, strict=True):
                outcomes[i] = ok
        dkim_ok = outcomes[: len(dkim_domains)]
        spf_ok = outcomes[-1] if spf_domain else None
        dkim_aligned = tuple(d for d, ok in zip(dkim_domains, dkim_ok, strict=True) if ok)
        temp = (spf_domain is not None and spf_ok is None) or any(ok is None for ok in dkim_ok)
        if spf_ok or dkim_aligned:
            result, reason = _PASS, _pass_reason(spf_ok, dkim_aligned, spf_domain)
            code = _ALIGNED
        elif temp:
            result, reason = _TEMPERROR, "temporary DNS failure while checking alignment"
            code = _DNS_ERROR
        else:
            result, reason = _FAIL, _fail_reason(spf_domain, dkim_domains)
            code = _NOT_ALIGNED
        verdict.update(
            result=result,
            reason=reason,
            reason_code=code,
            organizational_domain=org_cache.get(author, verdict["organizational_domain"]),
            spf_domain=spf_domain,
            spf_aligned=bool(spf_ok) if spf_domain else None,
            dkim_domains=tuple(dkim_domains),
            dkim_aligned=dkim_aligned,
        )

    async def _together(self, checks: list[Coroutine[Any, Any, T]]) -> list[T]:
        """The results of independent look-ups, run concurrently."""
        if not self.eager:
            return list(await asyncio.gather(*checks))
        started = [start(check) for check in checks]  # finished now when cached
        waiting = [future for future in started if not future.done()]
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)  # (results read below)
        return [future.result() for future in started]

    async def _apply_policy(
        self, verdict: dict[str, Any], found: PolicyDiscovery, record: DMARCRecord, lookup: Lookup
    ) -> bool:
        """The policy that applies (p, sp or np; t=y; pct) and the disposition, set in
        `verdict` (an aligned verdict). False when DNS left it open (temperror set)."""
        author: str = verdict["domain"]
        failed = verdict["result"] is _FAIL
        exists: bool | None = None
        requested: DMARCPolicy | None
        if not record.policy_usable:  # §4.10.1: act as if the record said p=none
            requested, tag = _POLICY_NONE, _TAG_P
        elif found.source is _FROM_AUTHOR:  # §4.10.1: the Author Domain's own record
            requested, tag = record.p, _TAG_P
        else:
            if author == found.organizational_domain:
                # The Author Domain is itself the Organizational Domain below a PSD (psd=y):
                # the PSD record's p applies to it, sp to its subdomains (RFC 9091 semantics).
                existing = (record.p, _TAG_P)
            else:  # §4.10.1: an existing subdomain gets sp, else p
                existing = (record.subdomain_policy, _TAG_SP if record.sp else _TAG_P)
            missing = (  # §4.7 np: a non-existent subdomain gets np, else sp, else p
                record.nonexistent_policy,
                _TAG_NP if record.np else _TAG_SP if record.sp else _TAG_P,
            )
            # Existence matters (and costs a query) only when the two policies differ and
            # the message fails: a pass or a temperror has no disposition to choose (§4.7).
            if missing != existing and failed:
                lookup.queries += 1
                try:
                    exists = await domain_exists(self.resolver, author)
                except TemporaryFailure as exc:
                    verdict.update(
                        result=DMARCStatus.TEMPERROR,
                        reason=f"cannot tell whether {author} exists: {exc}",
                        reason_code=DMARCReason.DNS_ERROR,
                    )
                    return False
            requested, tag = missing if exists is False else existing
        assert requested is not None
        policy = requested.lowered() if record.testing else requested  # t=y: one level lower
        override = OverrideReason.POLICY_TEST_MODE if policy is not requested else None
        pct = record.pct if record.is_rfc7489 else None  # RFC 7489 pct, only without t
        sampled_out = False
        sample = failed and pct is not None and pct < 100
        if sample and self.random() * 100 >= (pct or 0):  # RFC 7489 §6.6.4: next policy down
            sampled_out = True
            policy = policy.lowered()
            override = OverrideReason.POLICY_TEST_MODE
        verdict.update(
            requested_policy=requested,
            policy_tag=tag,
            policy=policy,
            disposition=policy if failed else _POLICY_NONE,
            override_reason=override if failed and policy is not requested else None,
            testing=record.testing,
            pct=pct,
            sampled_out=sampled_out,
            author_exists=exists,
        )
        return True


# Enum members read in the loops above, as module constants: on Python 3.11 reading a member
# through its class goes through EnumType.__getattr__'s slow attribute path.
_PASS, _FAIL, _TEMPERROR = DMARCStatus.PASS, DMARCStatus.FAIL, DMARCStatus.TEMPERROR
_NONE, _NO_RECORD = DMARCStatus.NONE, DMARCReason.NO_RECORD
_SEVERAL = (AuthorProblem.SEVERAL_FROM, AuthorProblem.SEVERAL_DOMAINS)
_ALIGNED, _NOT_ALIGNED = DMARCReason.ALIGNED, DMARCReason.NOT_ALIGNED
_DNS_ERROR = DMARCReason.DNS_ERROR
_STRICT = Alignment.STRICT
_MAILFROM = Identity.MAILFROM
_POLICY_NONE = DMARCPolicy.NONE
_TAG_P, _TAG_SP, _TAG_NP = PolicyTag.P, PolicyTag.SP, PolicyTag.NP
_FROM_AUTHOR = RecordSource.AUTHOR


def _pass_reason(spf_ok: bool | None, dkim_aligned: tuple[str, ...], spf: str | None) -> str:
    parts = []
    if dkim_aligned:
        parts.append("DKIM d=" + ",".join(dkim_aligned))
    if spf_ok:
        parts.append(f"SPF {spf}")
    return "aligned pass: " + " and ".join(parts)


def _fail_reason(spf_domain: str | None, dkim_domains: list[str]) -> str:
    if not spf_domain and not dkim_domains:
        return "no SPF or DKIM pass to align"
    passed = [f"SPF {spf_domain}"] if spf_domain else []
    passed += [f"DKIM d={d}" for d in dkim_domains]
    return "no aligned identifier (passing but not aligned: " + ", ".join(passed) + ")"
