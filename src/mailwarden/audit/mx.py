"""MX audit: the mail exchangers of a domain, their addresses, forward-confirmed reverse DNS
(iprev, RFC 8601 §3) and DNS-list status (RFC 5782). Lookups run concurrently."""

from __future__ import annotations

import asyncio
from typing import Any

from mailwarden.dns import MX, IPAddress, RdType, Resolver, parse_ip
from mailwarden.dnsbl import DNSListChecker, DNSListReport, ListStatus
from mailwarden.iprev import IprevResult, IprevStatus, check_iprev

from .findings import FindingCode, Outcome, Section, Severity, query

__all__ = ["check_mx"]


def _is_ip_literal(name: str) -> bool:
    try:
        parse_ip(name.strip("[]"))
    except ValueError:
        return False
    return True


async def _address_checks(
    resolver: Resolver, checker: DNSListChecker | None, ip: IPAddress
) -> tuple[IprevResult, DNSListReport | None]:
    if checker is None:
        return await check_iprev(resolver, ip), None
    iprev, report = await asyncio.gather(check_iprev(resolver, ip), checker.check_ip(ip))
    return iprev, report


async def _host(
    resolver: Resolver, checker: DNSListChecker | None, section: Section, record: MX
) -> dict[str, Any]:
    host = record.exchange
    data: dict[str, Any] = {"preference": record.preference, "host": host, "addresses": []}
    if _is_ip_literal(host):
        section.add(
            FindingCode.MX_IP_LITERAL,
            Severity.ERROR,
            f"MX {host} is an address, not a host name: senders cannot use it",
            f"Publish a host name (with an A/AAAA record for {host}) as the MX target.",
            host,
        )
        return data
    a, aaaa, cname = await asyncio.gather(
        query(resolver, host, RdType.A),
        query(resolver, host, RdType.AAAA),
        query(resolver, host, RdType.CNAME),
    )
    if cname.found:  # RFC 2181 §10.3: an MX must not point to an alias
        section.add(
            FindingCode.MX_CNAME,
            Severity.WARNING,
            f"MX {host} is an alias (CNAME); RFC 2181 §10.3 forbids that",
            "Point the MX record at the canonical host name instead of the alias.",
            host,
        )
    addresses: list[IPAddress] = []
    for outcome, rdtype in ((a, RdType.A), (aaaa, RdType.AAAA)):
        if outcome.timed_out:
            section.timeout(host, rdtype, outcome.detail, host)
        elif outcome.answer is not None:
            addresses.extend(outcome.answer.addresses())
    if not addresses:
        if not (a.timed_out or aaaa.timed_out):
            section.add(
                FindingCode.MX_NO_ADDRESS,
                Severity.ERROR,
                f"MX {host} has no A or AAAA record: mail to it cannot be delivered",
                f"Publish an A (and AAAA) record for {host}, or remove this MX record.",
                host,
            )
        return data
    checks = await asyncio.gather(*(_address_checks(resolver, checker, ip) for ip in addresses))
    problems = 0
    for ip, (iprev, report) in zip(addresses, checks, strict=True):
        entry: dict[str, Any] = {
            "ip": str(ip),
            "ptr": list(iprev.names),
            "fcrdns": iprev.result.value,
            "fcrdns_name": iprev.name,
            "dnsbl": None,
        }
        if iprev.result is IprevStatus.TEMPERROR:
            section.timeout(ip.reverse_pointer, RdType.PTR, iprev.reason, str(ip))
            problems += 1
        elif iprev.result is IprevStatus.PERMERROR:
            problems += 1
            section.add(
                FindingCode.MX_NO_PTR,
                Severity.WARNING,
                f"{ip} ({host}) has no reverse DNS (PTR) name; many receivers distrust it",
                f"Ask whoever runs the address ({ip}) to set its PTR record to {host}.",
                str(ip),
            )
        elif iprev.result is IprevStatus.FAIL:
            problems += 1
            section.add(
                FindingCode.MX_FCRDNS_FAIL,
                Severity.WARNING,
                f"{ip} ({host}): its PTR name(s) {', '.join(iprev.names)} do not resolve back "
                "to it (no forward-confirmed reverse DNS)",
                f"Make the PTR name of {ip} resolve to {ip} (an A/AAAA record), e.g. set PTR to "
                f"{host}.",
                str(ip),
            )
        if report is not None:
            entry["dnsbl"] = [
                {"list": r.list, "zone": r.zone, "status": r.status.value, "reason": r.reason}
                for r in report.results
            ]
            for result in report.results:
                if result.status is ListStatus.LISTED and not result.allow:
                    problems += 1
                    section.add(
                        FindingCode.MX_LISTED,
                        Severity.ERROR,
                        f"{ip} ({host}) is listed on {result.list} ({result.zone})"
                        + (f": {result.reason}" if result.reason else ""),
                        f"Find out why (see the list's web site), fix the cause, then ask "
                        f"{result.list} to delist {ip}.",
                        str(ip),
                    )
                elif result.status is ListStatus.TEMPERROR:
                    section.timeout(result.query, RdType.A, result.reason or "no answer", str(ip))
        data["addresses"].append(entry)
    if not problems:
        section.add(
            FindingCode.MX_HOST_OK,
            Severity.OK,
            f"MX {host}: {len(addresses)} address(es), reverse DNS confirmed"
            + (", on no DNS list" if checker is not None else ""),
            subject=host,
        )
    return data


async def check_mx(
    resolver: Resolver, domain: str, checker: DNSListChecker | None = None
) -> Section:
    """The MX section of the audit."""
    section = Section("mx")
    outcome: Outcome = await query(resolver, domain, RdType.MX)
    section.data["hosts"] = []
    if outcome.timed_out:
        section.timeout(domain, RdType.MX, outcome.detail, domain)
        return section
    if outcome.answer is None:
        await _no_mx(resolver, domain, section, outcome)
        return section
    records = sorted(outcome.answer.mx(), key=lambda r: (r.preference, r.exchange))
    if any(r.exchange in ("", ".") for r in records):  # RFC 7505 null MX
        section.data["null_mx"] = True
        if len(records) > 1:
            section.add(
                FindingCode.MX_NULL_MIXED,
                Severity.ERROR,
                "a null MX (0 .) is published together with other MX records",
                "Publish either the null MX alone (the domain takes no mail) or real MX records.",
            )
        else:
            section.add(
                FindingCode.MX_NULL,
                Severity.INFO,
                "null MX (RFC 7505): the domain accepts no mail",
                subject=domain,
            )
        return section
    section.data["null_mx"] = False
    hosts = await asyncio.gather(*(_host(resolver, checker, section, r) for r in records))
    section.data["hosts"] = list(hosts)
    return section


async def _no_mx(resolver: Resolver, domain: str, section: Section, outcome: Outcome) -> None:
    section.data["null_mx"] = False
    if outcome.status.value == "nxdomain":
        section.add(
            FindingCode.DOMAIN_NXDOMAIN,
            Severity.ERROR,
            f"{domain} does not exist in DNS",
            "Check the spelling, or register/delegate the domain.",
            domain,
        )
        return
    a, aaaa = await asyncio.gather(
        query(resolver, domain, RdType.A), query(resolver, domain, RdType.AAAA)
    )
    if a.found or aaaa.found:
        section.add(
            FindingCode.MX_IMPLICIT,
            Severity.WARNING,
            f"{domain} has no MX record: senders fall back to its A/AAAA address "
            "(implicit MX, RFC 5321 §5.1)",
            f"Publish an MX record for {domain} naming the host that receives its mail.",
            domain,
        )
    elif a.timed_out or aaaa.timed_out:
        section.timeout(domain, RdType.A, a.detail or aaaa.detail, domain)
    else:
        section.add(
            FindingCode.MX_NONE,
            Severity.WARNING,
            f"{domain} has no MX and no address: it cannot receive mail (bounces, reports)",
            f'If {domain} takes no mail, say so with a null MX: "{domain}. MX 0 ." (RFC 7505).',
            domain,
        )
