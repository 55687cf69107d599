"""Every stage has a deadline (`settings.deadlines`); a check that runs out of time is a
temperror, never a pass.

The results made here say what ran out of time, with the RFC's temperror words and a reason
code, so the policy defers a message whose authentication depends on them.
"""

from __future__ import annotations

from mailwarden.dkim import DKIMReason, DKIMResult, DKIMStatus
from mailwarden.dmarc import Discovery, DMARCReason, DMARCResult, DMARCStatus
from mailwarden.dns import IPAddress
from mailwarden.spf import Identity, SPFReason, SPFResult, SPFStatus, split_sender

__all__ = ["timed_out_dkim", "timed_out_dmarc", "timed_out_spf"]


def timed_out_spf(
    identity: Identity, ip: IPAddress, helo: str, mail_from: str, seconds: float
) -> SPFResult:
    """RFC 7208 §2.6.6: a check that could not finish is temperror."""
    local, domain = split_sender(mail_from, helo)
    if identity is Identity.HELO:
        local, domain = "postmaster", helo
    return SPFResult(
        SPFStatus.TEMPERROR,
        identity,
        domain,
        f"{local}@{domain}",
        ip,
        helo,
        f"SPF check timed out after {seconds:g} s",
        SPFReason.DNS_ERROR,
    )


def timed_out_dkim(signatures: int, seconds: float) -> list[DKIMResult]:
    """One temperror per DKIM-Signature field (RFC 6376 §6.1.2: no final answer)."""
    reason = f"DKIM verification timed out after {seconds:g} s"
    return [
        DKIMResult(DKIMStatus.TEMPERROR, reason, DKIMReason.DNS_ERROR) for _ in range(signatures)
    ]


def timed_out_dmarc(author: str, discovery: Discovery, seconds: float) -> DMARCResult:
    """RFC 9989 §4.10.2: DNS trouble leaves the result temperror."""
    return DMARCResult(
        DMARCStatus.TEMPERROR,
        f"DMARC evaluation timed out after {seconds:g} s",
        DMARCReason.DNS_ERROR,
        author,
        discovery,
        authors=(author,) if author else (),
    )
