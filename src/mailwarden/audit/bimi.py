"""BIMI audit: the `default._bimi` assertion record and the DMARC enforcement it requires
(draft-brand-indicators-for-message-identification: p=quarantine or reject, no pct below 100,
sp not none)."""

from __future__ import annotations

from dataclasses import dataclass

from mailwarden.dkim import TagListError, parse_tag_list
from mailwarden.dns import RdType, Resolver

from .findings import FindingCode, Outcome, Section, Severity, query

__all__ = ["DMARCEnforcement", "bimi_section", "fetch_bimi"]


@dataclass(frozen=True, slots=True)
class DMARCEnforcement:
    """What BIMI needs to know of the DMARC audit."""

    enforced: bool
    why: str  # when not enforced: what is missing


def bimi_name(domain: str) -> str:
    return f"default._bimi.{domain}"


async def fetch_bimi(resolver: Resolver, domain: str) -> Outcome:
    return await query(resolver, bimi_name(domain), RdType.TXT)


def bimi_section(domain: str, outcome: Outcome, dmarc: DMARCEnforcement) -> Section:
    """Pure: the BIMI findings from the lookup's outcome and the DMARC audit's verdict."""
    section = Section("bimi")
    name = bimi_name(domain)
    section.data.update(name=name, record=None, logo=None, authority=None)
    if outcome.timed_out:
        section.timeout(name, RdType.TXT, outcome.detail, domain)
        return section
    records = []
    if outcome.answer is not None:
        records = [
            t.joined.decode("utf-8", "replace")
            for t in outcome.answer.txt()
            if t.joined.lstrip().lower().startswith(b"v=bimi1")
        ]
    if not records:
        section.add(
            FindingCode.BIMI_NONE,
            Severity.INFO,
            f"no BIMI record at {name} (optional: shows your logo in some mailboxes)",
            "To show a logo: reach DMARC enforcement, then publish "
            f'"v=BIMI1; l=https://.../logo.svg; a=https://.../vmc.pem" at {name}.',
            domain,
        )
        return section
    if len(records) > 1:
        section.add(
            FindingCode.BIMI_MULTIPLE,
            Severity.ERROR,
            f"{len(records)} BIMI records at {name}: receivers ignore them all",
            "Keep one v=BIMI1 record.",
            domain,
        )
        return section
    record = records[0]
    section.data["record"] = record
    try:
        tags = parse_tag_list(record)
    except TagListError as exc:
        section.add(
            FindingCode.BIMI_SYNTAX,
            Severity.ERROR,
            f"the BIMI record is malformed: {exc}",
            'Write it as "v=BIMI1; l=<https logo URL>; a=<https certificate URL>".',
            domain,
        )
        return section
    logo = tags.get("l", "").strip()
    authority = tags.get("a", "").strip()
    section.data.update(logo=logo or None, authority=authority or None)
    problems = 0
    if tags.get("v") != "BIMI1":
        problems += 1
        section.add(
            FindingCode.BIMI_VERSION,
            Severity.ERROR,
            "the record must start with v=BIMI1",
            "Put v=BIMI1 first.",
            domain,
        )
    if not logo and not authority:
        section.add(
            FindingCode.BIMI_DECLINED,
            Severity.INFO,
            "empty l= and a=: the domain declines to show a logo",
            subject=domain,
        )
        return section
    if logo and not logo.lower().startswith("https://"):
        problems += 1
        section.add(
            FindingCode.BIMI_LOGO_NOT_HTTPS,
            Severity.ERROR,
            f"l={logo} is not an https:// URL",
            "Serve the SVG Tiny PS logo over HTTPS and put that URL in l=.",
            domain,
        )
    if not authority:
        section.add(
            FindingCode.BIMI_NO_CERTIFICATE,
            Severity.INFO,
            "no a= (Verified Mark Certificate): Gmail and Apple Mail show no logo without one",
            "Obtain a VMC or CMC and publish its https:// URL in a=.",
            domain,
        )
    if not dmarc.enforced:
        problems += 1
        section.add(
            FindingCode.BIMI_DMARC_NOT_ENFORCED,
            Severity.ERROR,
            f"BIMI requires DMARC at enforcement, but {dmarc.why}: no logo will be shown",
            "Set p=quarantine or p=reject (no pct below 100, sp not none, no t=y) in the DMARC "
            "record.",
            domain,
        )
    if not problems:
        section.add(
            FindingCode.BIMI_OK, Severity.OK, "BIMI record valid, DMARC at enforcement", "", domain
        )
    return section
