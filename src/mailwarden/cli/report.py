"""`mailwarden report send|preview|import|summary`: DMARC reports out and in."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from mailwarden.dkim import load_private_key
from mailwarden.dns import is_domain_name, normalize, parse_ip, to_ascii
from mailwarden.iprev import check_iprev
from mailwarden.pipeline import Pipeline
from mailwarden.reports import ReportKind, ReportStore, open_store
from mailwarden.reports.aggregate import to_xml
from mailwarden.reports.importer import Imported, import_data, watch_maildir
from mailwarden.reports.incoming import Limits
from mailwarden.reports.sender import ReportSender
from mailwarden.reports.summary import CAUSES, summarize
from mailwarden.reports.transport import DirectoryTransport, SendError
from mailwarden.settings import Override, Settings
from mailwarden.signing import Signer

from .common import (
    EXIT_PARTIAL,
    DNSOptions,
    console,
    dns_options,
    fail,
    json_option,
    ordered_map,
    print_json,
)
from .paths import require_writable_dir

T = TypeVar("T")

DAY = 86400


def _settings(
    dns: DNSOptions, data_dir: str | None, extra: dict[str, Override] | None = None
) -> Settings:
    given: dict[str, Override] = dict(extra or {})
    if data_dir is not None:
        given["gateway.data_dir"] = (data_dir, "--data-dir")
    return dns.settings(given)


def _on_store(settings: Settings, work: Callable[[ReportStore], Awaitable[T]]) -> T:
    """Run `work` on the report store the settings name; store errors are one line."""
    store = open_store(settings.reports, settings.gateway.data_dir)

    async def main() -> T:
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except OSError as exc:
        fail(f"cannot use the report store: {exc.strerror or exc}")
    except Exception as exc:
        if type(exc).__module__.startswith(("sqlite3", "psycopg")):
            fail(f"cannot use the report store: {type(exc).__name__}: {exc}")
        raise


def _domain(text: str) -> str:
    try:
        name = normalize(to_ascii(text.strip()))
    except ValueError:
        fail(f"bad --domain {text!r}: not a domain name")
    if not is_domain_name(name):
        fail(f"bad --domain {text!r}: not a domain name")
    return name


def _since(text: str | None, now: float) -> float:
    """--since: 7d, 24h, or an ISO date (UTC)."""
    if text is None:
        return now - 30 * DAY
    match = re.fullmatch(r"([0-9]{1,5})([dh])", text.strip())
    if match:
        amount = int(match.group(1)) * (DAY if match.group(2) == "d" else 3600)
        return now - amount
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        fail(f"bad --since {text!r}: use 7d, 24h or a date such as 2026-01-31")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


data_dir_option = click.option(
    "--data-dir", metavar="DIR", help="Data directory of the report store ([gateway] data_dir)."
)


@click.group()
def report() -> None:
    """DMARC reports: send aggregate (RFC 9990) and failure (RFC 9991) reports, read them."""


@report.command("send")
@click.option("--now", "everything", is_flag=True, help="Send every pending report now.")
@click.option("--dry-run", "dry_run", metavar="DIR", help="Write the reports to DIR instead.")
@data_dir_option
@dns_options
@json_option
def send(
    everything: bool, dry_run: str | None, data_dir: str | None, dns: DNSOptions, as_json: bool
) -> None:
    """Build the reports of the finished days and send those that are due."""
    extra: dict[str, Override] = {}
    if dry_run is not None:
        extra["reports.dry_run"] = (dry_run, "--dry-run")
    settings = _settings(dns, data_dir, extra)
    config = settings.reports
    if not config.send and not config.dry_run:
        click.echo(
            "mailwarden: reports are off ([reports] send = false); --dry-run DIR writes them",
            err=True,
        )
        return
    resolver = dns.build(settings)

    async def work(store: ReportStore) -> tuple[list[Any], list[Any], str | None]:
        sender = ReportSender(
            store,
            config,
            resolver,
            transport=DirectoryTransport(config.dry_run) if config.dry_run else None,
            hostname=settings.gateway.hostname,
            discovery=settings.dmarc.discovery,
            signer=Signer.from_settings(settings),
        )
        built = await sender.build_due()
        try:
            outcomes = await sender.send_due(everything=everything)
            outcomes += await sender.send_failures(authserv_id=settings.gateway.hostname)
        except SendError as exc:
            return built, [], exc.detail
        return built, outcomes, None

    try:
        built, outcomes, problem = _on_store(settings, work)
    except (OSError, ValueError) as exc:  # the DKIM key file
        fail(f"cannot send reports: {exc}")
    if as_json:
        for item in built:
            print_json(
                {
                    "built": item.report_id,
                    "domain": item.domain,
                    "file": item.filename,
                    "messages": item.messages,
                    "bytes": len(item.payload),
                }
            )
        for outcome in outcomes:
            print_json(
                {
                    "report_id": outcome.report_id,
                    "destination": outcome.destination,
                    "status": outcome.status.value,
                    "detail": outcome.detail or None,
                }
            )
    else:
        for item in built:
            click.echo(f"built {item.filename} ({item.messages} messages)")
        for outcome in outcomes:
            click.echo(
                f"{outcome.status.value:12} {outcome.destination} {outcome.report_id} "
                f"{outcome.detail}".rstrip()
            )
    if problem is not None:
        fail(f"reports not sent: {problem}")


@report.command("preview")
@click.option("--domain", required=True, metavar="DOMAIN", help="The Policy Domain.")
@data_dir_option
@dns_options
@json_option
def preview(domain: str, data_dir: str | None, dns: DNSOptions, as_json: bool) -> None:
    """Show the aggregate reports that would be sent for DOMAIN (today so far included)."""
    name = _domain(domain)
    settings = _settings(dns, data_dir)
    resolver = dns.build(settings)

    async def work(store: ReportStore) -> list[Any]:
        sender = ReportSender(
            store,
            settings.reports,
            resolver,
            transport=DirectoryTransport("."),
            hostname=settings.gateway.hostname,
            discovery=settings.dmarc.discovery,
        )
        return await sender.preview(name)

    built = _on_store(settings, work)
    if as_json:
        for item in built:
            print_json(
                {
                    "domain": item.domain,
                    "begin": _iso(item.begin),
                    "skipped": item.skipped or None,
                    "left_out": item.left_out,
                    "destinations": list(item.destinations),
                    "reports": [
                        {
                            "report_id": r.report_id,
                            "messages": r.messages,
                            "rows": [
                                {
                                    "source_ip": row.source_ip,
                                    "count": row.count,
                                    "disposition": row.disposition,
                                    "dkim": row.dkim,
                                    "spf": row.spf,
                                    "header_from": row.header_from,
                                }
                                for row in r.rows
                            ],
                        }
                        for r in item.reports
                    ],
                }
            )
        return
    if not built:
        click.echo(f"mailwarden: nothing recorded for {name}", err=True)
    for item in built:
        if item.skipped:
            click.echo(f"# {_iso(item.begin)}: no report: {item.skipped}")
            continue
        for r in item.reports:
            click.echo(
                f"# {_iso(item.begin)} to {', '.join(item.destinations)}: {r.messages} messages"
            )
            sys.stdout.write(to_xml(r).decode("utf-8"))


@report.command("import")
@click.argument("sources", nargs=-1, required=True, metavar="FILE|DIR|-")
@data_dir_option
@dns_options
@json_option
def import_(sources: tuple[str, ...], data_dir: str | None, dns: DNSOptions, as_json: bool) -> None:
    """Import aggregate and failure reports (files, directories, or - for standard input):
    XML, gzip or zip, bare or in a message. Exit 1 when any was refused."""
    settings = _settings(dns, data_dir)
    config = settings.reports
    limits = Limits(config.max_input_size, config.max_expanded_size)
    inputs: list[tuple[str, Path | None]] = []
    for source in sources:
        if source == "-":
            inputs.append(("-", None))
            continue
        path = Path(source)
        try:
            if path.is_dir():
                inputs += [(str(p), p) for p in sorted(path.rglob("*")) if p.is_file()]
            elif path.exists():
                inputs.append((source, path))
            else:
                fail(f"no such file or directory: {source}")
        except OSError as exc:
            fail(f"cannot read {source}: {exc.strerror or exc}")
    require_writable_dir(settings.gateway.data_dir, "--data-dir")
    resolver = dns.build(settings)

    async def work(store: ReportStore) -> list[Imported]:
        sender = ReportSender(
            store,
            config,
            resolver,
            transport=DirectoryTransport("."),
            hostname=settings.gateway.hostname,
        )
        out: list[Imported] = []

        def emit(line: Imported) -> None:
            out.append(line)
            if as_json:
                print_json(line.to_dict())
            else:
                _show(line)

        for name, path in inputs:
            if path is None:
                data = sys.stdin.buffer.read(limits.input_size + 1)
            else:
                try:
                    size = path.stat().st_size
                    data = b"" if size > limits.input_size else path.read_bytes()
                except OSError as exc:
                    reason = f"cannot read: {exc.strerror or exc}"
                    emit(Imported(name, "refused", reason, _kind_guess(name)))
                    continue
                if size > limits.input_size:  # refused for its size, unread
                    reason = f"larger than {limits.input_size} bytes"
                    emit(Imported(name, "refused", reason, _kind_guess(name)))
                    continue
            for line in await import_data(
                store, data, name, now=time.time(), limits=limits, bounces=sender.handle_bounce
            ):
                emit(line)
        return out

    lines = _on_store(settings, work)
    if any(line.status == "refused" for line in lines):
        sys.exit(EXIT_PARTIAL)


def _kind_guess(name: str) -> ReportKind:
    """A file that cannot be read is counted as an aggregate report (most are)."""
    return ReportKind.AGGREGATE


def _show(line: Imported) -> None:
    if line.status == "refused":
        click.echo(f"refused    {line.file}: {line.reason}")
    else:
        click.echo(
            f"{line.status:10} {line.kind.value:9} {line.domain} from {line.org_name} "
            f"({line.messages} messages, {line.report_id})"
        )


@report.command("summary")
@click.option("--domain", required=True, metavar="DOMAIN", help="The domain reported on.")
@click.option("--since", metavar="WHEN", help="7d, 24h or a date (UTC). [default: 30d]")
@click.option("--no-dns", is_flag=True, help="Do not look up the sources' reverse names.")
@data_dir_option
@dns_options
@json_option
def summary_(
    domain: str,
    since: str | None,
    no_dns: bool,
    data_dir: str | None,
    dns: DNSOptions,
    as_json: bool,
) -> None:
    """What the imported reports say about DOMAIN: every source, and the failing ones by
    likely cause (forwarder, unsigned service of yours, spoofer)."""
    name = _domain(domain)
    now = time.time()
    start = _since(since, now)
    settings = _settings(dns, data_dir)
    resolver = None if no_dns else dns.build(settings)

    async def work(store: ReportStore) -> Any:
        rows = await store.imported_rows(domain=name, since=start)
        reverse: dict[str, str] = {}
        if resolver is not None:
            addresses = sorted({r.row.source_ip for r in rows})

            async def look(address: str) -> tuple[str, str]:
                try:
                    async with asyncio.timeout(10):
                        result = await check_iprev(resolver, parse_ip(address))
                except (TimeoutError, ValueError):
                    return address, ""
                return address, result.name or ""

            async for address, found in ordered_map(addresses, look, concurrency=32):
                reverse[address] = found
        failures = await store.imported_failures(domain=name, since=start)
        return summarize(name, rows, reverse), len(failures)

    result, failures = _on_store(settings, work)
    data = result.to_dict()
    data["since"] = _iso(start)
    data["failure_reports"] = failures
    if as_json:
        print_json(data)
        return
    out = console()
    rate = data["pass_rate"]
    out.print(
        f"{name}: {data['messages']} messages in {data['reports']} reports since "
        f"{data['since']}, DMARC pass rate {'-' if rate is None else f'{rate:.1%}'}; "
        f"{failures} failure reports"
    )
    for source in result.sources[:50]:
        out.print(
            f"  {source.address:39} {source.reverse_name or '-':30} via {source.reporter}: "
            f"{source.messages} messages, {source.passed} pass, SPF aligned "
            f"{source.spf_aligned}, DKIM aligned {source.dkim_aligned}"
        )
    labels = {
        "forwarder": "forwarders",
        "unsigned_service": "unsigned services of yours",
        "spoofer": "spoofers",
    }
    for cause, group in result.failing().items():
        if group:
            out.print(f"failing, likely {labels[cause]}:")
            for source in group:
                out.print(
                    f"  {source.address} ({source.reverse_name or '-'}) via "
                    f"{source.reporter}: {source.failed} failing"
                )
    assert set(labels) == set(CAUSES)


def report_schedule(pipeline: Pipeline, stop: asyncio.Event) -> list[Coroutine[Any, Any, None]]:
    """The reports' work inside a long-running command: the daily schedule (build, send
    what is due) and the watched Maildir, on the store the pipeline records into.
    Nothing when the report address's DKIM key cannot be read (`report_keys_problem` says
    why, at start-up)."""
    recorder = pipeline.recorder
    if recorder is None or not pipeline.runs_schedules:  # one worker process runs it
        return []
    settings = pipeline.settings
    config = settings.reports
    try:
        sender = ReportSender(
            recorder.store,
            config,
            pipeline.resolver,
            clock=pipeline.clock,
            hostname=settings.gateway.hostname,
            discovery=settings.dmarc.discovery,
            signer=Signer.from_settings(settings),
        )
    except (OSError, ValueError):
        return []
    work = [sender.run(stop, authserv_id=pipeline.authserv_id)]
    if config.watch_maildir:
        limits = Limits(config.max_input_size, config.max_expanded_size)
        work.append(
            watch_maildir(
                recorder.store,
                Path(config.watch_maildir),
                stop,
                limits=limits,
                clock=pipeline.clock,
                bounces=sender.handle_bounce,
            )
        )
    return work


def report_keys_problem(settings: Settings) -> str | None:
    """Why the report address's DKIM keys cannot be read (checked when a server starts)."""
    config = settings.reports
    if not (config.send or config.dry_run):
        return None
    try:
        if config.dkim_key:
            load_private_key(Path(config.dkim_key).read_bytes())
        Signer.from_settings(settings)
    except (OSError, ValueError) as exc:
        return f"cannot read the DKIM key of DMARC reports: {exc}"
    return None
