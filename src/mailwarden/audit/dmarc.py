"""DMARC audit (RFC 9989, RFC 9990): the record that applies to the domain (found by the DNS
Tree Walk), the policies for the domain, its subdomains and non-existent subdomains, and for
each rua/ruf address in another organisation, its external destination authorization: a TXT
record ``<policy-domain>._report._dmarc.<destination-domain>`` starting with v=DMARC1."""

from __future__ import annotations

import asyncio
from typing import Any

from mailwarden.dmarc import (
    DiscoveryTempError,
    DMARCPolicy,
    DMARCRecord,
    Lookup,
    PolicyDiscovery,
    RecordSource,
    ReportURI,
    discover_policy,
    organizational_domain,
)
from mailwarden.dmarc.discovery import Discovery
from mailwarden.dns import RdType, Resolver

from .bimi import DMARCEnforcement
from .findings import FindingCode, Section, Severity, query

__all__ = ["authorization_name", "check_dmarc", "enforcement"]


def authorization_name(policy_domain: str, destination: str) -> str:
    """RFC 9990 external destination authorization record name."""
    return f"{policy_domain}._report._dmarc.{destination}"


def _mailto_domain(uri: ReportURI) -> str | None:
    if uri.scheme != "mailto":
        return None
    address = uri.uri.partition(":")[2].partition("?")[0]
    local, at, domain = address.rpartition("@")
    return domain.lower().rstrip(".") if at and local and domain else None


def enforcement(record: DMARCRecord | None, own: bool) -> DMARCEnforcement:
    """Whether the policy that applies to the domain is enforced, as BIMI requires."""
    if record is None:
        return DMARCEnforcement(False, "there is no DMARC record")
    policy = record.p if own else record.subdomain_policy
    if policy not in (DMARCPolicy.QUARANTINE, DMARCPolicy.REJECT):
        return DMARCEnforcement(False, f"the policy is {policy.value if policy else 'missing'}")
    if record.testing:
        return DMARCEnforcement(False, "t=y (testing) lowers the policy")
    if record.pct is not None and record.pct < 100:
        return DMARCEnforcement(False, f"pct={record.pct} applies it to part of the mail only")
    if record.sp is DMARCPolicy.NONE:
        return DMARCEnforcement(False, "sp=none leaves subdomains unprotected")
    return DMARCEnforcement(True, "")


async def _authorize(
    resolver: Resolver,
    lookup: Lookup,
    section: Section,
    policy_domain: str,
    policy_org: str,
    tag: str,
    uri: ReportURI,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"tag": tag, "uri": uri.uri, "external": None, "authorized": None}
    destination = _mailto_domain(uri)
    if destination is None:
        section.add(
            FindingCode.DMARC_REPORT_URI,
            Severity.WARNING,
            f"{tag}={uri.uri} is not a mailto: address with a domain: receivers send reports "
            "by e-mail only",
            f"Use {tag}=mailto:dmarc-reports@<your domain>.",
            uri.uri,
        )
        return entry
    entry["domain"] = destination
    try:
        destination_org = await organizational_domain(
            lookup, destination, Discovery.TREE_WALK, None
        )
    except DiscoveryTempError as exc:
        section.timeout(exc.name, RdType.TXT, str(exc), uri.uri)
        return entry
    external = destination_org != policy_org
    entry["external"] = external
    if not external:
        entry["authorized"] = True
        return entry
    name = authorization_name(policy_domain, destination)
    entry["authorization_record"] = name
    outcome = await query(resolver, name, RdType.TXT)
    if outcome.timed_out:
        section.timeout(name, RdType.TXT, outcome.detail, uri.uri)
        return entry
    texts = (
        [t.joined.decode("utf-8", "replace") for t in outcome.answer.txt()]
        if outcome.answer is not None
        else []
    )
    authorized = any(t.lstrip(" \t").startswith("v=DMARC1") for t in texts)
    entry["authorized"] = authorized
    if authorized:
        section.add(
            FindingCode.DMARC_REPORT_AUTHORIZED,
            Severity.OK,
            f"{tag}: {destination} accepts reports for {policy_domain} ({name})",
            subject=uri.uri,
        )
    else:
        section.add(
            FindingCode.DMARC_REPORT_UNAUTHORIZED,
            Severity.ERROR,
            f"{tag}={uri.uri} is in another organisation ({destination_org}) that has not "
            f"authorized reports for {policy_domain}: receivers will not send them "
            "(RFC 9990 external destination verification)",
            f'Ask {destination} to publish TXT "v=DMARC1" at {name}, or send reports to an '
            f"address under {policy_org}.",
            uri.uri,
        )
    return entry


def _policy_findings(
    section: Section, domain: str, found: PolicyDiscovery, record: DMARCRecord
) -> None:
    own = found.source is RecordSource.AUTHOR
    applies = record.p if own else record.subdomain_policy
    if found.source is RecordSource.ORGANIZATIONAL:
        section.add(
            FindingCode.DMARC_INHERITED,
            Severity.INFO,
            f"{domain} has no record of its own: {found.policy_domain}'s applies "
            f"({'sp' if record.sp is not None else 'p'}={applies.value if applies else '-'})",
            subject=domain,
        )
    elif found.source is RecordSource.PSD:
        section.add(
            FindingCode.DMARC_PSD,
            Severity.WARNING,
            f"only the public suffix {found.policy_domain} has a DMARC record (psd=y): "
            f"{domain} has none of its own",
            f"Publish _dmarc.{domain} with your own policy.",
            domain,
        )
    for error in record.errors:
        section.add(
            FindingCode.DMARC_RECORD_ERROR,
            Severity.WARNING if not record.invalid_policy_tags else Severity.ERROR,
            f"record problem: {error}",
            "Fix the tag (RFC 9989 §4.7); receivers ignore invalid terms.",
            found.policy_domain or domain,
        )
    if record.p is None:
        section.add(
            FindingCode.DMARC_NO_POLICY,
            Severity.ERROR,
            "the record has no valid p= tag: receivers treat it as p=none or ignore it",
            "Add p=none (to start), then p=quarantine or p=reject.",
            found.policy_domain or domain,
        )
    elif applies is DMARCPolicy.NONE:
        section.add(
            FindingCode.DMARC_POLICY_NONE,
            Severity.WARNING,
            f"the policy for {domain} is none: monitoring only, forged mail is delivered",
            "Once the aggregate reports show all your mail passing, set p=quarantine, then "
            "p=reject.",
            domain,
        )
    else:
        section.add(
            FindingCode.DMARC_ENFORCED,
            Severity.OK,
            f"the policy for {domain} is {applies.value if applies else '-'}",
            subject=domain,
        )
    if record.p in (DMARCPolicy.QUARANTINE, DMARCPolicy.REJECT) and record.sp is DMARCPolicy.NONE:
        section.add(
            FindingCode.DMARC_SUBDOMAINS_NONE,
            Severity.WARNING,
            "sp=none: subdomains are not protected though the domain is",
            "Remove sp=none (subdomains then get p) or set sp=quarantine/reject.",
            domain,
        )
    if (
        record.p in (DMARCPolicy.QUARANTINE, DMARCPolicy.REJECT)
        and record.nonexistent_policy is DMARCPolicy.NONE
        and record.sp is not DMARCPolicy.NONE
    ):
        section.add(
            FindingCode.DMARC_NONEXISTENT_NONE,
            Severity.WARNING,
            "np=none: mail from subdomains that do not exist is not rejected",
            "Remove np=none or set np=reject.",
            domain,
        )
    if record.testing:
        section.add(
            FindingCode.DMARC_TESTING,
            Severity.WARNING,
            "t=y: the domain is testing, receivers apply one level less (reject as quarantine)",
            "Remove t=y once the reports look right.",
            domain,
        )
    if record.pct is not None and record.pct < 100:
        section.add(
            FindingCode.DMARC_PCT,
            Severity.WARNING,
            f"pct={record.pct}: the policy applies to {record.pct}% of failing mail "
            "(RFC 7489; RFC 9989 dropped pct for t)",
            "Remove pct (use t=y while testing).",
            domain,
        )
    if not record.rua and found.source is not RecordSource.PSD:
        section.add(
            FindingCode.DMARC_NO_RUA,
            Severity.INFO,
            "no rua: you get no aggregate reports, so you cannot see who sends as you",
            f"Add rua=mailto:dmarc-reports@{found.policy_domain or domain}.",
            domain,
        )


def _policy_data(found: PolicyDiscovery, record: DMARCRecord | None) -> dict[str, Any]:
    if record is None:
        return {"domain": None, "subdomains": None, "nonexistent": None, "testing": False}
    own = found.source is RecordSource.AUTHOR
    applies = record.p if own else record.subdomain_policy
    sub = record.subdomain_policy
    non = record.nonexistent_policy
    return {
        "p": record.p.value if record.p else None,
        "sp": record.sp.value if record.sp else None,
        "np": record.np.value if record.np else None,
        "t": record.testing,
        "pct": record.pct,
        "domain": applies.value if applies else None,
        "subdomains": sub.value if sub else None,
        "nonexistent": non.value if non else None,
        "testing": record.testing,
    }


async def check_dmarc(resolver: Resolver, domain: str) -> tuple[Section, DMARCEnforcement]:
    """The DMARC section, and whether DMARC is at enforcement (for BIMI)."""
    section = Section("dmarc")
    lookup = Lookup(resolver)
    section.data.update(
        record=None,
        policy_domain=None,
        source=RecordSource.NONE.value,
        discovery_method=Discovery.TREE_WALK.value,
        organizational_domain=None,
        policy=_policy_data(PolicyDiscovery(None, None, None, RecordSource.NONE, ""), None),
        reports=[],
    )
    try:
        found = await discover_policy(lookup, domain, Discovery.TREE_WALK, None)
    except DiscoveryTempError as exc:
        section.timeout(exc.name, RdType.TXT, str(exc), domain)
        return section, DMARCEnforcement(False, "the DMARC lookup timed out")
    record = found.record
    section.data.update(
        record=record.raw if record else None,
        policy_domain=found.policy_domain,
        source=found.source.value,
        organizational_domain=found.organizational_domain,
        note=found.note,
        policy=_policy_data(found, record),
    )
    if record is None:
        if "DMARC records" in found.note:  # RFC 9989 §4.10 step 2: several are all discarded
            section.add(
                FindingCode.DMARC_MULTIPLE_RECORDS,
                Severity.ERROR,
                f"_dmarc.{domain}: {found.note}: receivers apply no DMARC policy",
                f"Keep exactly one v=DMARC1 record at _dmarc.{domain}.",
                domain,
            )
        else:
            section.add(
                FindingCode.DMARC_NONE,
                Severity.ERROR,
                f"no DMARC record for {domain} (nor its organizational domain): forged mail "
                "in its name cannot be recognised as such",
                f'Publish TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}" at '
                f"_dmarc.{domain}, read the reports, then move to p=quarantine and p=reject.",
                domain,
            )
        return section, enforcement(None, True)
    _policy_findings(section, domain, found, record)
    policy_domain = found.policy_domain or domain
    try:
        policy_org = found.organizational_domain or await organizational_domain(
            lookup, policy_domain, Discovery.TREE_WALK, None
        )
    except DiscoveryTempError as exc:
        section.timeout(exc.name, RdType.TXT, str(exc), domain)
        policy_org = policy_domain
    section.data["organizational_domain"] = policy_org
    reports = await asyncio.gather(
        *(
            _authorize(resolver, lookup, section, policy_domain, policy_org, tag, uri)
            for tag, uris in (("rua", record.rua), ("ruf", record.ruf))
            for uri in uris
        )
    )
    section.data["reports"] = list(reports)
    return section, enforcement(record, found.source is RecordSource.AUTHOR)
