"""Trusted ARC sealers: when a local DMARC fail may be overridden (RFC 8617 §7.2, RFC 9990
PolicyOverrideType trusted_forwarder).

A forwarder (mailing list, forwarding service) breaks SPF and often DKIM; if a sealer the
receiver trusts validated the message before changing it, and its chain still validates, its
ARC-Authentication-Results can be believed. The decision here is pure: it reads an `ARCResult`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from mailwarden.dmarc import (
    DMARCPolicy,
    DMARCResult,
    DMARCStatus,
    Override,
    OverrideReason,
)

from .model import ARCStatus
from .verify import ARCResult, ARCSetResult

__all__ = [
    "TrustedSealerCheck",
    "trusted_forwarder_override",
    "trusted_sealer_dmarc_pass",
]


class TrustedSealerCheck(NamedTuple):
    """Whether a trusted sealer vouches for a DMARC pass, which one, and why (or why not)."""

    passed: bool
    sealer: str | None  # the trusted sealer's d= (its ARC-Seal domain)
    detail: str


def _normalize(domains: Iterable[str]) -> set[str]:
    return {d.strip().rstrip(".").lower() for d in domains if d.strip()}


def _dmarc_pass(arc_set: ARCSetResult, author_domain: str | None) -> str | None:
    """Why this set's AAR does not show a DMARC pass (None: it does)."""
    results = arc_set.auth_results
    if results is None:
        return "its ARC-Authentication-Results does not parse"
    dmarc = results.by_method("dmarc")
    if not dmarc:
        return "its ARC-Authentication-Results has no dmarc result"
    for resinfo in dmarc:
        if resinfo.result.lower() != DMARCStatus.PASS:
            continue
        header_from = resinfo.get("header", "from")
        if author_domain and header_from and header_from.lower() != author_domain.lower():
            continue
        return None
    shown = ", ".join(f"dmarc={r.result}" for r in dmarc)
    if author_domain:
        return f"its ARC-Authentication-Results says {shown} (need a pass for {author_domain})"
    return f"its ARC-Authentication-Results says {shown}"


def trusted_sealer_dmarc_pass(
    arc_result: ARCResult, trusted_sealers: Iterable[str], *, author_domain: str | None = None
) -> TrustedSealerCheck:
    """Whether a trusted sealer's chain passed and its AAR shows dmarc=pass.

    The chain as a whole must validate (cv=pass: every seal verified, so every AAR is as its
    sealer wrote it). The sets sealed (AS d=) by a domain in `trusted_sealers` (exact match,
    no case) are read newest first; the first whose AAR has ``dmarc=pass`` wins. With
    `author_domain`, a dmarc result naming another ``header.from`` does not count.
    """
    trusted = _normalize(trusted_sealers)
    if arc_result.result is not ARCStatus.PASS:
        return TrustedSealerCheck(False, None, f"ARC chain is {arc_result.result}")
    seen: list[str] = []
    for arc_set in reversed(arc_result.sets):
        if arc_set.seal_domain not in trusted:
            continue
        problem = _dmarc_pass(arc_set, author_domain)
        if problem is None:
            detail = f"trusted sealer {arc_set.seal_domain} (i={arc_set.instance}) saw dmarc=pass"
            return TrustedSealerCheck(True, arc_set.seal_domain, detail)
        seen.append(f"{arc_set.seal_domain} (i={arc_set.instance}): {problem}")
    if not seen:
        return TrustedSealerCheck(False, None, "no set of the chain is sealed by a trusted sealer")
    return TrustedSealerCheck(False, None, "; ".join(seen))


def trusted_forwarder_override(
    verdict: DMARCResult, arc_result: ARCResult, trusted_sealers: Iterable[str]
) -> Override | None:
    """The override of a DMARC fail that a trusted sealer vouches for: disposition none,
    reason trusted_forwarder (None: the verdict stands)."""
    if verdict.result is not DMARCStatus.FAIL:
        return None
    author = verdict.domain or None
    check = trusted_sealer_dmarc_pass(arc_result, trusted_sealers, author_domain=author)
    if not check.passed:
        return None
    return Override(DMARCPolicy.NONE, OverrideReason.TRUSTED_FORWARDER, check.detail)
