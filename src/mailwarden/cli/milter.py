"""`mailwarden milter`: the checks as a Postfix (or Sendmail) milter."""

from __future__ import annotations

import sys

import click

from mailwarden import runtime
from mailwarden.gateway import TransactionLog
from mailwarden.milter import MilterServer
from mailwarden.pipeline import Pipeline
from mailwarden.settings import ConfigError, Override, Settings

from . import lifecycle
from .common import DNSOptions, dns_options, fail, json_option, print_json, server_pipeline
from .http import Together, http_server
from .paths import require_writable_dir
from .report import report_keys_problem


@click.command()
@click.option(
    "--listen",
    metavar="HOST:PORT|unix:PATH",
    help="Listen here (default 127.0.0.1:11332, or [milter] listen).",
)
@click.option("--data-dir", metavar="DIR", help="Greylist database, report store, spool.")
@click.option(
    "--http",
    "http_listen",
    metavar="HOST:PORT",
    help="Also run the HTTP API and dashboard here (see `mailwarden http`).",
)
@dns_options
@json_option
def milter(
    listen: str | None,
    data_dir: str | None,
    http_listen: str | None,
    dns: DNSOptions,
    as_json: bool,
) -> None:
    """Run the milter for Postfix's smtpd_milters (protocol version 6)."""
    given: dict[str, Override] = {}
    if listen is not None:
        given["milter.listen"] = (listen, "--listen")
    if data_dir is not None:
        given["gateway.data_dir"] = (data_dir, "--data-dir")
    settings = dns.settings(given)
    require_writable_dir(
        settings.gateway.data_dir,
        "--data-dir" if data_dir else f"{settings.source}: gateway.data_dir",
    )
    if (problem := report_keys_problem(settings)) is not None:
        fail(problem)
    _check_budgets(settings)
    pipeline = server_pipeline(settings, dns)
    milter_server = MilterServer(
        settings, pipeline, log_record=TransactionLog(settings.gateway.log_file).write
    )
    api = http_server(settings, pipeline, http_listen) if http_listen is not None else None

    def announce() -> None:
        address = milter_server.address
        info = {"listen": address, "hostname": settings.gateway.hostname}
        if api is not None:
            api_host, api_port = api.address
            info["http"] = (
                f"[{api_host}]:{api_port}" if ":" in api_host else f"{api_host}:{api_port}"
            )
        if as_json:
            print_json(info)
        else:
            click.echo(f"mailwarden milter: listening on {address}", err=True)
            click.echo(
                f"mailwarden milter: main.cf: smtpd_milters = {_postfix_name(address)}",
                err=True,
            )
            if api is not None:
                click.echo(f"mailwarden milter: HTTP API on {info['http']}", err=True)
        sys.stdout.flush()

    async def reload() -> Pipeline:
        """SIGHUP: the settings again (the listener and [milter] need a restart); new SMTP
        sessions get them, those open finish on theirs."""
        fresh = dns.settings(given)
        _check_budgets(fresh)
        new = server_pipeline(fresh, dns)
        if api is not None:  # first: a token that cannot be used keeps everything as it was
            try:
                api.install(fresh, new)
            except ConfigError as exc:
                await new.drain()
                fail(str(exc))
        milter_server.replace(fresh, new)
        return new

    try:
        server = milter_server if api is None else Together(milter_server, api)
        runtime.run(lifecycle.run_until_signalled(server, announce, pipeline, reload=reload))
    except OSError as exc:
        where = [settings.milter.listen]
        if api is not None:
            where.append(f"{api.listen[0]}:{api.listen[1]}")
        fail(f"cannot listen on {' or '.join(where)}: {exc.strerror or exc}")


def _check_budgets(settings: Settings) -> None:
    """Our deadlines must end before Postfix's milter timeouts (exit 2 otherwise)."""
    config, deadlines = settings.milter, settings.deadlines
    for stage, seconds, budget, key in (
        ("rcpt", deadlines.rcpt, config.command_timeout, "command_timeout"),
        ("data", deadlines.data, config.content_timeout, "content_timeout"),
    ):
        if seconds >= budget:  # our answer would come after Postfix gave up
            fail(f"deadlines.{stage} ({seconds:g} s) must be below milter.{key} ({budget:g} s)")


def _postfix_name(address: str) -> str:
    """How main.cf names our socket: inet:host:port or unix:/path."""
    return address if address.startswith("unix:") else f"inet:{address}"
