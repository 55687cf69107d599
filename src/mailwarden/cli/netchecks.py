"""`mailwarden iprev`, `mailwarden helo` and `mailwarden dnsbl`: the connection-time checks."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table
from rich.text import Text

from mailwarden import runtime
from mailwarden.dns import IPAddress, is_domain_name, to_ascii
from mailwarden.dnsbl import (
    DEFAULT_LISTS,
    DNSList,
    DNSListChecker,
    DNSListReport,
    ListKind,
    ListStatus,
    ListType,
)
from mailwarden.helo import check_helo
from mailwarden.ipinput import looks_like_ipv4
from mailwarden.iprev import IprevStatus, check_iprev
from mailwarden.pipeline.views import Scorer, dnsbl_dict, helo_dict, iprev_dict, policy_scorer
from mailwarden.policy import dnsbl_symbols, helo_symbols
from mailwarden.symbols import Symbol

from .common import DNSOptions, address_arg, console, dns_options, fail, json_option, print_json

STATUS_STYLE = {
    IprevStatus.PASS: "bold green",
    IprevStatus.FAIL: "bold red",
    IprevStatus.TEMPERROR: "magenta",
    IprevStatus.PERMERROR: "yellow",
}


@click.command("iprev")
@click.argument("ip")
@json_option
@dns_options
def iprev(ip: str, as_json: bool, dns: DNSOptions) -> None:
    """Reverse DNS check of a client address (iprev, RFC 8601 §3).

    Looks up the PTR names of IP and the addresses of each name: pass when one leads back.
    """
    address = address_arg(ip)
    settings = dns.settings()
    result = runtime.run(check_iprev(dns.build(settings), address))
    if as_json:
        print_json(iprev_dict(result, policy_scorer(settings.policy)))
        return
    out = console()
    out.print(f"iprev {result.ip}: [{STATUS_STYLE[result.result]}]{result.result.value}[/]")
    if result.name:
        out.print(f"  confirmed name: {result.name}", markup=False)
    if result.names:
        out.print(f"  PTR names: {', '.join(result.names)}", markup=False)
    if result.reason:
        out.print(f"  reason: {result.reason}", markup=False)


@click.command("helo")
@click.argument("name")
@click.option("--ip", required=True, help="The client's IP address.")
@click.option("--our-name", multiple=True, help="One of our own host names (repeatable).")
@click.option("--our-address", multiple=True, help="One of our own addresses (repeatable).")
@json_option
@dns_options
def helo(
    name: str,
    ip: str,
    our_name: tuple[str, ...],
    our_address: tuple[str, ...],
    as_json: bool,
    dns: DNSOptions,
) -> None:
    """Check a HELO/EHLO name given by the client at --ip: syntax, resolution, match with the
    client and its PTR names, and forgery of our own names. Prints symbols, never rejects."""
    client = address_arg(ip)
    ours = [address_arg(a) for a in our_address]
    settings = dns.settings()
    result = runtime.run(
        check_helo(dns.build(settings), name, client, our_names=our_name, our_addresses=ours)
    )
    score = policy_scorer(settings.policy)
    if as_json:
        print_json(helo_dict(result, score, settings.policy.hard_reject))
        return
    out = console()
    out.print(f"HELO {name!r} from {client} ({result.helo.kind.value})", markup=False)
    _symbol_table(out, helo_symbols(result), score)


def _symbol_table(out: Any, symbols: list[Symbol], score: Scorer) -> None:
    if not symbols:
        out.print("  no findings")
        return
    table = Table()
    table.add_column("symbol")
    table.add_column("score", justify="right")
    table.add_column("detail")
    for symbol in symbols:
        table.add_row(symbol.name, f"{score(symbol):g}", Text(symbol.detail))
    out.print(table)


def report_dict(report: DNSListReport, kind: ListKind, score: Scorer) -> dict[str, Any]:
    """The report's own JSON object (symbols scored by the policy), with the kind asked."""
    return {"subject": report.subject, "kind": kind.value, **dnsbl_dict(report, score)}


def _lists(
    names: tuple[str, ...], zones: tuple[str, ...], allow_zones: tuple[str, ...]
) -> list[DNSList]:
    by_name = {lst.name: lst for lst in DEFAULT_LISTS}
    chosen: dict[str, DNSList] = {}

    def add(lst: DNSList, given: str) -> None:
        """Once each: the same list twice is one; one name for two lists is an error."""
        if chosen.setdefault(lst.name, lst) != lst:
            fail(f"{given!r}: the list {lst.name} is already given as another kind or type")

    for name in names:
        if name not in by_name:
            fail(f"unknown list {name!r} (known: {', '.join(by_name)})")
        add(by_name[name], name)
    for zone, list_type in [(z, ListType.BLOCK) for z in zones] + [
        (z, ListType.ALLOW) for z in allow_zones
    ]:
        kind_text, _, zone_name = zone.rpartition(":")
        kind = ListKind.DOMAIN if kind_text == "domain" else ListKind.IP
        if kind_text not in ("", "ip", "domain") or not is_domain_name(zone_name):
            fail(f"bad zone {zone!r}: expected ZONE, ip:ZONE or domain:ZONE")
        name = zone_name.lower().rstrip(".")
        add(DNSList(name, name, kind=kind, type=list_type), zone)
    return list(chosen.values()) if (names or zones or allow_zones) else list(DEFAULT_LISTS)


@click.command("dnsbl")
@click.argument("subject", required=False)
@click.option(
    "--list",
    "list_names",
    multiple=True,
    metavar="NAME",
    help="Query this built-in list only (repeatable): "
    + ", ".join(lst.name for lst in DEFAULT_LISTS),
)
@click.option(
    "--zone",
    multiple=True,
    metavar="[ip:|domain:]ZONE",
    help="Also query this block list (repeatable).",
)
@click.option("--allow-zone", multiple=True, metavar="[ip:|domain:]ZONE", help="An allow list.")
@click.option("--health", is_flag=True, help="Run the RFC 5782 health checks first.")
@click.option("--show-lists", is_flag=True, help="Describe the built-in lists and what each needs.")
@json_option
@dns_options
def dnsbl(
    subject: str | None,
    list_names: tuple[str, ...],
    zone: tuple[str, ...],
    allow_zone: tuple[str, ...],
    health: bool,
    show_lists: bool,
    as_json: bool,
    dns: DNSOptions,
) -> None:
    """Look an address (DNSBL/DNSWL) or a domain (RHSBL) up in DNS lists.

    Without --list/--zone the built-in lists are used; some need a registered key or a
    non-public resolver: --show-lists says which.
    """
    if show_lists:
        describe_lists(as_json)
        return
    if subject is None:
        fail("give an IP address or a domain (or --show-lists)")
    text = subject.strip()
    kind = ListKind.IP
    address: IPAddress | None = None
    if ":" in text or looks_like_ipv4(text):  # 999.1.1.1 is a bad address, never a domain
        address = address_arg(text)
    else:
        kind = ListKind.DOMAIN
        try:
            domain = to_ascii(text.rstrip(".").lower())
        except ValueError as exc:
            fail(str(exc))
        if not is_domain_name(domain) or "." not in domain:
            fail(f"{subject!r} is neither an IP address nor a domain name")
    lists = [lst for lst in _lists(list_names, zone, allow_zone) if lst.kind is kind]
    if not lists:
        fail(f"no {kind.value} list selected for {subject!r}")
    settings = dns.settings()
    checker = DNSListChecker(dns.build(settings), lists)
    score = policy_scorer(settings.policy)  # the definitions' scores are its defaults

    async def run() -> DNSListReport:
        if health:
            await checker.health_check()
        if address is not None:
            return await checker.check_ip(address)
        return await checker.check_domain(domain)

    report = runtime.run(run())
    if as_json:
        data = report_dict(report, kind, score)
        if health:
            data["health"] = {
                lst.name: {
                    "healthy": checker.health[lst.name].healthy,
                    "reason": checker.health[lst.name].reason,
                    "needs_key": lst.needs_key,
                }
                for lst in lists
            }
        print_json(data)
        return
    out = console()
    table = Table(title=f"DNS lists for {report.subject}", title_justify="left")
    for column in ("list", "status", "codes", "symbols", "reason"):
        table.add_column(column)
    style = {ListStatus.LISTED: "bold red", ListStatus.ERROR: "magenta"}
    for r in report.results:
        status = r.status.value
        if r.status is ListStatus.LISTED and r.allow:
            status = "[bold green]listed (allow)[/]"
        elif r.status in style:
            status = f"[{style[r.status]}]{status}[/]"
        table.add_row(
            r.list,
            status,
            " ".join(str(c) for c in r.codes),
            " ".join(f"{s.name}({score(s):g})" for s in dnsbl_symbols([r])),
            Text(r.reason),
        )
    out.print(table)
    for warning in [*checker.warnings(), *report.warnings]:
        out.print("[yellow]warning[/]: ", end="")
        out.print(warning, markup=False)


def describe_lists(as_json: bool) -> None:
    rows = [
        {
            "name": lst.name,
            "zone": lst.zone,
            "kind": lst.kind.value,
            "type": lst.type.value,
            "ipv6": lst.ipv6,
            "codes": {str(c.pattern): {"symbol": c.symbol, "score": c.score} for c in lst.codes},
            "bitmask": {str(b.bit): {"symbol": b.symbol, "score": b.score} for b in lst.bitmask},
            "needs_key": lst.needs_key,
        }
        for lst in DEFAULT_LISTS
    ]
    if as_json:
        print_json(rows)
        return
    table = Table(title="built-in DNS lists", title_justify="left")
    for column in ("name", "zone", "kind", "type", "symbols", "needs"):
        table.add_column(column)
    for lst in DEFAULT_LISTS:
        symbols = [c.symbol for c in lst.codes] + [b.symbol for b in lst.bitmask]
        table.add_row(
            lst.name,
            lst.zone,
            lst.kind.value,
            lst.type.value,
            " ".join(dict.fromkeys(symbols)),
            Text(lst.needs_key or "nothing (free, through your own resolver)"),
        )
    console().print(table)
