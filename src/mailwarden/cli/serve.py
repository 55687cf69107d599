"""`mailwarden serve`: the receiving gateway; `mailwarden sink`: a Maildir downstream for demos."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click

from mailwarden import runtime
from mailwarden.gateway import (
    ARCSealer,
    Checks,
    Downstream,
    DownstreamRelay,
    Forwarding,
    Gateway,
    MaildirRelay,
    PipelineChecks,
    TransactionLog,
    sink_config,
)
from mailwarden.gateway.admission import SharedAdmission
from mailwarden.gateway.server import default_relay
from mailwarden.pipeline import Pipeline, build
from mailwarden.settings import (
    ConfigError,
    GatewaySettings,
    Override,
    Settings,
    build_forwarder,
    parse_hostport,
)
from mailwarden.signing import DirectoryStore, Rotator, Signer, store_path

from . import lifecycle
from .common import (
    DNSOptions,
    FiniteFloat,
    dns_options,
    fail,
    json_option,
    print_json,
    server_pipeline,
)
from .http import Together, http_server
from .paths import check_serve_paths, require_maildir
from .report import report_keys_problem
from .workers import (
    InStep,
    Worker,
    default_workers,
    reserve_port,
    supervise,
    workers_option,
)

MAX_GREET_PAUSE = 300.0  # RFC 5321 §4.5.3.2.1: clients wait 5 minutes for the greeting


def _hostport(option: str, text: str, default_port: int | None = None) -> tuple[str, int]:
    try:
        return parse_hostport(text, default_port)
    except ValueError as exc:
        fail(f"bad {option} {text!r}: {exc}")


def _swaks_hint(config: GatewaySettings, host: str, port: int) -> str:
    domain = config.local_domains[0] if config.local_domains else "example.net"
    return (
        f"swaks --server {host}:{port} --from alice@example.com --to postmaster@{domain} "
        f"--helo mail.example.com"
    )


@click.command()
@click.option("--listen", metavar="HOST:PORT", help="Listen here (default 127.0.0.1:2525).")
@click.option("--relay-to", metavar="HOST:PORT", help="The downstream mailbox server.")
@click.option(
    "--local-domain", "local_domains", multiple=True, metavar="DOMAIN", help="Accept mail for it."
)
@click.option("--hostname", metavar="NAME", help="Our name (greeting, Received, authserv-id).")
@click.option("--data-dir", metavar="DIR", help="Greylist database, sink Maildir, TLS pair.")
@click.option("--greet-pause", type=FiniteFloat(min=0, max=MAX_GREET_PAUSE), metavar="SECONDS")
@click.option(
    "--http",
    "http_listen",
    metavar="HOST:PORT",
    help="Also run the HTTP API here (see `mailwarden http`).",
)
@workers_option(cpus_by_default=True)
@dns_options
@json_option
def serve(
    listen: str | None,
    relay_to: str | None,
    local_domains: tuple[str, ...],
    hostname: str | None,
    data_dir: str | None,
    greet_pause: float | None,
    http_listen: str | None,
    workers: int | None,
    dns: DNSOptions,
    as_json: bool,
) -> None:
    """Run the receiving SMTP gateway (relays accepted mail downstream before saying 250)."""
    given: dict[str, Override] = {}
    for key, value, option in (
        ("gateway.listen", listen, "--listen"),
        ("gateway.relay_to", relay_to, "--relay-to"),
        ("gateway.local_domains", list(local_domains) or None, "--local-domain"),
        ("gateway.hostname", hostname, "--hostname"),
        ("gateway.data_dir", data_dir, "--data-dir"),
        ("gateway.greet_pause", greet_pause, "--greet-pause"),
    ):
        if value is not None:
            given[key] = (value, option)
    settings = dns.settings(given)
    check_serve_paths(
        settings, "--data-dir" if data_dir else f"{settings.source}: gateway.data_dir"
    )
    if (problem := report_keys_problem(settings)) is not None:
        fail(problem)
    config = settings.gateway
    if config.hostname == "localhost":
        click.echo(
            "mailwarden: warning: this host has no name but localhost; set --hostname or "
            "[gateway] hostname (greeting, Received and Authentication-Results use it)",
            err=True,
        )
    count = workers if workers is not None else default_workers()
    if count > 1:
        sys.exit(_serve_workers(settings, given, dns, http_listen, count, as_json))
    _run_gateway(settings, given, dns, http_listen, as_json)


def _run_gateway(
    settings: Settings,
    given: dict[str, Override],
    dns: DNSOptions,
    http_listen: str | None,
    as_json: bool,
    *,
    admission: SharedAdmission | None = None,
    worker: Worker | None = None,
) -> None:
    """The gateway in this process, or as `worker` of several (`serve --workers`): then its
    own spool, the shared connection counts, the port shared, the schedules (DMARC reports,
    key rotation) and the HTTP API in worker 0 only; the worker tells the supervisor where it
    listens (instead of the announcement) and how each reload went, takes the settings of the
    last reload for its checks (a restarted worker does not fall back to those of the start),
    and stops accepting in step with the other workers."""
    config = settings.gateway
    index = None if worker is None else worker.index
    # the checks' settings: those of the last reload in force, if any (the listener, TLS, the
    # downstream and the forwarding keep those of the start, as in a reload)
    checked: Settings = settings if worker is None or worker.state is None else worker.state
    pipeline = server_pipeline(checked, dns)
    checks: Checks = PipelineChecks(pipeline)
    forwarding = _forwarding(settings)
    if forwarding is not None:  # bounces to the SRS domain are ours to take
        config = replace(
            config, local_domains=(*config.local_domains, settings.forwarding.srs_domain)
        )
    try:
        relay: Downstream = default_relay(config)
        if forwarding is not None:
            checks, relay = forwarding.checks(checks), forwarding.downstream(relay)
        spool = None if index is None else Path(config.data_dir) / "spool" / f"worker-{index}"
        gateway = Gateway(
            config,
            checks,
            relay=relay,
            admission=admission,
            reuse_port=index is not None,
            spool_dir=spool,
        )
    except (OSError, ValueError) as exc:
        fail(f"cannot start the gateway: {exc}")
    pipeline.runs_schedules = not index
    rotator = None
    if not index:
        store = DirectoryStore(store_path(settings))
        rotator = Rotator(store, settings.signing, dns.build(settings))
    api = None
    if http_listen is not None and not index:
        api = http_server(checked, pipeline, http_listen)

    def announce() -> None:
        host, port = gateway.address
        if worker is not None:  # the supervisor announces
            worker.listening(host, port, api.address_text if api is not None else "")
            return
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
        if api is not None:
            info["http"] = api.address_text
        if as_json:
            print_json(info)
        else:
            click.echo(f"mailwarden: listening on {host}:{port} as {config.hostname}", err=True)
            click.echo(f"mailwarden: {downstream}", err=True)
            click.echo(f"mailwarden: send a message with: {info['try']}", err=True)
            if api is not None:
                click.echo(f"mailwarden: HTTP API on {info['http']}", err=True)
        sys.stdout.flush()

    reloaded: list[Settings] = []  # a worker's last reload, handed to the supervisor

    async def reload() -> Pipeline:
        """SIGHUP: the checks' settings again (the listener, TLS, the downstream and the
        forwarding need a restart); new connections get the new pipeline."""
        fresh = dns.settings(given)
        check_serve_paths(fresh, f"{fresh.source}: gateway.data_dir")
        if (problem := report_keys_problem(fresh)) is not None:
            fail(problem)
        new = build(
            fresh, dns.build(fresh, status=False), greylist=True, reports=True, transactions=True
        )
        new.runs_schedules = not index
        if api is not None:  # first: a token that cannot be used keeps everything as it was
            try:
                api.install(fresh, new)
            except ConfigError as exc:
                await new.drain()
                fail(str(exc))
        checks: Checks = PipelineChecks(new)
        if forwarding is not None:
            checks = forwarding.checks(checks)
        gateway.checks = checks
        reloaded[:] = [fresh]
        return new

    told = None
    if worker is not None:

        def told(text: str, in_force: bool) -> None:
            worker.reloaded(text, reloaded[-1] if in_force and reloaded else None)

    try:
        both: Gateway | Together = gateway if api is None else Together(gateway, api)
        server = both if worker is None else InStep(both, gateway, worker)
        runtime.run(
            lifecycle.run_until_signalled(
                server, announce, pipeline, rotator, reload=reload, told=told
            )
        )
    except OSError as exc:
        where = [f"{config.listen[0]}:{config.listen[1]}"]
        if api is not None:
            where.append(f"{api.listen[0]}:{api.listen[1]}")
        fail(f"cannot listen on {' or '.join(where)}: {exc.strerror or exc}")


def _announce(
    settings: Settings,
    host: str,
    port: int,
    as_json: bool,
    workers: int,
    http: str | None,
) -> None:
    """The supervisor's announcement once every worker listens (the HTTP API runs in
    worker 0: `http` is where it listens)."""
    config = settings.gateway
    if settings.forwarding.enabled:  # bounces to the SRS domain are ours to take (_gateway)
        config = replace(
            config, local_domains=(*config.local_domains, settings.forwarding.srs_domain)
        )
    downstream = (
        f"relaying to {config.relay_to[0]}:{config.relay_to[1]} ({config.protocol})"
        if config.relay_to
        else f"delivering into the built-in sink {config.sink_maildir()}"
    )
    info: dict[str, object] = {
        "listen": f"{host}:{port}",
        "hostname": config.hostname,
        "local_domains": list(config.local_domains),
        "downstream": downstream,
        "try": _swaks_hint(config, host, port),
    }
    info["workers"] = workers
    if http is not None:
        info["http"] = http
    if as_json:
        print_json(info)
    else:
        where = f"{host}:{port} as {config.hostname} ({workers} worker processes)"
        click.echo(f"mailwarden: listening on {where}", err=True)
        click.echo(f"mailwarden: {downstream}", err=True)
        click.echo(f"mailwarden: send a message with: {info['try']}", err=True)
        if http is not None:
            click.echo(f"mailwarden: HTTP API on {http} (worker 0)", err=True)
    sys.stdout.flush()


def _serve_workers(
    settings: Settings,
    given: dict[str, Override],
    dns: DNSOptions,
    http_listen: str | None,
    workers: int,
    as_json: bool,
) -> int:
    """`serve --workers N`: N gateway processes on one port (SO_REUSEPORT) under a supervisor
    (cli/workers.py); the connection limits hold across them (`SharedAdmission`)."""
    config = settings.gateway
    host, port = config.listen
    try:
        reserved, port = reserve_port(host, port)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    settings = replace(settings, gateway=replace(config, listen=(host, port)))
    limits = config.limits
    admission = SharedAdmission(workers, limits.max_connections, limits.max_connections_per_client)
    # each worker's share of the memory for messages in transit (the rest spools to disk)
    share = replace(limits, memory_budget=max(1, limits.memory_budget // workers))
    settings = replace(settings, gateway=replace(settings.gateway, limits=share))

    # where worker 0's HTTP API listens once announced: a restarted worker 0 listens there
    # again, not on another free port (`--http HOST:0`)
    api: list[str] = []

    def run(worker: Worker) -> None:
        admission.bind(worker.index)
        where = api[0] if api else http_listen
        _run_gateway(settings, given, dns, where, as_json, admission=admission, worker=worker)

    def announce(bound_host: str, bound_port: int, http: str) -> None:
        if http:
            api[:] = [http]
        _announce(settings, bound_host, bound_port, as_json, workers, http or None)

    try:
        return supervise(workers, run, announce, on_death=admission.forget)
    finally:
        reserved.close()


def _forwarding(settings: Settings) -> Forwarding | None:
    """The gateway's forwarding ([forwarding] with an alias file), or None."""
    options = settings.forwarding
    if not options.enabled:
        return None
    config = settings.gateway
    try:
        forwarder = build_forwarder(options, config)
    except (ValueError, OSError) as exc:
        fail(f"forwarding: {exc}")
    remote = None
    if options.relay_to is not None:
        host, port = options.relay_to
        remote = DownstreamRelay(host, port, helo_name=config.hostname, timeouts=config.timeouts)
    sealer = None
    if options.arc_seal:
        sealer = ARCSealer(
            Signer.from_settings(settings),
            options.arc_domain or options.srs_domain,
            config.hostname,
        )
    return Forwarding(forwarder, remote=remote, sealer=sealer)


@click.command()
@click.option("--listen", required=True, metavar="HOST:PORT", help="Listen here.")
@click.option("--maildir", required=True, metavar="DIR", help="Deliver every message here.")
@click.option("--no-fsync", is_flag=True, help="Do not flush each message to disk (benchmarks).")
@json_option
def sink(listen: str, maildir: str, no_fsync: bool, as_json: bool) -> None:
    """A downstream that accepts any message and delivers it into one Maildir."""
    require_maildir(maildir)
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
        runtime.run(lifecycle.run_until_signalled(gateway, announce))
    except OSError as exc:
        fail(f"cannot listen on {listen}: {exc.strerror or exc}")
