"""`mailwarden dkim rotate` and `mailwarden dkim keys`: the signing keys and their rotation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import click
from rich.table import Table

from mailwarden.settings import Override
from mailwarden.signing import (
    DirectoryStore,
    ManagedKey,
    RotationEvent,
    Rotator,
    Stage,
    StoreError,
    domain_name,
    revocation_record,
    store_path,
)

from .common import DNSOptions, console, dns_options, fail, json_option, print_json
from .dkim import parse_now

__all__ = ["keys", "rotate"]

STAGE_STYLE = {
    Stage.PENDING: "yellow",
    Stage.ACTIVE: "bold green",
    Stage.RETIRED: "cyan",
    Stage.REVOKE: "bold magenta",
    Stage.REVOKED: "dim",
}


def _data_dir(data_dir: str | None) -> dict[str, Override]:
    return {"gateway.data_dir": (data_dir, "--data-dir")} if data_dir is not None else {}


def _clock(now_text: str | None) -> Callable[[], float]:
    if now_text is None:
        return time.time
    now = parse_now(now_text)
    return lambda: now


def _date(when: float | None) -> str:
    return "-" if when is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(when))


def _to_do(key: ManagedKey) -> str | None:
    """The record the operator must publish for a key now, if any."""
    if key.stage is Stage.PENDING:
        return key.record
    if key.stage is Stage.REVOKE:
        return revocation_record(key.algorithm)
    return None


def _key_dict(key: ManagedKey) -> dict[str, Any]:
    return {**key.to_dict(), "publish": _to_do(key)}


def _show_events(events: Sequence[RotationEvent]) -> None:
    out = console()
    for event in events:
        style = "yellow" if event.needs_operator else "green"
        out.print(f"[{style}]{event.kind.value}[/] ", end="")
        out.print(event.message, markup=False)
        entry = event.zone_entry()
        if entry is not None:
            click.echo(f"  {entry}")


def _show_keys(keys: Sequence[ManagedKey]) -> None:
    out = console()
    if not keys:
        out.print("no DKIM keys yet: `mailwarden dkim rotate --domain DOMAIN` makes the first")
        return
    table = Table(title="DKIM keys", title_justify="left")
    for column in ("domain", "selector", "algorithm", "stage", "created", "since", "note"):
        table.add_column(column, overflow="fold")
    for key in keys:
        table.add_row(
            key.domain,
            key.selector,
            f"{key.algorithm.value}-{key.bits}" if key.algorithm.value == "rsa" else "ed25519",
            f"[{STAGE_STYLE[key.stage]}]{key.stage.value}[/]",
            _date(key.created),
            _date(key.since),
            key.note.replace("[", "\\["),
        )
    out.print(table)


@click.command("rotate")
@click.option("--domain", "-d", metavar="DOMAIN", help="Start the next rotation of DOMAIN.")
@click.option(
    "--emergency",
    is_flag=True,
    help="The keys are compromised: stop signing with them now and revoke them at once.",
)
@click.option(
    "--advance",
    is_flag=True,
    help="Only move the keys on through their stages (DNS, grace, schedule): for cron.",
)
@click.option("--data-dir", metavar="DIR", help="Where the keys live (<DIR>/dkim).")
@click.option("--now", "now_text", metavar="TIMESTAMP", help="Act as if it were this time.")
@json_option
@dns_options
def rotate(
    domain: str | None,
    emergency: bool,
    advance: bool,
    data_dir: str | None,
    now_text: str | None,
    as_json: bool,
    dns: DNSOptions,
) -> None:
    """Rotate the DKIM keys of a domain, or move every key on through its stages.

    --domain makes the next key for each configured algorithm (the first ones for a new
    domain) and prints the TXT records to publish. A new key signs only once DNS shows its
    record with the right key; the key it replaces stops signing then, keeps its record
    published for the grace period ([signing] grace_days), and is then to be revoked with an
    empty p=, which this command prints when due. `serve` does --advance by itself.
    """
    if domain is None and not advance:
        fail("give --domain DOMAIN (start a rotation) or --advance (move the stages on)")
    if emergency and domain is None:
        fail("--emergency needs --domain")
    if domain is not None:
        try:
            domain = domain_name(domain)
        except ValueError as exc:
            fail(str(exc))
    settings = dns.settings(_data_dir(data_dir))
    rotator = Rotator(
        DirectoryStore(store_path(settings)),
        settings.signing,
        dns.build(settings),
        clock=_clock(now_text),
    )
    try:
        if domain is not None:
            events = asyncio.run(rotator.rotate(domain, emergency=emergency))
        else:
            events = asyncio.run(rotator.advance())
        current = rotator.current(domain)
    except StoreError as exc:
        fail(f"key store: {exc}")
    if as_json:
        print_json(
            {
                "events": [event.to_dict() for event in events],
                "keys": [_key_dict(key) for key in current],
            }
        )
        return
    _show_events(events)
    if not events:
        click.echo("nothing to do")


@click.command("keys")
@click.option("--domain", "-d", metavar="DOMAIN", help="Only this domain's keys.")
@click.option("--data-dir", metavar="DIR", help="Where the keys live (<DIR>/dkim).")
@json_option
@dns_options
def keys(domain: str | None, data_dir: str | None, as_json: bool, dns: DNSOptions) -> None:
    """Show each domain's selectors and the stage of their rotation (no DNS is asked)."""
    if domain is not None:
        try:
            domain = domain_name(domain)
        except ValueError as exc:
            fail(str(exc))
    settings = dns.settings(_data_dir(data_dir))
    try:
        found = [
            k
            for k in DirectoryStore(store_path(settings)).load()
            if domain is None or k.domain == domain
        ]
    except StoreError as exc:
        fail(f"key store: {exc}")
    if as_json:
        print_json({"keys": [_key_dict(key) for key in found]})
        return
    _show_keys(found)
    for key in found:
        record = _to_do(key)
        if record is not None:
            what = "publish" if key.stage is Stage.PENDING else "revoke with"
            click.echo(f"{key.name}: {what}: {record}")
