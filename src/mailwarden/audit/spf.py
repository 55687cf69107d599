"""SPF audit (RFC 7208): the domain's record, the whole include tree with its DNS lookup count
(also the part past the limit of 10 that evaluation never reaches), void lookups, risky terms
(+all, ?all, ptr, too-wide ranges) and duplicate records. Built on `spf.explain_policy`."""

from __future__ import annotations

import asyncio

from mailwarden.dns import RdType, Resolver
from mailwarden.spf import SPFLimits
from mailwarden.spf.explain import Explanation, NodeError, PolicyNode, explain_policy
from mailwarden.spf.record import (
    MechanismKind,
    Qualifier,
    SPFSyntaxError,
    is_spf_record,
    parse_record,
)

from .findings import FindingCode, Outcome, Section, Severity, query

__all__ = ["RECORD_SIZE_ADVICE", "check_spf", "lookups_past_limit"]

RECORD_SIZE_ADVICE = 450  # RFC 7208 §3.4: keep the answer within a 512-byte UDP message
_WIDE_IPV4 = 16  # prefixes shorter than these authorize more than 65,536 / 2^96 addresses
_WIDE_IPV6 = 32


def lookups_past_limit(root: PolicyNode, limit: int) -> list[str]:
    """The DNS-querying terms, in evaluation order, that come after the `limit`-th lookup:
    evaluation stops with permerror before them (RFC 7208 §4.6.4)."""
    past: list[str] = []
    count = 0

    def walk(node: PolicyNode) -> None:
        nonlocal count
        children = iter(node.children)
        for term in node.terms:
            if not term.dns_lookups:
                continue
            count += term.dns_lookups
            if count > limit:
                past.append(f"{node.domain or '(record)'}: {term.term}")
            if term.kind == "include" or term.term.lower().startswith("redirect="):
                child = next(children, None)
                if child is not None:
                    walk(child)

    walk(root)
    return past


def _nodes(node: PolicyNode) -> list[PolicyNode]:
    out = [node]
    for child in node.children:
        out.extend(_nodes(child))
    return out


def _check_terms(section: Section, node: PolicyNode, is_root: bool) -> None:
    if node.record is None or node.error:
        return
    try:
        record = parse_record(node.record)
    except SPFSyntaxError:  # explain reported it as the node's error already
        return
    where = node.domain or "the record"
    for mech in record.mechanisms:
        if mech.kind is MechanismKind.ALL and mech.qualifier is Qualifier.PASS:
            section.add(
                FindingCode.SPF_PASS_ALL,
                Severity.ERROR,
                f"{where}: '{mech.text}' lets every host on the Internet pass SPF",
                "Replace +all with -all (or ~all while you are still finding your senders).",
                where,
            )
        if mech.kind is MechanismKind.PTR:
            section.add(
                FindingCode.SPF_PTR,
                Severity.WARNING,
                f"{where}: '{mech.text}' uses ptr: slow, unreliable, and RFC 7208 §5.5 says "
                "not to use it; many receivers ignore it",
                "Replace ptr with ip4:/ip6: ranges (or a:) of the hosts it was meant to cover.",
                where,
            )
        network = mech.network
        if network is not None and mech.qualifier is Qualifier.PASS:
            limit = _WIDE_IPV4 if network.version == 4 else _WIDE_IPV6
            if network.prefixlen == 0:
                section.add(
                    FindingCode.SPF_PASS_ALL,
                    Severity.ERROR,
                    f"{where}: '{mech.text}' authorizes every address: same as +all",
                    "Remove it and list the networks that really send your mail.",
                    where,
                )
            elif network.prefixlen < limit:
                section.add(
                    FindingCode.SPF_WIDE_RANGE,
                    Severity.WARNING,
                    f"{where}: '{mech.text}' authorizes {network.num_addresses:,} addresses",
                    "List only the addresses of your mail servers (a /24 or smaller for IPv4, "
                    "a /48 or smaller for IPv6 is normally enough).",
                    where,
                )
    if not is_root:
        return
    last_all = next((m for m in record.mechanisms if m.kind is MechanismKind.ALL), None)
    if last_all is None and record.redirect is None:
        section.add(
            FindingCode.SPF_NO_ALL,
            Severity.WARNING,
            f"{where}: no 'all' and no redirect: senders not listed get neutral",
            "End the record with -all (or ~all).",
            where,
        )
    elif last_all is not None and last_all.qualifier is Qualifier.NEUTRAL:
        section.add(
            FindingCode.SPF_NEUTRAL_ALL,
            Severity.WARNING,
            f"{where}: '?all' gives senders not listed neutral: no protection",
            "End the record with -all (or ~all while you are still finding your senders).",
            where,
        )
    elif last_all is not None and last_all.qualifier is Qualifier.SOFTFAIL:
        section.add(
            FindingCode.SPF_SOFTFAIL_ALL,
            Severity.INFO,
            f"{where}: '~all' marks senders not listed as suspicious but does not reject",
            "Once every sender is listed (see DMARC reports), use -all.",
            where,
        )


def _check_tree(section: Section, explanation: Explanation, limits: SPFLimits) -> None:
    root = explanation.root
    for node in _nodes(root):
        if node is not root and node.error:
            code = node.error_code
            if code is NodeError.DNS_ERROR:
                section.timeout(node.domain, RdType.TXT, node.error, node.domain)
            elif code is NodeError.LOOP:
                section.add(
                    FindingCode.SPF_INCLUDE_LOOP,
                    Severity.ERROR,
                    f"{node.via} leads back to {node.domain}: an include loop (permerror)",
                    f"Remove {node.via} from the record that includes it a second time.",
                    node.domain,
                )
            elif code in (NodeError.NO_RECORD, NodeError.NO_DOMAIN):
                section.add(
                    FindingCode.SPF_INCLUDE_MISSING,
                    Severity.ERROR,
                    f"{node.via} points to {node.domain}, which has no SPF record "
                    f"({node.error}): every check ends in permerror",
                    f"Remove {node.via}, or fix the name (ask the provider for the right one).",
                    node.domain,
                )
            elif code in (NodeError.MULTIPLE_RECORDS, NodeError.SYNTAX_ERROR):
                section.add(
                    FindingCode.SPF_INCLUDE_BROKEN,
                    Severity.ERROR,
                    f"{node.via}: {node.domain}: {node.error}",
                    f"Ask the owner of {node.domain} to fix its record, or stop including it.",
                    node.domain,
                )
        _check_terms(section, node, node is root)
    lookups = explanation.dns_lookups
    if lookups > limits.dns_mechanisms:
        past = lookups_past_limit(root, limits.dns_mechanisms)
        section.add(
            FindingCode.SPF_TOO_MANY_LOOKUPS,
            Severity.ERROR,
            f"{lookups} DNS lookups in all, more than {limits.dns_mechanisms}: evaluation "
            f"stops with permerror before {', '.join(past)}",
            "Remove includes you no longer use, replace a/mx with ip4:/ip6: ranges, or ask "
            "providers for narrower includes, until the count is 10 or less.",
        )
    elif lookups >= limits.dns_mechanisms - 1:
        section.add(
            FindingCode.SPF_LOOKUPS_NEAR_LIMIT,
            Severity.INFO,
            f"{lookups} DNS lookups of {limits.dns_mechanisms}: one more include will break it",
            "Keep room: replace a/mx with ip4:/ip6: where the addresses are stable.",
        )
    voids = explanation.void_lookups
    if voids > limits.void_lookups:
        section.add(
            FindingCode.SPF_VOID_LOOKUPS,
            Severity.ERROR,
            f"{voids} void lookups (names without records), more than {limits.void_lookups}: "
            "permerror (RFC 7208 §4.6.4)",
            "Remove the a:/mx:/include: terms that name hosts or domains that no longer exist.",
        )
    elif voids:
        section.add(
            FindingCode.SPF_VOID_LOOKUPS,
            Severity.WARNING,
            f"{voids} void lookup(s): terms name hosts without records",
            "Remove the a:/mx: terms that name hosts that no longer exist.",
        )
    for finding in explanation.findings:
        text = finding.message
        if "DNS lookup of" in text and "failed" in text:
            section.add(
                FindingCode.SPF_DNS_TIMEOUT,
                Severity.WARNING,
                f"{text}: timed out or failed, not checked",
                "Run the check again; if it keeps failing, check those name servers.",
            )
        elif "MX records, more than" in text:
            section.add(
                FindingCode.SPF_MX_TOO_MANY,
                Severity.ERROR,
                text,
                "Use ip4:/ip6: for the senders instead of mx, or reduce the MX records to 10.",
            )


async def check_spf(resolver: Resolver, domain: str, limits: SPFLimits | None = None) -> Section:
    """The SPF section of the audit."""
    limits = limits or SPFLimits()
    section = Section("spf")
    txt, explanation = await _fetch(resolver, domain, limits)
    records = []
    if txt.answer is not None:
        records = [
            t.joined.decode("ascii", "replace") for t in txt.answer.txt() if is_spf_record(t.joined)
        ]
    section.data.update(
        record=records[0] if len(records) == 1 else None,
        records=records,
        dns_lookups=explanation.dns_lookups,
        dns_lookup_limit=limits.dns_mechanisms,
        void_lookups=explanation.void_lookups,
        past_limit=lookups_past_limit(explanation.root, limits.dns_mechanisms),
        tree=explanation.root.to_dict(),
    )
    if txt.timed_out:
        section.timeout(domain, RdType.TXT, txt.detail, domain)
        return section
    if not records:
        section.add(
            FindingCode.SPF_NONE,
            Severity.ERROR,
            f"{domain} publishes no SPF record: receivers cannot tell your servers from forgers",
            f'Publish a TXT record at {domain}: "v=spf1 mx -all" (adjust to your senders; '
            'see `mailwarden spf build`), or "v=spf1 -all" if the domain sends no mail.',
            domain,
        )
        return section
    if len(records) > 1:
        section.add(
            FindingCode.SPF_MULTIPLE_RECORDS,
            Severity.ERROR,
            f"{domain} publishes {len(records)} SPF records: every check gives permerror "
            "(RFC 7208 §4.5)",
            "Merge them into one v=spf1 record and delete the others.",
            domain,
        )
        return section
    root = explanation.root
    if root.error_code is NodeError.SYNTAX_ERROR:
        section.add(
            FindingCode.SPF_SYNTAX,
            Severity.ERROR,
            f"{domain}: {root.error}: every check gives permerror",
            "Fix the record (see `mailwarden spf explain` and `mailwarden spf build`).",
            domain,
        )
        return section
    if len(records[0].encode()) > RECORD_SIZE_ADVICE:
        section.add(
            FindingCode.SPF_RECORD_SIZE,
            Severity.INFO,
            f"the record is {len(records[0].encode())} bytes: answers over 512 bytes need "
            "TCP, which some resolvers do not retry (RFC 7208 §3.4)",
            "Shorten it: merge ranges, drop unused includes.",
            domain,
        )
    _check_tree(section, explanation, limits)
    if not any(f.severity in (Severity.WARNING, Severity.ERROR) for f in section.findings):
        section.add(
            FindingCode.SPF_OK,
            Severity.OK,
            f"one valid SPF record, {explanation.dns_lookups} DNS lookups of "
            f"{limits.dns_mechanisms}",
            subject=domain,
        )
    return section


async def _fetch(resolver: Resolver, domain: str, limits: SPFLimits) -> tuple[Outcome, Explanation]:
    txt, explanation = await asyncio.gather(
        query(resolver, domain, RdType.TXT), explain_policy(resolver, domain=domain, limits=limits)
    )
    return txt, explanation
