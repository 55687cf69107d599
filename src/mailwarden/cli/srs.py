"""`mailwarden srs`: SRS for Postfix as a lookup service (as postsrsd), or one address at once.

    mailwarden srs --listen 127.0.0.1:10003                  # socketmap, maps forward/reverse
    mailwarden srs --tcp-forward 127.0.0.1:10001 --tcp-reverse 127.0.0.1:10002   # postsrsd 1.x
    mailwarden srs forward alice@a.example
    mailwarden srs reverse SRS0=HHHH=TT=a.example=alice@srs.b.example

Postfix (main.cf), as with postsrsd 2.x:
    sender_canonical_maps = socketmap:inet:127.0.0.1:10003:forward
    sender_canonical_classes = envelope_sender
    recipient_canonical_maps = socketmap:inet:127.0.0.1:10003:reverse
    recipient_canonical_classes = envelope_recipient, header_recipient
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import click

from mailwarden.settings import Override, Settings, build_srs, parse_hostport
from mailwarden.socketmap import (
    Lookup,
    SocketmapServer,
    TCPTableServer,
    parse_listen,
    srs_maps,
)
from mailwarden.srs import SRS, SRSError

from .common import EXIT_PARTIAL, DNSOptions, dns_options, fail, json_option, print_json

__all__ = ["srs"]

EPILOG = """\b
Postfix (main.cf) with --listen 127.0.0.1:10003, as with postsrsd 2.x:
  sender_canonical_maps = socketmap:inet:127.0.0.1:10003:forward
  sender_canonical_classes = envelope_sender
  recipient_canonical_maps = socketmap:inet:127.0.0.1:10003:reverse
  recipient_canonical_classes = envelope_recipient, header_recipient
With --tcp-forward/--tcp-reverse (postsrsd 1.x): tcp:127.0.0.1:10001 and tcp:127.0.0.1:10002.
Senders in [gateway] local_domains, [forwarding] exclude_domains and the SRS domain are
never rewritten. Exit status of forward/reverse: 0 rewritten, 1 not (the reason is shown).
"""


def _settings(
    dns: DNSOptions, srs_domain: str | None, secret_file: str | None, data_dir: str | None
) -> Settings:
    given: dict[str, Override] = {}
    for key, value, option in (
        ("forwarding.srs_domain", srs_domain, "--srs-domain"),
        ("forwarding.srs_secret_file", secret_file, "--secret-file"),
        ("gateway.data_dir", data_dir, "--data-dir"),
    ):
        if value is not None:
            given[key] = (value, option)
    return dns.settings(given)


def _srs(settings: Settings) -> SRS:
    if not settings.forwarding.srs_domain:
        fail("no SRS domain: give --srs-domain or set [forwarding] srs_domain")
    try:
        return build_srs(settings.forwarding, settings.gateway.data_dir)
    except (ValueError, OSError) as exc:
        fail(str(exc))


def _where(option: str, text: str) -> tuple[str, int] | Path:
    try:
        return parse_listen(text)
    except ValueError as exc:
        fail(f"bad {option} {text!r}: {exc}")


def _hostport(option: str, text: str) -> tuple[str, int]:
    try:
        return parse_hostport(text)
    except ValueError as exc:
        fail(f"bad {option} {text!r}: {exc}")


@click.group("srs", invoke_without_command=True, epilog=EPILOG)
@click.option("--listen", metavar="HOST:PORT|unix:PATH", help="Serve socketmap (forward, reverse).")
@click.option("--tcp-forward", metavar="HOST:PORT", help="Serve the forward map as tcp_table.")
@click.option("--tcp-reverse", metavar="HOST:PORT", help="Serve the reverse map as tcp_table.")
@click.option("--srs-domain", metavar="DOMAIN", help="The SRS domain. [default: [forwarding]]")
@click.option("--secret-file", metavar="FILE", help="SRS secrets, one a line (postsrsd's).")
@click.option("--data-dir", metavar="DIR", help="Where the default secret file lives.")
@json_option
@dns_options
@click.pass_context
def srs(
    ctx: click.Context,
    listen: str | None,
    tcp_forward: str | None,
    tcp_reverse: str | None,
    srs_domain: str | None,
    secret_file: str | None,
    data_dir: str | None,
    as_json: bool,
    dns: DNSOptions,
) -> None:
    """The Sender Rewriting Scheme (compatible with postsrsd and libsrs2): serve it to
    Postfix, or rewrite one address (`forward`, `reverse`)."""
    settings = _settings(dns, srs_domain, secret_file, data_dir)
    if ctx.invoked_subcommand is not None:
        ctx.obj = (settings, as_json)
        return
    if listen is None and tcp_forward is None and tcp_reverse is None:
        fail("give --listen (or --tcp-forward/--tcp-reverse), or a command: forward, reverse")
    where = _where("--listen", listen) if listen is not None else None
    forward_at = _hostport("--tcp-forward", tcp_forward) if tcp_forward is not None else None
    reverse_at = _hostport("--tcp-reverse", tcp_reverse) if tcp_reverse is not None else None
    ours = _srs(settings)
    maps = srs_maps(ours, (*settings.gateway.local_domains, *settings.forwarding.exclude_domains))
    try:
        asyncio.run(_serve(maps, where, forward_at, reverse_at, ours, as_json))
    except OSError as exc:
        fail(f"cannot listen: {exc.strerror or exc}")


async def _serve(
    maps: dict[str, Lookup],
    where: tuple[str, int] | Path | None,
    forward_at: tuple[str, int] | None,
    reverse_at: tuple[str, int] | None,
    ours: SRS,
    as_json: bool,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    servers: list[SocketmapServer | TCPTableServer] = []
    listening: dict[str, str] = {}
    try:
        if where is not None:
            socketmap = SocketmapServer(maps)
            await socketmap.start(where)
            servers.append(socketmap)
            listening["socketmap"] = _shown(socketmap.address)
        for name, at in (("forward", forward_at), ("reverse", reverse_at)):
            if at is not None:
                table = TCPTableServer(maps[name])
                await table.start(at)
                servers.append(table)
                listening[f"tcp_{name}"] = _shown(table.address)
        info = {"srs_domain": ours.domain, **listening}
        if as_json:
            print_json(info)
        else:
            shown = ", ".join(f"{k} {v}" for k, v in listening.items())
            click.echo(f"mailwarden srs: {ours.domain}: listening ({shown})", err=True)
        sys.stdout.flush()
        await stop.wait()
    finally:
        for server in servers:
            await server.close()


def _shown(address: tuple[str, int] | str) -> str:
    return address if isinstance(address, str) else f"{address[0]}:{address[1]}"


def _one(ctx: click.Context, address: str, reverse: bool) -> None:
    settings, as_json = ctx.obj
    try:
        address.encode("utf-8")
    except UnicodeEncodeError:
        fail(f"{address!r} is not valid UTF-8")
    ours = _srs(settings)
    try:
        result = ours.reverse(address) if reverse else ours.forward(address)
    except SRSError as exc:
        if as_json:
            print_json(
                {
                    "address": address,
                    "result": None,
                    "reason": exc.detail,
                    "reason_code": exc.reason.value,
                }
            )
        else:
            click.echo(f"not rewritten: {exc.detail}")
        sys.exit(EXIT_PARTIAL)
    if as_json:
        print_json({"address": address, "result": result, "reason": None, "reason_code": None})
    else:
        click.echo(result)


@srs.command("forward")
@click.argument("address")
@click.pass_context
def forward_command(ctx: click.Context, address: str) -> None:
    """The SRS address for a sender we forward mail from."""
    _one(ctx, address, reverse=False)


@srs.command("reverse")
@click.argument("address")
@click.pass_context
def reverse_command(ctx: click.Context, address: str) -> None:
    """Where a bounce to an SRS address goes (refused when forged or expired)."""
    _one(ctx, address, reverse=True)
