"""mailwarden.audit: check a domain's mail setup the way a receiver sees it.

`await audit_domain(resolver, "example.com", selectors=("s1",), dns_lists=lists)` returns a
`DomainAudit`: one `Section` per check (mx, spf, dkim, dmarc, bimi), each with typed `Finding`s
(severity ok/info/warning/error, a stable code, a message and a concrete fix) and the data it
looked at. Every check runs concurrently through the one resolver; a DNS timeout is a finding
of its own ("timed out"), never "not found". `to_dict()` is the JSON of
`mailwarden domain check`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mailwarden.dns import Resolver
from mailwarden.dns.cache import CachingResolver
from mailwarden.dnsbl import DNSList, DNSListChecker

from .bimi import DMARCEnforcement, bimi_section, fetch_bimi
from .dkim import COMMON_SELECTORS, LocalKey, check_dkim, check_key_ages
from .dmarc import authorization_name, check_dmarc
from .findings import (
    DNS_FAILURES,
    Finding,
    FindingCode,
    LookupStatus,
    Outcome,
    Section,
    Severity,
    query,
)
from .mx import check_mx
from .spf import check_spf, lookups_past_limit

__all__ = [
    "CHECKS",
    "COMMON_SELECTORS",
    "DNS_FAILURES",
    "DMARCEnforcement",
    "DomainAudit",
    "Finding",
    "FindingCode",
    "LocalKey",
    "LookupStatus",
    "Outcome",
    "Section",
    "Severity",
    "audit_domain",
    "authorization_name",
    "bimi_section",
    "check_dkim",
    "check_dmarc",
    "check_key_ages",
    "check_mx",
    "check_spf",
    "fetch_bimi",
    "lookups_past_limit",
    "query",
]

CHECKS = ("mx", "spf", "dkim", "dmarc", "bimi")


@dataclass(frozen=True, slots=True)
class DomainAudit:
    domain: str
    sections: dict[str, Section]

    @property
    def findings(self) -> list[Finding]:
        return [f for name in CHECKS for f in self.sections[name].findings]

    @property
    def worst(self) -> Severity:
        return max((f.severity for f in self.findings), key=lambda s: s.rank, default=Severity.OK)

    @property
    def has_errors(self) -> bool:
        return self.worst is Severity.ERROR

    @property
    def dns_failed(self) -> list[str]:
        """The checks some of whose DNS lookups timed out or failed (SERVFAIL): not done in
        full, so the audit cannot vouch for them. Empty when every lookup was answered."""
        return [
            name
            for name in CHECKS
            if any(f.code in DNS_FAILURES for f in self.sections[name].findings)
        ]

    def counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Severity}
        for finding in self.findings:
            counts[finding.severity.value] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "status": self.worst.value,
            "counts": self.counts(),
            **{name: self.sections[name].to_dict() for name in CHECKS},
            "findings": [f.to_dict() for f in self.findings],
            "dns_failed": self.dns_failed,
        }


async def audit_domain(
    resolver: Resolver,
    domain: str,
    *,
    selectors: Iterable[str] = (),
    common_selectors: Iterable[str] = COMMON_SELECTORS,
    dns_lists: Iterable[DNSList] = (),
    local_keys: Iterable[LocalKey] = (),
    max_key_age_days: int = 200,
    now: float | None = None,
) -> DomainAudit:
    """Every check of `domain` (A-labels, no trailing dot), concurrently. `local_keys`: the
    keys this host signs the domain with (their selectors are checked too, and keys signing
    for longer than `max_key_age_days` are warned about)."""
    local = tuple(local_keys)
    selectors = (*selectors, *(key.selector for key in local))
    if not isinstance(resolver, CachingResolver):
        resolver = CachingResolver(resolver)
    lists = tuple(dns_lists)
    checker = DNSListChecker(resolver, lists) if lists else None
    mx, spf, dkim, (dmarc, enforced), bimi_outcome = await asyncio.gather(
        check_mx(resolver, domain, checker),
        check_spf(resolver, domain),
        check_dkim(resolver, domain, tuple(selectors), tuple(common_selectors)),
        check_dmarc(resolver, domain),
        fetch_bimi(resolver, domain),
    )
    bimi = bimi_section(domain, bimi_outcome, enforced)
    if local:
        check_key_ages(dkim, local, max_key_age_days, time.time() if now is None else now)
    return DomainAudit(domain, {"mx": mx, "spf": spf, "dkim": dkim, "dmarc": dmarc, "bimi": bimi})
