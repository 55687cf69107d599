"""`mailwarden policy`: the Postfix SMTPD access policy service (`check_policy_service`)."""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import click

from mailwarden import runtime
from mailwarden.greylist import GreylistStage
from mailwarden.pipeline import Pipeline, build
from mailwarden.policyservice import PolicyChecks, PolicyServer
from mailwarden.ratelimit import CounterStore, RedisCounterStore, SQLiteCounterStore
from mailwarden.settings import ConfigError, Override, Settings, parse_listen

from . import lifecycle
from .common import DNSOptions, dns_options, fail, json_option, print_json
from .paths import require_writable_dir


def policy_settings(settings: Settings) -> Settings:
    """The settings as the policy service uses them: it never sees a message's content, so
    greylisting happens at RCPT whatever `[greylist] stage` says for the gateway."""
    greylist = settings.greylist
    config = dataclasses.replace(greylist.config, stage=GreylistStage.RCPT)
    return dataclasses.replace(settings, greylist=dataclasses.replace(greylist, config=config))


def counter_store(settings: Settings) -> CounterStore | None:
    """The rate limits' counters: Redis when `[submission] redis` is set (shared with the
    submission server), else SQLite in the data directory; None when rate limits are off."""
    if not settings.policy_service.rate_limits:
        return None
    if settings.submission.redis:
        return RedisCounterStore.from_url(settings.submission.redis)
    data_dir = Path(settings.gateway.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    return SQLiteCounterStore(data_dir / "policy.sqlite3")


def build_checks(settings: Settings, dns: DNSOptions) -> PolicyChecks:
    """The checks of `settings` on a new pipeline (greylist store of the gateway's kind)."""
    settings = policy_settings(settings)
    pipeline = build(settings, dns.build(settings, status=False), greylist=True)
    return PolicyChecks(pipeline, settings.policy_service, counter_store(settings))


@click.command()
@click.option(
    "--listen", metavar="HOST:PORT|unix:PATH", help="Listen here (default 127.0.0.1:10040)."
)
@click.option("--data-dir", metavar="DIR", help="Greylist and rate-limit databases live here.")
@dns_options
@json_option
def policy(listen: str | None, data_dir: str | None, dns: DNSOptions, as_json: bool) -> None:
    """Run the Postfix policy service: greylisting, SPF, DNS lists and rate limits."""
    given: dict[str, Override] = {}
    if listen is not None:
        given["policy_service.listen"] = (listen, "--listen")
    if data_dir is not None:
        given["gateway.data_dir"] = (data_dir, "--data-dir")
    settings = dns.settings(given)
    where = "--data-dir" if data_dir else f"{settings.source}: gateway.data_dir"
    greylist, rate = settings.greylist, settings.policy_service.rate_limits
    if (greylist.enabled and not greylist.redis) or (rate and not settings.submission.redis):
        require_writable_dir(settings.gateway.data_dir, where)  # the SQLite stores live there
    try:
        checks = build_checks(settings, dns)
    except ConfigError as exc:
        fail(str(exc))
    except (OSError, ValueError) as exc:
        fail(
            f"cannot open the greylist or rate-limit store: {getattr(exc, 'strerror', None) or exc}"
        )
    try:
        address = parse_listen(settings.policy_service.listen)
    except ValueError as exc:
        fail(f"policy_service.listen: {exc}")
    server = PolicyServer(checks, address)
    if not logging.getLogger("mailwarden.policy").handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("mailwarden %(message)s"))
        logging.getLogger("mailwarden.policy").addHandler(handler)
        logging.getLogger("mailwarden.policy").setLevel(logging.INFO)

    def announce() -> None:
        config = settings.policy_service
        info = {
            "listen": server.address,
            "greylist": config.greylist.value,
            "spf": config.spf.value,
            "dnsbl": config.dnsbl,
            "rate_limits": config.rate_limits,
        }
        if as_json:
            print_json(info)
        else:
            click.echo(f"mailwarden policy: listening on {server.address}", err=True)
            click.echo(
                "mailwarden policy: main.cf: smtpd_recipient_restrictions = ..., "
                f"reject_unauth_destination, check_policy_service {_postfix_name(server.address)}",
                err=True,
            )
        sys.stdout.flush()

    async def reload() -> Pipeline:
        """SIGHUP: the settings again (the listener needs a restart); the next request on
        every connection is answered with them."""
        fresh = dns.settings(given)
        new = build_checks(fresh, dns)
        server.replace(new)
        return new.pipeline

    try:
        runtime.run(lifecycle.run_until_signalled(server, announce, checks.pipeline, reload=reload))
    except OSError as exc:
        fail(f"cannot listen on {settings.policy_service.listen}: {exc.strerror or exc}")


def _postfix_name(address: str) -> str:
    """How main.cf names our address: inet:host:port or unix:path."""
    return address if address.startswith("unix:") else f"inet:{address}"
