"""`mailwarden greylist list|allow|forget`: see, allow and remove greylisting state."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.table import Table
from rich.text import Text

from mailwarden import runtime
from mailwarden.greylist import (
    AllowEntry,
    GreylistStore,
    RedisStore,
    SQLiteStore,
    admin,
    parse_allow_target,
)
from mailwarden.greylist.admin import allow_dict, forget_plan, iso, listing
from mailwarden.settings import ConfigError, Override, load_settings

from .common import BoundedInt, FiniteFloat, console, fail, json_option, print_json

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

STORE_FILE = "greylist.sqlite3"
MAX_DAYS = 36_525  # a century: longer is a typo (leave --days out for "never")
MAX_LIMIT = 10_000_000


def store_options(command: F) -> F:
    """--config, --data-dir and --redis: where the greylist state is. Without them, where the
    configuration puts it ([gateway] data_dir, [greylist] redis): the gateway's own store."""

    @click.option(
        "--config",
        "config_file",
        metavar="FILE",
        help="TOML configuration file: its [gateway] data_dir and [greylist] redis.",
    )
    @click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help=f"Directory of the embedded store ({STORE_FILE}). [default: [gateway] data_dir]",
    )
    @click.option("--redis", "redis_url", metavar="URL", help="Use the Redis store at URL.")
    @functools.wraps(command)
    def wrapper(
        *args: Any,
        config_file: str | None,
        data_dir: Path | None,
        redis_url: str | None,
        **kwargs: Any,
    ) -> Any:
        overrides: dict[str, Override] = {}
        if data_dir is not None:
            overrides["gateway.data_dir"] = (str(data_dir), "--data-dir")
        try:
            settings = load_settings(config_file, overrides=overrides)
        except ConfigError as exc:
            fail(str(exc))
        redis = redis_url or (settings.greylist.redis if data_dir is None else None)
        return command(*args, location=(Path(settings.gateway.data_dir), redis), **kwargs)

    return wrapper  # type: ignore[return-value]


def open_store(location: tuple[Path, str | None], *, create: bool) -> GreylistStore:
    """The store named by the options; without `create`, exit 2 when the SQLite file (or its
    directory) does not exist, rather than show an empty list of a store that is not there."""
    data_dir, redis_url = location
    if redis_url:
        try:
            return RedisStore.from_url(redis_url)
        except ValueError as exc:
            fail(f"bad --redis URL {redis_url!r}: {exc}")
    path = data_dir / STORE_FILE
    try:
        if not create and not data_dir.is_dir():
            reason = "is not a directory" if data_dir.exists() else "does not exist"
            fail(f"no greylist store: the data directory {data_dir} {reason}")
        if not create and not path.exists():
            fail(f"no greylist store in {data_dir}: {STORE_FILE} does not exist (yet)")
        if path.exists() and not path.is_file():
            fail(f"{path} is not a file")
    except OSError as exc:  # a name too long, a loop of links: pathlib lets these through
        fail(f"cannot use the data directory {data_dir}: {exc.strerror or exc}")
    return SQLiteStore(path)


def run_on(
    location: tuple[Path, str | None], create: bool, work: Callable[[GreylistStore], Awaitable[T]]
) -> T:
    """Run `work` on the store, closing it afterwards; store errors become one line."""
    store = open_store(location, create=create)

    async def main() -> T:
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return runtime.run(main())
    except (OSError, ConnectionError) as exc:
        fail(f"cannot use the greylist store: {exc}")
    except Exception as exc:
        if type(exc).__module__.startswith(("redis", "sqlite3")):
            fail(f"cannot use the greylist store: {type(exc).__name__}: {exc}")
        raise


@click.group()
def greylist() -> None:
    """Greylisting (RFC 6647): list pending and passed entries, allow, forget."""


@greylist.command("list")
@click.option(
    "--state",
    type=click.Choice(["all", "pending", "passed"]),
    default="all",
    show_default=True,
    help="Which triplets to show.",
)
@click.option("--limit", type=BoundedInt(min=1, max=MAX_LIMIT), default=1000, show_default=True)
@store_options
@json_option
def list_entries(state: str, limit: int, location: tuple[Path, str | None], as_json: bool) -> None:
    """Show triplets (pending and passed), allow entries and auto-allow counters."""
    now = time.time()

    async def work(store: GreylistStore) -> dict[str, Any]:
        return await listing(store, now, state, limit)

    data = run_on(location, False, work)
    flagged = [
        f"{row.get('target') or row.get('network') or row.get('sender')}: {row['problem']}"
        for key in ("entries", "allowed", "networks")
        for row in data[key]
        if "problem" in row
    ]
    for note in flagged:  # a bad row is listed, and said so on stderr
        click.echo(f"mailwarden: warning: unreadable greylist row {note}", err=True)
    if as_json:
        print_json(data)
        return
    out = console()
    table = Table(title=f"greylist: {data['total']} triplets", title_justify="left")
    for column in ("state", "origin", "sender", "recipient", "attempts", "last seen", "expires"):
        table.add_column(column)
    for e in data["entries"]:
        table.add_row(
            e["state"] if "problem" not in e else f"{e['state']} (bad row)",
            Text(e["origin"]),
            Text(e["sender"]),
            Text(e["recipient"]),
            str(e["attempts"]),
            e["last_seen"] or "?",
            e["expires_at"] or "?",
        )
    out.print(table)
    if data["allowed"]:
        allowed = Table(title="allowed", title_justify="left")
        for column in ("target", "expires", "note"):
            allowed.add_column(column)
        for a in data["allowed"]:
            expires = a["expires_at"] or ("? (bad row)" if "problem" in a else "never")
            allowed.add_row(Text(a["target"]), expires, Text(a["note"]))
        out.print(allowed)
    if data["networks"]:
        nets = Table(title="client networks that passed", title_justify="left")
        nets.add_column("network")
        nets.add_column("passes", justify="right")
        for n in data["networks"]:
            nets.add_row(n["network"], str(n["passes"]))
        out.print(nets)


@greylist.command("allow")
@click.argument("target")
@click.option(
    "--days",
    type=FiniteFloat(min=0, min_open=True, max=MAX_DAYS),
    help=f"Expire after DAYS (at most {MAX_DAYS}) [default: never].",
)
@click.option("--note", default="", help="Why (shown in decisions and listings).")
@store_options
@json_option
def allow(
    target: str, days: float | None, note: str, location: tuple[Path, str | None], as_json: bool
) -> None:
    """Never greylist TARGET: an IP address, a network (CIDR), a sender domain (with its
    subdomains) or a sender address."""
    try:
        parsed = parse_allow_target(target)
    except ValueError as exc:
        fail(str(exc))
    now = time.time()
    entry = AllowEntry(parsed, now, now + days * 86_400 if days else None, note)

    async def work(store: GreylistStore) -> None:
        await store.allow(entry)

    run_on(location, True, work)
    if as_json:
        print_json(allow_dict(entry))
        return
    until = f" until {iso(entry.expires_at)}" if entry.expires_at else ""
    console().print(f"allowed {parsed}{until}", markup=False)


@greylist.command("forget")
@click.argument("target")
@store_options
@json_option
def forget(target: str, location: tuple[Path, str | None], as_json: bool) -> None:
    """Remove what is known about TARGET: an IP address (its network's triplets and
    counter), a network, a sender address, a domain (its senders and SPF pool), or an
    "spf:DOMAIN" pool; allow entries for it go too."""
    try:
        plan = forget_plan(target)
    except ValueError as exc:
        fail(str(exc))

    async def work(store: GreylistStore) -> dict[str, int]:
        return await admin.forget(store, plan)

    counts = run_on(location, False, work)
    if as_json:
        print_json({"target": target, **counts})
        return
    console().print(
        f"forgot {counts['triplets']} triplets, {counts['allow_entries']} allow entries and "
        f"{counts['network_counters']} network counters for {target}",
        markup=False,
    )
