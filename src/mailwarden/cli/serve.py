"""`mailwarden serve`: the receiving gateway; `mailwarden sink`: a Maildir downstream for demos."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import click

from mailwarden.dmarc import DMARCEvaluator
from mailwarden.dns import Resolver
from mailwarden.dnsbl import DNSListChecker
from mailwarden.gateway import (
    Checks,
    ConfigError,
    Gateway,
    GatewayConfig,
    MaildirRelay,
    TransactionLog,
    load_config,
    parse_hostport,
    sink_config,
)
from mailwarden.greylist import Greylister, GreylistStore, RedisStore, SQLiteStore
from mailwarden.settings import check_settings_from_mapping, greylist_settings_from_mapping
from mailwarden.staged import StagedChecks, StagedOptions
from mailwarden.verdict import Authenticator

from .common import DNSOptions, dns_options, fail, json_option, print_json

ChecksFactory = Callable[[GatewayConfig, Resolver], Checks]


def build_checks(config: GatewayConfig, resolver: Resolver) -> StagedChecks:
    """Every check, by stage: the `[policy]`, `[dnsbl]`, `[dmarc]` and `[greylist]` tables of
    the configuration (embedded defaults without a file: SQLite greylist in the data dir)."""
    settings = check_settings_from_mapping(config.raw, config.source)
    greylisting = greylist_settings_from_mapping(config.raw, config.source)
    dnsbl = DNSListChecker(resolver, settings.dnsbl_lists) if settings.dnsbl_lists else None
    authenticator = Authenticator(
        resolver,
        authserv_id=config.hostname,
        dmarc=DMARCEvaluator(resolver, discovery=settings.dmarc_discovery),
        dnsbl=dnsbl,
        policy=settings.policy,
        trusted_sealers=settings.trusted_sealers,
        our_names=(config.hostname,),
    )
    greylister = None
    if greylisting.enabled:
        store: GreylistStore
        if greylisting.redis_url:
            store = RedisStore.from_url(greylisting.redis_url)
        else:
            Path(config.data_dir).mkdir(parents=True, exist_ok=True)
            store = SQLiteStore(Path(config.data_dir) / "greylist.sqlite3")
        greylister = Greylister(store, config=greylisting.config)
    options = StagedOptions(
        greylist_stage=greylisting.config.stage,
        quarantine_to=config.quarantine_address or None,
    )
    return StagedChecks(authenticator, greylister=greylister, options=options)


def _hostport(option: str, text: str, default_port: int | None = None) -> tuple[str, int]:
    try:
        return parse_hostport(text, default_port)
    except ValueError as exc:
        fail(f"bad {option} {text!r}: {exc}")


def _swaks_hint(config: GatewayConfig, host: str, port: int) -> str:
    domain = config.local_domains[0] if config.local_domains else "example.net"
    return (
        f"swaks --server {host}:{port} --from alice@example.com --to postmaster@{domain} "
        f"--helo mail.example.com"
    )


async def _run_until_signalled(
    gateway: Gateway, announce: Callable[[], None], checks: Checks | None = None
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    background = []
    if isinstance(checks, StagedChecks) and checks.authenticator.dnsbl is not None:
        # RFC 5782 §5 test entries at start and then hourly: a failing list is ignored
        background.append(asyncio.ensure_future(checks.authenticator.dnsbl.health_loop(stop)))
    async with gateway:
        announce()
        await stop.wait()
    for task in background:
        await task
    if isinstance(checks, StagedChecks):
        await checks.authenticator.drain()


@click.command()
@click.option("--config", "config_file", metavar="FILE", help="TOML configuration file.")
@click.option("--listen", metavar="HOST:PORT", help="Listen here (default 127.0.0.1:2525).")
@click.option("--relay-to", metavar="HOST:PORT", help="The downstream mailbox server.")
@click.option(
    "--local-domain", "local_domains", multiple=True, metavar="DOMAIN", help="Accept mail for it."
)
@click.option("--hostname", metavar="NAME", help="Our name (greeting, Received, authserv-id).")
@click.option("--data-dir", metavar="DIR", help="Greylist database, sink Maildir, TLS pair.")
@click.option("--greet-pause", type=click.FloatRange(min=0), metavar="SECONDS")
@dns_options
@json_option
def serve(
    config_file: str | None,
    listen: str | None,
    relay_to: str | None,
    local_domains: tuple[str, ...],
    hostname: str | None,
    data_dir: str | None,
    greet_pause: float | None,
    dns: DNSOptions,
    as_json: bool,
) -> None:
    """Run the receiving SMTP gateway (relays accepted mail downstream before saying 250)."""
    try:
        config = load_config(config_file)
    except ConfigError as exc:
        fail(str(exc))
    changes: dict[str, object] = {}
    if listen:
        changes["listen"] = _hostport("--listen", listen)
    if relay_to:
        changes["relay_to"] = _hostport("--relay-to", relay_to, 25)
    if local_domains:
        changes["local_domains"] = tuple(d.lower().rstrip(".") for d in local_domains)
    if hostname:
        changes["hostname"] = hostname
    if data_dir:
        changes["data_dir"] = data_dir
    if greet_pause is not None:
        changes["greet_pause"] = greet_pause
    config = replace(config, **changes)  # type: ignore[arg-type]
    resolver = dns.build()
    try:
        checks = build_checks(config, resolver)
    except ConfigError as exc:  # [policy], [dnsbl], [dmarc], [greylist]
        fail(str(exc))
    try:
        gateway = Gateway(config, checks)
    except (OSError, ValueError) as exc:
        fail(f"cannot start the gateway: {exc}")

    def announce() -> None:
        host, port = gateway.address
        downstream = (
            f"relaying to {config.relay_to[0]}:{config.relay_to[1]} ({config.protocol})"
            if config.relay_to
            else f"delivering into the built-in sink {config.sink_maildir()}"
        )
        info = {
            "listen": f"{host}:{port}",
            "hostname": config.hostname,
            "local_domains": list(config.local_domains),
            "downstream": downstream,
            "try": _swaks_hint(config, host, port),
        }
        if as_json:
            print_json(info)
        else:
            click.echo(f"mailwarden: listening on {host}:{port} as {config.hostname}", err=True)
            click.echo(f"mailwarden: {downstream}", err=True)
            click.echo(f"mailwarden: send a message with: {info['try']}", err=True)
        sys.stdout.flush()

    try:
        asyncio.run(_run_until_signalled(gateway, announce, checks))
    except OSError as exc:
        fail(f"cannot listen on {config.listen[0]}:{config.listen[1]}: {exc.strerror or exc}")


@click.command()
@click.option("--listen", required=True, metavar="HOST:PORT", help="Listen here.")
@click.option("--maildir", required=True, metavar="DIR", help="Deliver every message here.")
@click.option("--no-fsync", is_flag=True, help="Do not flush each message to disk (benchmarks).")
@json_option
def sink(listen: str, maildir: str, no_fsync: bool, as_json: bool) -> None:
    """A downstream that accepts any message and delivers it into one Maildir."""
    config = sink_config(_hostport("--listen", listen))
    gateway = Gateway(
        config, relay=MaildirRelay(Path(maildir), fsync=not no_fsync), log=TransactionLog("")
    )

    def announce() -> None:
        host, port = gateway.address
        if as_json:
            print_json({"listen": f"{host}:{port}", "maildir": maildir})
        else:
            click.echo(f"mailwarden sink: listening on {host}:{port}, into {maildir}", err=True)
        sys.stdout.flush()

    try:
        asyncio.run(_run_until_signalled(gateway, announce))
    except OSError as exc:
        fail(f"cannot listen on {listen}: {exc.strerror or exc}")
