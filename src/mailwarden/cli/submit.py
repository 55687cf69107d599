"""`mailwarden submit`: the message submission server (587 STARTTLS, 465 TLS)."""

from __future__ import annotations

import sys

import click

from mailwarden import runtime
from mailwarden.pipeline import Pipeline, build
from mailwarden.settings import ConfigError, Override
from mailwarden.submission import Submission

from . import lifecycle
from .common import DNSOptions, dns_options, fail, json_option, print_json


@click.command()
@click.option(
    "--listen", metavar="HOST:PORT", help='STARTTLS listener (default 127.0.0.1:587; "" off).'
)
@click.option(
    "--listen-tls", metavar="HOST:PORT", help='Implicit TLS listener (default :465; "" off).'
)
@click.option("--smarthost", metavar="HOST:PORT", help="Relay accepted mail here (default :25).")
@click.option("--hostname", metavar="NAME", help="Our name (greeting, Received, Message-ID).")
@click.option("--data-dir", metavar="DIR", help="Users, counters and the TLS pair live here.")
@dns_options
@json_option
def submit(
    listen: str | None,
    listen_tls: str | None,
    smarthost: str | None,
    hostname: str | None,
    data_dir: str | None,
    dns: DNSOptions,
    as_json: bool,
) -> None:
    """Run the submission server: AUTH inside TLS, senders checked, limits, DKIM, relay."""
    given: dict[str, Override] = {}
    for key, value, option in (
        ("submission.listen", listen, "--listen"),
        ("submission.listen_tls", listen_tls, "--listen-tls"),
        ("submission.smarthost", smarthost, "--smarthost"),
        ("submission.hostname", hostname, "--hostname"),
        ("gateway.data_dir", data_dir, "--data-dir"),
    ):
        if value is not None:
            given[key] = (value, option)
    settings = dns.settings(given)
    try:
        pipeline = build(settings, dns.build(settings))
        submission = Submission.build(settings, pipeline)
    except ConfigError as exc:
        fail(str(exc))
    except ValueError as exc:
        fail(f"cannot start the submission server: {exc}")
    except OSError as exc:
        fail(f"cannot open the submission stores: {exc.strerror or exc}")
    config = settings.submission

    def announce() -> None:
        listeners = [f"{host}:{port}" for host, port in submission.addresses]
        info = {
            "listen": listeners,
            "hostname": config.hostname or settings.gateway.hostname,
            "smarthost": f"{config.smarthost[0]}:{config.smarthost[1]}",
            "signing": submission.checks.signer.domains(),
        }
        if as_json:
            print_json(info)
        else:
            click.echo(f"mailwarden submit: listening on {', '.join(listeners)}", err=True)
            click.echo(f"mailwarden submit: relaying to {info['smarthost']}", err=True)
        sys.stdout.flush()

    async def reload() -> Pipeline:
        """SIGHUP: the checks' settings again (listeners, TLS, users, limits and the
        smarthost need a restart); the next check uses the new pipeline."""
        fresh = dns.settings(given)
        new = build(fresh, dns.build(fresh))
        submission.replace_pipeline(new)
        return new

    try:
        runtime.run(lifecycle.run_until_signalled(submission, announce, pipeline, reload=reload))
    except OSError as exc:
        fail(f"cannot listen: {exc.strerror or exc}")
