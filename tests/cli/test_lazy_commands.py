"""The command line imports a command's module only when that command runs."""

from __future__ import annotations

import json
import subprocess
import sys

import click

from mailwarden.cli import COMMANDS, SUBCOMMANDS, cli

HEAVY = (
    "aiohttp",
    "mailwarden.milter",
    "mailwarden.dashboard",
    "mailwarden.http",
    "mailwarden.cli.report",  # the DMARC reports command: check has no schedule
)


def _loaded_after(args: list[str]) -> set[str]:
    code = (
        "import json, sys\n"
        "from mailwarden.cli import run\n"
        f"status = run({args!r})\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
        "sys.exit(status)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_check_does_not_load_the_servers() -> None:
    assert _loaded_after(["check", "--help"]) == set()


def test_the_http_command_loads_what_it_needs() -> None:
    assert {"aiohttp", "mailwarden.http"} <= _loaded_after(["http", "--help"])


def test_every_command_and_subcommand_resolves() -> None:
    commands = cli.commands  # walking them loads them all
    assert set(commands) == set(COMMANDS)
    for name, subcommands in SUBCOMMANDS.items():
        group = commands[name]
        assert isinstance(group, click.Group)
        assert set(subcommands) <= set(group.commands)
    ctx = click.Context(cli)
    assert cli.list_commands(ctx) == sorted(COMMANDS)
    assert cli.get_command(ctx, "no-such-command") is None
