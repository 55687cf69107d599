"""`mailwarden check`: the full verdict on a message (SPF, DKIM, DMARC, ARC, network checks,
policy), for one message or a manifest of many."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, BinaryIO

import click

from mailwarden import metrics, runtime
from mailwarden.message import MessageError, fold_field, read_message
from mailwarden.pipeline import MessageVerdict, Pipeline, build
from mailwarden.pipeline.inputs import parse_helo, parse_mail_from
from mailwarden.policy import helo_symbols

from .common import (
    DNSOptions,
    LineError,
    console,
    dns_options,
    fail,
    json_option,
    load_message,
    parse_address,
    parse_now,
    print_json,
    run_batch,
    string_field,
)
from .workers import default_workers, run_batch_workers, sender_domain, workers_option

BATCH_CONCURRENCY = 32


def auth_results_field(verdict: MessageVerdict) -> str:
    """Our Authentication-Results field as the gateway writes it (folded, CRLF)."""
    value = verdict.authentication_results.format_value()
    return fold_field("Authentication-Results", value)


@click.command("check")
@click.argument("file", required=False)
@click.option("--ip", help="Client IP address the message came from.")
@click.option("--helo", help="HELO/EHLO name the client gave.")
@click.option("--mail-from", default="", help="Envelope sender; empty for a null reverse-path.")
@click.option("--rcpt", multiple=True, help="Envelope recipient (repeatable).")
@click.option(
    "--hostname", help="Our host name: the authserv-id. [default: [gateway] hostname, this host]"
)
@click.option("--now", "now_text", metavar="TIMESTAMP", help="Check DKIM t=/x= at this time.")
@click.option(
    "--network-checks/--no-network-checks",
    default=True,
    show_default=True,
    help="iprev, HELO and DNS-list checks.",
)
@click.option(
    "--batch",
    type=click.File("rb", lazy=True),  # opened when read: never leaked
    metavar="MANIFEST",
    help='JSON lines {"file", "ip", "helo", "mail_from", "rcpt"} (files relative to it).',
)
@workers_option(cpus_by_default=True)
@json_option
@dns_options
@metrics.counting_nothing()  # no /metrics here: nothing to count for (every call afresh)
def check(
    file: str | None,
    ip: str | None,
    helo: str | None,
    mail_from: str,
    rcpt: tuple[str, ...],
    hostname: str | None,
    now_text: str | None,
    network_checks: bool,
    batch: BinaryIO | None,
    workers: int | None,
    as_json: bool,
    dns: DNSOptions,
) -> None:
    """The full verdict on a message: SPF, DKIM, DMARC, ARC, iprev, HELO, DNS lists, policy.

    Prints every result, the policy's action with its reasons, and the Authentication-Results
    field mailwarden would add.
    """
    now = parse_now(now_text) if now_text else None
    settings = dns.settings({"gateway.hostname": (hostname, "--hostname")} if hostname else {})

    def clock() -> float:
        return time.time() if now is None else now

    if batch is not None:
        if file or ip or helo or mail_from or rcpt:
            fail("--batch takes everything from the manifest: drop FILE, --ip, --helo, ...")
        if not as_json:
            fail("--batch writes JSON lines: add --json")
        name = getattr(batch, "name", "-")
        base = Path(name).parent if name not in ("-", "<stdin>") else Path()

        def make_evaluate() -> Callable[[int, dict[str, Any]], Awaitable[dict[str, Any]]]:
            """The pipeline, built where it runs (in each worker process after the fork)."""
            pipeline = build(
                settings, dns.build(settings), clock=clock, network_checks=network_checks
            )

            async def evaluate(number: int, item: dict[str, Any]) -> dict[str, Any]:
                return await check_item(item, base, pipeline)

            return evaluate

        count = workers if workers is not None else default_workers()
        if count > 1:
            # a problem with the settings is told here, once, not by every worker
            build(settings, dns.build(settings), clock=clock, network_checks=network_checks)
            sys.exit(
                run_batch_workers(
                    batch,
                    make_evaluate,
                    workers=count,
                    concurrency=BATCH_CONCURRENCY,
                    error_fields={"file": None},
                    shard_key=sender_domain,
                )
            )
        sys.exit(
            run_batch(
                batch,
                make_evaluate(),
                concurrency=BATCH_CONCURRENCY,
                error_fields={"file": None},
            )
        )
    if workers is not None:
        fail("--workers goes with --batch (one message is checked in this process)")
    if not file or not ip or not helo:
        fail("FILE, --ip and --helo are required (or --batch MANIFEST)")
    try:
        address = parse_address(ip)
        sender = parse_mail_from(mail_from)
        helo_name = parse_helo(helo)
    except ValueError as exc:
        fail(str(exc))
    message, _ = load_message(file)
    pipeline = build(settings, dns.build(settings), clock=clock, network_checks=network_checks)
    verdict = runtime.run(
        pipeline.check(message, ip=address, helo=helo_name, mail_from=sender, rcpt=rcpt)
    )
    if as_json:
        print_json(verdict.to_dict())
        return
    show_verdict(verdict)


async def check_item(item: dict[str, Any], base: Path, pipeline: Pipeline) -> dict[str, Any]:
    """One manifest line {"file", "ip", "helo", "mail_from", "rcpt"}: its verdict."""
    name = item.get("file")
    try:
        if not isinstance(name, str) or not name:
            raise ValueError('"file" is missing or not a string')
        ip = string_field(item, "ip")
        helo = string_field(item, "helo")
        mail_from_value = item.get("mail_from") or ""
        if not isinstance(mail_from_value, str):
            raise ValueError('"mail_from" is not a string')
        rcpt = item.get("rcpt") or []
        if isinstance(rcpt, str):
            rcpt = [rcpt]
        if not isinstance(rcpt, list) or not all(isinstance(r, str) for r in rcpt):
            raise ValueError('"rcpt" is not a string or a list of strings')
        address = parse_address(ip or "")
        sender = parse_mail_from(mail_from_value)
        helo_name = parse_helo(helo or "")
        path = base / name
        message = read_message(await read_file(path))
    except OSError as exc:
        raise LineError(f"cannot read: {exc.strerror or exc}", file=name) from None
    except (ValueError, MessageError) as exc:  # embedded NUL in the name: a ValueError too
        raise LineError(str(exc), file=name if isinstance(name, str) else None) from None
    verdict = await pipeline.check(message, ip=address, helo=helo_name, mail_from=sender, rcpt=rcpt)
    return {"file": name, **verdict.to_dict()}


INLINE_READ = 1 << 20
"""Regular files up to this size are read in the event loop (from the page cache: 4 us, where
handing the read to a thread costs 25 us of CPU); larger files, FIFOs and devices in a thread."""


async def read_file(path: Path) -> bytes:
    """A manifest's message file, without stalling the other messages' checks on a slow one."""
    status = os.stat(path)
    if stat.S_ISREG(status.st_mode) and status.st_size <= INLINE_READ:
        return path.read_bytes()  # noqa: ASYNC240 (deliberate: see INLINE_READ)
    return await asyncio.to_thread(path.read_bytes)


def show_verdict(verdict: MessageVerdict) -> None:
    from rich.table import Table  # here: a batch never imports rich

    out = console()
    table = Table(title="Authentication and reputation", title_justify="left")
    table.add_column("check")
    table.add_column("result")
    table.add_column("details")
    table.add_row("spf (mail from)", verdict.spf.result.value, verdict.spf.reason)
    table.add_row("spf (helo)", verdict.spf_helo.result.value, verdict.spf_helo.reason)
    if not verdict.dkim:
        table.add_row("dkim", "none", "no DKIM signature")
    for result in verdict.dkim:
        where = f"d={result.domain} s={result.selector}" if result.domain else ""
        table.add_row("dkim", result.result.value, f"{where} {result.reason}".strip())
    dmarc = verdict.dmarc
    table.add_row(
        "dmarc",
        dmarc.result.value,
        f"{dmarc.domain or '-'}: {dmarc.reason} (disposition {dmarc.disposition.value}, "
        f"{dmarc.discovery_method.value})",
    )
    if verdict.arc is None:
        table.add_row("arc", "none", "ARC not checked")
    else:
        table.add_row("arc", verdict.arc.result.value, verdict.arc.reason or "")
    if verdict.iprev is not None:
        iprev = verdict.iprev
        table.add_row("iprev", iprev.result.value, iprev.name or iprev.reason)
    if verdict.helo is not None:
        findings = "; ".join(f"{s.name}: {s.detail}" for s in helo_symbols(verdict.helo))
        table.add_row("helo", verdict.helo.helo.text, findings or "ok")
    for report in [verdict.dnsbl, *verdict.rhsbl.values()]:
        if report is None:
            continue
        for hit in (*report.listed, *report.allowed):
            table.add_row(f"dns list {hit.list}", "listed", f"{report.subject}: {hit.reason}")
    out.print(table, markup=False)
    policy = verdict.policy
    out.print(f"action: {policy.action.value} (score {policy.score:g})", markup=False)
    for reason in policy.reasons:
        out.print(f"  because {reason}", markup=False)
    for symbol in policy.symbols:
        out.print(f"  {symbol.name:<28} {symbol.score:>6g}  {symbol.detail}", markup=False)
    out.print(auth_results_field(verdict), markup=False)
