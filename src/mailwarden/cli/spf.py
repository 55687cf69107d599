"""`mailwarden spf ...`: check senders against SPF policies and explain policies."""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import Any, BinaryIO

import click
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from mailwarden import runtime
from mailwarden.dns import IPAddress, Resolver, TemporaryFailure, is_domain_name, to_ascii
from mailwarden.pipeline.inputs import parse_helo as parse_helo
from mailwarden.pipeline.inputs import parse_mail_from as parse_mail_from
from mailwarden.spf import (
    SPFChecker,
    SPFResult,
    SPFStatus,
    received_spf,
)
from mailwarden.spf.explain import Explanation, PolicyNode, Severity, explain_policy

from .common import (
    DNSOptions,
    LineError,
    console,
    dns_options,
    fail,
    json_option,
    parse_address,
    print_json,
    run_batch,
    string_field,
)

BATCH_CONCURRENCY = 64

RESULT_STYLE = {
    SPFStatus.PASS: "bold green",
    SPFStatus.FAIL: "bold red",
    SPFStatus.SOFTFAIL: "yellow",
    SPFStatus.NEUTRAL: "cyan",
    SPFStatus.NONE: "dim",
    SPFStatus.TEMPERROR: "magenta",
    SPFStatus.PERMERROR: "bold magenta",
}


@click.group()
def spf() -> None:
    """SPF (RFC 7208): check a sender, explain a policy."""


def parse_ip_arg(text: str) -> IPAddress:
    """The client address (one parser for every command: see `parse_address`)."""
    return parse_address(text)


def default_receiver() -> str:
    return socket.getfqdn() or "unknown"


def check_dict(mailfrom: SPFResult, helo: SPFResult | None, receiver: str) -> dict[str, Any]:
    """The JSON object of one check: the MAIL FROM identity, with the HELO one nested (null
    when no HELO name was given)."""
    out = mailfrom.to_dict(receiver)
    helo_out = None
    if helo is not None:
        helo_out = helo.to_dict(receiver)
        del helo_out["identity"]
    out["helo"] = helo_out
    return out


async def check_both(
    checker: SPFChecker, ip: IPAddress, mail_from: str, helo: str | None
) -> tuple[SPFResult, SPFResult | None]:
    """MAIL FROM and (when a HELO name is known) HELO, concurrently."""
    if helo is None:
        return await checker.check_mailfrom(ip, mail_from, ""), None
    mailfrom_result, helo_result = await asyncio.gather(
        checker.check_mailfrom(ip, mail_from, helo), checker.check_helo(ip, helo)
    )
    return mailfrom_result, helo_result


def parse_identities(
    ip: str, mail_from: str, helo: str | None
) -> tuple[IPAddress, str, str | None]:
    """The checked inputs of one check; ValueError saying what is wrong. A null reverse-path
    is checked as postmaster@HELO (RFC 7208 §2.4), so it needs the HELO name."""
    address = parse_ip_arg(ip)
    sender = parse_mail_from(mail_from)
    helo_name = parse_helo(helo) if helo is not None else None
    if not sender and helo_name is None:
        raise ValueError(
            "a null reverse-path is checked as postmaster@HELO (RFC 7208 §2.4): give the HELO"
        )
    return address, sender, helo_name


@spf.command("check")
@click.option("--ip", help="Client IP address (IPv4 or IPv6).")
@click.option("--mail-from", default="", help="Envelope sender; empty for a null reverse-path.")
@click.option("--helo", help="HELO/EHLO name the client gave (needed for a null reverse-path).")
@click.option("--receiver", help="Our host name, for %{r} and the headers. [default: this host]")
@click.option(
    "--batch",
    type=click.File("rb", lazy=True),  # opened when read: never leaked
    metavar="FILE",
    help='JSON lines {"ip", "mail_from", "helo"} (- for stdin): one JSON result per line.',
)
@json_option
@dns_options
def check(
    ip: str | None,
    mail_from: str,
    helo: str | None,
    receiver: str | None,
    batch: BinaryIO | None,
    as_json: bool,
    dns: DNSOptions,
) -> None:
    """Check a client against the MAIL FROM and HELO identities' SPF policies.

    Prints both results (MAIL FROM only without --helo), the explanation (the policy's exp=
    text) and the Received-SPF header. A malformed domain gives "none" (RFC 7208 §4.3).
    """
    receiver = receiver or default_receiver()
    if batch is not None:
        if ip or helo or mail_from:
            fail("--batch takes its addresses from the file: drop --ip, --mail-from and --helo")
        if not as_json:
            fail("--batch writes JSON lines: add --json")
        checker = SPFChecker(dns.build(), receiver=receiver)

        async def evaluate(number: int, item: dict[str, Any]) -> dict[str, Any]:
            return await evaluate_item(item, checker, receiver)

        sys.exit(run_batch(batch, evaluate, concurrency=BATCH_CONCURRENCY))
    if not ip:
        fail("--ip is required (or --batch FILE)")
    try:
        address, sender, helo_name = parse_identities(ip, mail_from, helo)
    except ValueError as exc:
        fail(str(exc))
    checker = SPFChecker(dns.build(), receiver=receiver)
    mailfrom_result, helo_result = runtime.run(check_both(checker, address, sender, helo_name))
    if as_json:
        print_json(check_dict(mailfrom_result, helo_result, receiver))
        return
    show_check(mailfrom_result, helo_result, receiver)


def show_check(mailfrom: SPFResult, helo: SPFResult | None, receiver: str) -> None:
    out = console()
    table = Table(title=f"SPF for {mailfrom.ip}", title_justify="left")
    table.add_column("identity")
    table.add_column("checked")
    table.add_column("result")
    table.add_column("why")
    table.add_column("DNS", justify="right")
    for result in (mailfrom, helo):
        if result is None:
            continue
        table.add_row(
            result.identity.value,
            Text(result.sender if result.identity.value == "mailfrom" else result.helo),
            f"[{RESULT_STYLE[result.result]}]{result.result.value}[/]",
            Text(result.reason),
            str(result.dns_queries),
        )
    out.print(table)
    if mailfrom.explanation is not None:
        out.print(f"explanation: {mailfrom.explanation}", markup=False)
    out.print(received_spf(mailfrom, receiver), markup=False)


async def evaluate_item(item: dict[str, Any], checker: SPFChecker, receiver: str) -> dict[str, Any]:
    """One batch line {"ip", "mail_from", "helo"}: the same rules as the command's options."""
    try:
        ip = string_field(item, "ip")
        helo = string_field(item, "helo", required=False)
        mail_from = item.get("mail_from") or ""
        if not isinstance(mail_from, str):
            raise ValueError('"mail_from" is not a string')
        address, sender, helo_name = parse_identities(ip or "", mail_from, helo)
    except ValueError as exc:
        raise LineError(str(exc)) from None
    mailfrom_result, helo_result = await check_both(checker, address, sender, helo_name)
    return check_dict(mailfrom_result, helo_result, receiver)


@spf.command("explain")
@click.argument("record_or_domain")
@json_option
@dns_options
def explain(record_or_domain: str, as_json: bool, dns: DNSOptions) -> None:
    """Explain an SPF record, or the one a domain publishes, term by term.

    Shows what each term allows, the DNS lookup count with the include tree (also past the
    limit of 10), and warnings: too many lookups, ptr, +all, no all, void lookups.
    """
    text = record_or_domain.strip()
    resolver: Resolver = dns.build()
    if text[:6].lower() == "v=spf1":
        explanation = runtime.run(explain_policy(resolver, record=text))
    else:
        try:
            domain = to_ascii(text.rstrip(".").lower())
        except ValueError as exc:
            fail(str(exc))
        if not is_domain_name(domain):
            fail(f"{text!r} is neither an SPF record (v=spf1 ...) nor a domain name")
        try:
            explanation = runtime.run(explain_policy(resolver, domain=domain))
        except TemporaryFailure as exc:  # pragma: no cover - explain_policy reports these
            fail(str(exc))
    if as_json:
        print_json(explanation.to_dict())
        return
    show_explanation(explanation)


def show_explanation(explanation: Explanation) -> None:
    out = console()
    root = explanation.root
    if root.domain:
        out.print(f"SPF policy of [bold]{root.domain}[/]")
    if root.record:
        out.print(f"  {root.record}", markup=False)
    if root.terms:
        table = Table(show_header=True)
        table.add_column("term")
        table.add_column("on match")
        table.add_column("meaning")
        table.add_column("lookups", justify="right")
        for term in root.terms:
            table.add_row(term.term, term.result or "-", term.description, str(term.dns_lookups))
        out.print(table)
    limit_style = "bold red" if explanation.dns_lookups > 10 else "green"
    tree = Tree(
        f"DNS lookups: [{limit_style}]{explanation.dns_lookups}[/] of 10, "
        f"void lookups: {explanation.void_lookups} of 2"
    )
    add_branch(tree, root)
    out.print(tree)
    if not explanation.findings:
        out.print("[green]no problems found[/]")
    for finding in explanation.findings:
        style = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
        out.print(f"[{style[finding.severity]}]{finding.severity.value}[/]: ", end="")
        out.print(finding.message, markup=False)


def add_branch(tree: Tree, node: PolicyNode) -> None:
    label = f"{node.via} -> " if node.via else ""
    label += f"{node.domain or '(record)'}: {node.own_lookups} lookups"
    if node.children:
        label += f", {node.total_lookups} with includes"
    if node.error:
        label += f" ({node.error})"
    branch = tree.add(label)
    for child in node.children:
        add_branch(branch, child)
