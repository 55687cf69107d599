"""`mailwarden milter`: the checks as a Postfix (or Sendmail) milter."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from dataclasses import replace
from pathlib import Path

import click

from mailwarden import runtime
from mailwarden.gateway import TransactionLog
from mailwarden.gateway.admission import SharedAdmission
from mailwarden.milter import MilterServer
from mailwarden.milter.server import unix_listener
from mailwarden.pipeline import Pipeline
from mailwarden.settings import ConfigError, Override, Settings

from . import lifecycle
from .common import DNSOptions, dns_options, fail, json_option, print_json, server_pipeline
from .http import Together, http_server
from .paths import require_writable_dir
from .report import report_keys_problem
from .workers import InStep, Worker, default_workers, reserve_port, supervise, workers_option


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
@workers_option(cpus_by_default=True)
@dns_options
@json_option
def milter(
    listen: str | None,
    data_dir: str | None,
    http_listen: str | None,
    workers: int | None,
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
    count = workers if workers is not None else default_workers()
    if count > 1:
        sys.exit(_milter_workers(settings, given, dns, http_listen, count, as_json))
    _run_milter(settings, given, dns, http_listen, as_json)


def _run_milter(
    settings: Settings,
    given: dict[str, Override],
    dns: DNSOptions,
    http_listen: str | None,
    as_json: bool,
    *,
    worker: Worker | None = None,
    admission: SharedAdmission | None = None,
    sock: socket.socket | None = None,
) -> None:
    """The milter in this process, or as `worker` of several (`milter --workers`): then its
    own spool, `[milter] max_connections` counted with the other workers (`admission`), the
    TCP port shared or the Unix socket inherited (`sock`), the DMARC reports' schedule and the
    HTTP API in worker 0 only; the worker tells the supervisor where it listens and how each
    reload went, takes the settings of the last reload for its checks, and stops accepting
    in step with the other workers (as `serve --workers`)."""
    index = None if worker is None else worker.index
    # the checks' settings: those of the last reload in force, if any (the listener and
    # [milter] keep those of the start, as in a reload)
    checked: Settings = settings if worker is None or worker.state is None else worker.state
    pipeline = server_pipeline(checked, dns)
    pipeline.runs_schedules = not index
    spool = None
    if index is not None:
        spool = Path(settings.gateway.data_dir) / "milter-spool" / f"worker-{index}"
    milter_server = MilterServer(
        settings,
        pipeline,
        spool_dir=spool,
        log_record=TransactionLog(settings.gateway.log_file).write,
        sock=sock,
        reuse_port=index is not None,
        admission=admission,
    )
    milter_server.replace(checked, pipeline)
    api = None
    if http_listen is not None and not index:
        api = http_server(checked, pipeline, http_listen)

    def announce() -> None:
        http = api.address_text if api is not None else None
        if worker is not None:  # the supervisor announces
            worker.listening(milter_server.address, 0, http or "")
            return
        _announce(settings, milter_server.address, as_json, http)

    reloaded: list[Settings] = []  # a worker's last reload, handed to the supervisor

    async def reload() -> Pipeline:
        """SIGHUP: the settings again (the listener and [milter] need a restart); new SMTP
        sessions get them, those open finish on theirs."""
        fresh = dns.settings(given)
        _check_budgets(fresh)
        new = server_pipeline(fresh, dns)
        new.runs_schedules = not index
        if api is not None:  # first: a token that cannot be used keeps everything as it was
            try:
                api.install(fresh, new)
            except ConfigError as exc:
                await new.drain()
                fail(str(exc))
        milter_server.replace(fresh, new)
        reloaded[:] = [fresh]
        return new

    told = None
    if worker is not None:

        def told(text: str, in_force: bool) -> None:
            worker.reloaded(text, reloaded[-1] if in_force and reloaded else None)

    try:
        both = milter_server if api is None else Together(milter_server, api)
        server = both if worker is None else InStep(both, milter_server, worker)
        runtime.run(
            lifecycle.run_until_signalled(server, announce, pipeline, reload=reload, told=told)
        )
    except OSError as exc:
        where = [settings.milter.listen]
        if api is not None:
            where.append(f"{api.listen[0]}:{api.listen[1]}")
        fail(f"cannot listen on {' or '.join(where)}: {exc.strerror or exc}")


def _announce(
    settings: Settings, address: str, as_json: bool, http: str | None, workers: int = 1
) -> None:
    """Where the milter listens (once every worker does, with `workers` > 1; the HTTP API,
    at `http`, runs in worker 0), and the main.cf line that names it."""
    info: dict[str, object] = {"listen": address, "hostname": settings.gateway.hostname}
    if workers > 1:
        info["workers"] = workers
    if http is not None:
        info["http"] = http
    if as_json:
        print_json(info)
    else:
        where = address if workers == 1 else f"{address} ({workers} worker processes)"
        click.echo(f"mailwarden milter: listening on {where}", err=True)
        click.echo(
            f"mailwarden milter: main.cf: smtpd_milters = {_postfix_name(address)}", err=True
        )
        if http is not None:
            api = http if workers == 1 else f"{http} (worker 0)"
            click.echo(f"mailwarden milter: HTTP API on {api}", err=True)
    sys.stdout.flush()


def _milter_workers(
    settings: Settings,
    given: dict[str, Override],
    dns: DNSOptions,
    http_listen: str | None,
    workers: int,
    as_json: bool,
) -> int:
    """`milter --workers N`: N milter processes under a supervisor (cli/workers.py), on one
    TCP port (SO_REUSEPORT, the port reserved here) or one Unix socket (bound here, inherited
    by the workers, closed as the stop begins and removed at the end); `[milter]
    max_connections` holds across them (`SharedAdmission`)."""
    listen = settings.milter.listen
    sock: socket.socket | None = None
    path = listen.removeprefix("unix:") if listen.startswith("unix:") else None
    try:
        if path is not None:
            sock = unix_listener(path)
            address = listen
        else:
            host, _, port = listen.rpartition(":")
            host = host.strip("[]")
            reserved, bound = reserve_port(host, int(port))
            sock = reserved
            address = f"[{host}]:{bound}" if ":" in host else f"{host}:{bound}"
    except OSError as exc:
        fail(f"cannot listen on {listen}: {exc.strerror or exc}")
    settings = replace(settings, milter=replace(settings.milter, listen=address))
    limit = settings.milter.max_connections
    admission = SharedAdmission(workers, limit, limit)
    inherited = sock if path is not None else None

    # where worker 0's HTTP API listens once announced: a restarted worker 0 listens there
    # again, not on another free port (`--http HOST:0`)
    api: list[str] = []

    def run(worker: Worker) -> None:
        admission.bind(worker.index)
        where = api[0] if api else http_listen
        _run_milter(
            settings, given, dns, where, as_json, worker=worker, admission=admission, sock=inherited
        )

    def announce(host: str, port: int, http: str) -> None:
        if http:
            api[:] = [http]
        _announce(settings, address, as_json, http or None, workers)

    def closed() -> None:
        """The stop begins: connections are refused at once, not queued for no worker."""
        if path is not None:
            sock.close()

    try:
        return supervise(workers, run, announce, on_death=admission.forget, on_stop=closed)
    finally:
        sock.close()
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


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
