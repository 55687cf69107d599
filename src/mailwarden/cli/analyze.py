"""`mailwarden analyze FILE`: a received message's path, trust boundary, authentication
headers in plain words, and the checks run again now, with what changed since."""

from __future__ import annotations

import time

import click
from rich.table import Table

from mailwarden import runtime
from mailwarden.analyze import Analysis, analyze_message
from mailwarden.analyze import trusted_host as _trusted_host
from mailwarden.dns import IPAddress

from .common import (
    DNSOptions,
    console,
    dns_options,
    fail,
    json_option,
    load_message,
    print_json,
)
from .dkim import parse_now
from .spf import parse_helo, parse_ip_arg, parse_mail_from

EPILOG = """\b
Exit status:
  0   the message was analyzed (whatever its results)
  2   bad input: file, option, zone or config file; nothing was analyzed
"""


@click.command("analyze", epilog=EPILOG)
@click.argument("file")
@click.option(
    "--trusted-host",
    multiple=True,
    metavar="HOST",
    help="A host of the receiving organisation, by name (or domain: its hosts too) or by "
    "address (or network: its addresses too) (repeatable). "
    "[default: the topmost Authentication-Results authserv-id]",
)
@click.option("--ip", help="Re-check SPF for this client address. [default: the boundary's]")
@click.option("--helo", help="HELO name for the SPF check. [default: the boundary's]")
@click.option("--mail-from", help="Envelope sender. [default: Return-Path, else as recorded]")
@click.option(
    "--now", "now_text", metavar="TIMESTAMP", help="Check times and DKIM x= at this time."
)
@click.option(
    "--dnsbl/--no-dnsbl", default=True, show_default=True, help="Check relays on DNS lists."
)
@click.option(
    "--reverify/--no-reverify",
    default=True,
    show_default=True,
    help="Run the checks again now (DNS); without, only read the message.",
)
@json_option
@dns_options
def analyze(
    file: str,
    trusted_host: tuple[str, ...],
    ip: str | None,
    helo: str | None,
    mail_from: str | None,
    now_text: str | None,
    dnsbl: bool,
    reverify: bool,
    as_json: bool,
    dns: DNSOptions,
) -> None:
    """Analyze a received message (RFC 5322 file): the Received chain as hops with delays,
    the trust boundary, every authentication header explained, and DKIM, ARC, SPF, DMARC,
    iprev and DNS lists checked again now, with what changed since it was received."""
    now = parse_now(now_text) if now_text else None
    address: IPAddress | None = None
    try:
        if ip is not None:
            address = parse_ip_arg(ip)
        if helo is not None:
            helo = parse_helo(helo)
        if mail_from is not None:
            mail_from = parse_mail_from(mail_from)
    except ValueError as exc:
        fail(str(exc))
    trusted: list[str] = []
    for name in trusted_host:
        try:
            trusted.append(_trusted_host(name))
        except ValueError as exc:
            fail(f"--trusted-host {exc}")
    message, _ = load_message(file)
    settings = dns.settings()
    lists = settings.dnsbl.selected if dnsbl and reverify else ()
    resolver = dns.build(settings) if reverify else None

    def clock() -> float:
        return time.time() if now is None else now

    analysis = runtime.run(
        analyze_message(
            message,
            resolver,
            trusted_hosts=trusted,
            ip=address,
            helo=helo,
            mail_from=mail_from,
            settings=settings,
            dns_lists=lists,
            clock=clock,
        )
    )
    if as_json:
        print_json({"file": file, **analysis.to_dict()})
        return
    show(analysis)


def _e(text: object) -> str:
    """Text for a rich table cell, with markup brackets escaped."""
    return str(text).replace("[", "\\[")


def show(analysis: Analysis) -> None:
    out = console()
    hops = Table(title="Received chain (oldest first)", title_justify="left")
    for column in ("#", "from", "by", "with", "id", "time", "delay", "notes"):
        hops.add_column(column, overflow="fold")
    boundary = analysis.boundary.hop
    for hop in analysis.hops:
        mark = "*" if hop.index == boundary else ""
        if hop.hop is None:
            hops.add_row(str(hop.index), "-", "-", "-", "-", "-", "-", _e(hop.error))
            continue
        h = hop.hop
        client = h.helo or h.from_name or "-"
        where = f"{h.reverse_name or 'unknown'} [{h.ip}]" if h.ip is not None else ""
        with_text = h.protocol or "-"
        if h.tls is not None:
            tls = " ".join(x for x in (h.tls.version, h.tls.cipher) if x) or "TLS"
            with_text += f" ({tls})"
        delay = "-" if hop.delay is None else f"{hop.delay:+g} s"
        notes = "; ".join([*hop.flags, *h.problems])
        hops.add_row(
            f"{hop.index}{mark}",
            _e(f"{client} {where}".strip()),
            _e(h.by or "-"),
            _e(with_text),
            _e(h.id or "-"),
            _e(h.date.strftime("%Y-%m-%d %H:%M:%S %z") if h.date else h.date_text or "-"),
            delay,
            _e(notes),
        )
    out.print(hops)
    for hop in analysis.hops:
        for note in hop.notes:
            out.print(f"  hop {hop.index}: {note}", markup=False)
    b = analysis.boundary
    out.print(
        f"trust boundary: hop {b.hop if b.hop is not None else '-'} (*), client "
        f"{b.ip or '-'} HELO {b.helo or '-'}, by {b.by or '-'} [{b.method.value}]",
        markup=False,
    )
    out.print(f"  {b.reason}", markup=False)
    for header in analysis.headers:
        trust = {True: " (trusted)", False: " (untrusted)", None: ""}[header.trusted]
        out.print(f"{header.kind} #{header.position}{trust}:", markup=False)
        for line in header.lines:
            out.print(f"  {line}", markup=False)
    now = analysis.reverification
    if now is not None:
        table = Table(
            title=f"Checked again now (client {now.ip or '-'}, {now.ip_source})",
            title_justify="left",
        )
        for column in ("check", "result", "details"):
            table.add_column(column, overflow="fold")
        if now.spf is not None:
            table.add_row("spf", now.spf.result.value, _e(f"{now.spf.domain}: {now.spf.reason}"))
        else:
            table.add_row("spf", "-", "no client address known (give --ip)")
        for result in now.dkim:
            table.add_row(
                "dkim",
                result.result.value,
                _e(f"d={result.domain} s={result.selector}: {result.reason}"),
            )
        if not now.dkim:
            table.add_row("dkim", "none", "no DKIM signature")
        table.add_row("arc", now.arc.result.value, _e(now.arc.reason))
        table.add_row(
            "dmarc",
            now.dmarc.result.value if now.dmarc.evaluated else "not evaluated",
            _e(f"{now.dmarc.domain or '-'}: {now.dmarc.reason}"),
        )
        for relay in now.relays:
            detail = relay.note
            word = "-"
            if relay.iprev is not None:
                word = f"iprev {relay.iprev.result.value}"
                detail = relay.iprev.name or relay.iprev.reason
            listed = [r.list for r in relay.dnsbl.listed] if relay.dnsbl else []
            if listed:
                detail += f"; LISTED on {', '.join(listed)}"
            table.add_row(f"relay {relay.ip} (hop {relay.hop})", word, _e(detail))
        out.print(table)
        for relay in now.relays:
            for hit in relay.dnsbl.listed if relay.dnsbl else ():
                out.print(
                    f"LISTED: relay {relay.ip} (hop {relay.hop}) on {hit.list}"
                    + (f": {hit.reason}" if hit.reason else ""),
                    markup=False,
                )
    if analysis.changes:
        table = Table(title="Since the message was received", title_justify="left")
        for column in ("check", "subject", "then", "now", "note"):
            table.add_column(column, overflow="fold")
        for change in analysis.changes:
            table.add_row(
                change.method,
                _e(change.subject),
                change.then or "-",
                change.now or "-",
                _e(("CHANGED " if change.changed else "") + change.note),
            )
        out.print(table)
        for change in analysis.changes:
            if change.changed:
                out.print(
                    f"CHANGED: {change.method} {change.subject}: {change.then} -> {change.now}"
                    + (f" ({change.note})" if change.note else ""),
                    markup=False,
                )
    out.print(f"summary: {analysis.summary}", markup=False)
