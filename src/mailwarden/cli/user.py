"""`mailwarden user add|passwd|disable|enable|list|senders|release`: the submission users.

Passwords are read from a prompt (typed twice) or, with --password-stdin, from the first line
of standard input: never from the command line, where other users could read them.
"""

from __future__ import annotations

import functools
import sqlite3
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.table import Table

from mailwarden import runtime
from mailwarden.settings import ConfigError, Override, Settings, load_settings
from mailwarden.submission import (
    CompromiseDetector,
    Passwords,
    UserError,
    UserStore,
    counter_store,
    user_store,
)

from .common import console, fail, json_option, print_json

F = TypeVar("F", bound=Callable[..., Any])


def store_options(command: F) -> F:
    """--config and --data-dir: where the users (and the counters) are."""

    @click.option("--config", "config_file", metavar="FILE", help="TOML configuration file.")
    @click.option("--data-dir", metavar="DIR", help="The data directory (users.sqlite3).")
    @functools.wraps(command)
    def wrapper(*args: Any, config_file: str | None, data_dir: str | None, **kw: Any) -> Any:
        overrides: dict[str, Override] = {}
        if data_dir is not None:
            overrides["gateway.data_dir"] = (data_dir, "--data-dir")
        try:
            settings = load_settings(config_file, overrides=overrides)
        except ConfigError as exc:
            fail(str(exc))
        return command(*args, settings=settings, **kw)

    return wrapper  # type: ignore[return-value]


def _open(settings: Settings) -> UserStore:
    try:
        return user_store(settings)
    except (OSError, sqlite3.Error) as exc:
        fail(f"cannot open the user store: {exc}")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password[:-1] if password.endswith("\r") else password
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        fail("no terminal to ask the password: give it on standard input with --password-stdin")
    if not password:
        fail("empty password")
    return password


def _hash(settings: Settings, password: str) -> str:
    try:
        return Passwords(settings.submission.argon2).hash(password)
    except UserError as exc:
        fail(str(exc))


@click.group()
def user() -> None:
    """Manage the users of the submission server."""


@user.command()
@click.argument("name")
@click.option("--address", "addresses", multiple=True, metavar="ADDR", help="May send as it.")
@click.option("--domain", "domains", multiple=True, metavar="DOMAIN", help="May send as all of it.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@store_options
def add(
    name: str,
    addresses: tuple[str, ...],
    domains: tuple[str, ...],
    password_stdin: bool,
    settings: Settings,
) -> None:
    """Add a user (an address as NAME is one they may send as)."""
    store = _open(settings)
    try:
        password_hash = _hash(settings, _password(password_stdin))
        senders = [*addresses, *(f"@{d.lstrip('@')}" for d in domains)]
        created = store.add(name, password_hash, senders)
    except UserError as exc:
        fail(str(exc))
    finally:
        store.close()
    click.echo(f"added {created.name}: may send as {', '.join(created.senders) or 'nothing'}")


@user.command()
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@store_options
def passwd(name: str, password_stdin: bool, settings: Settings) -> None:
    """Set a user's password."""
    store = _open(settings)
    try:
        if store.get(name) is None:
            fail(f"no such user {name!r}")
        store.set_password(name, _hash(settings, _password(password_stdin)))
    except UserError as exc:
        fail(str(exc))
    finally:
        store.close()
    click.echo(f"password of {name.strip().lower()} changed")


def _set_disabled(name: str, settings: Settings, disabled: bool) -> None:
    store = _open(settings)
    try:
        store.set_disabled(name, disabled)
    except UserError as exc:
        fail(str(exc))
    finally:
        store.close()
    click.echo(f"{name.strip().lower()} {'disabled' if disabled else 'enabled'}")


@user.command()
@click.argument("name")
@store_options
def disable(name: str, settings: Settings) -> None:
    """Refuse the user's logins (and mail of their open sessions)."""
    _set_disabled(name, settings, True)


@user.command()
@click.argument("name")
@store_options
def enable(name: str, settings: Settings) -> None:
    """Accept the user's logins again."""
    _set_disabled(name, settings, False)


@user.command(name="list")
@json_option
@store_options
def list_users(as_json: bool, settings: Settings) -> None:
    """Every user, what they may send as, and whether their mail is held."""
    store = _open(settings)
    try:
        users = store.all()
    finally:
        store.close()
    if as_json:
        print_json([u.to_dict() for u in users])
        return
    table = Table("user", "may send as", "state")
    for entry in users:
        state = "disabled" if entry.disabled else "active"
        if entry.held:
            state += f", HELD: {entry.held_reason}"
        table.add_row(entry.name, ", ".join(entry.senders), state)
    console().print(table)


@user.command()
@click.argument("name")
@click.option("--add", "added", multiple=True, metavar="ADDR|@DOMAIN", help="Allow it.")
@click.option("--remove", "removed", multiple=True, metavar="ADDR|@DOMAIN", help="Stop it.")
@store_options
def senders(
    name: str, added: tuple[str, ...], removed: tuple[str, ...], settings: Settings
) -> None:
    """Change (or show) the addresses and @domains a user may send as."""
    store = _open(settings)
    try:
        store.change_senders(name, added, removed)
        found = store.get(name)
    except UserError as exc:
        fail(str(exc))
    finally:
        store.close()
    assert found is not None
    click.echo(f"{found.name} may send as: {', '.join(found.senders) or 'nothing'}")


@user.command()
@click.argument("name")
@store_options
def release(name: str, settings: Settings) -> None:
    """Release a user's held mail (after a suspected compromise is dealt with)."""
    store = _open(settings)
    try:
        released = store.release(name)
    except UserError as exc:
        fail(str(exc))
    finally:
        store.close()
    canonical = name.strip().lower()
    if not released:
        click.echo(f"{canonical} was not held")
        return
    runtime.run(_forget(settings, CompromiseDetector.release_keys(canonical)))
    click.echo(f"released {canonical}: their mail is accepted again")


async def _forget(settings: Settings, keys: list[str]) -> None:
    counters = counter_store(settings)
    try:
        await counters.forget(keys)
    finally:
        await counters.close()
