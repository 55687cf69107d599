"""The command line imports a command's module only when that command runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click

from mailwarden.cli import COMMANDS, SUBCOMMANDS, cli

HEAVY = (
    "aiohttp",
    "mailwarden.milter",
    "mailwarden.dashboard",
    "mailwarden.http",
    "mailwarden.cli.report",  # the DMARC reports command: check has no schedule
)


def _loaded_after(args: list[str], modules: tuple[str, ...] = HEAVY) -> set[str]:
    code = (
        "import json, sys\n"
        "from mailwarden.cli import run\n"
        f"status = run({args!r})\n"
        f"print(json.dumps([m for m in {modules!r} if m in sys.modules]))\n"
        "sys.exit(status)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
        env=env,
    )  # fmt: skip
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_check_does_not_load_the_servers() -> None:
    assert _loaded_after(["check", "--help"]) == set()


def test_a_batch_on_the_system_resolver_loads_neither_rich_nor_dnspython(tmp_path: Path) -> None:
    """JSON out and no terminal: no rich (15 ms of start-up); DNS servers, given or read from
    /etc/resolv.conf, not zone files: no dnspython (13 ms; its resolver, which read
    resolv.conf, 100-175 ms). `check` on a zone does load dnspython, for the zone."""
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    batch = ["check", "--batch", str(empty), "--json", "--workers", "1"]
    heavy = ("rich", "dns", "prometheus_client")  # check serves no /metrics: counts nothing
    assert _loaded_after([*batch, "--dns-server", "127.0.0.1:53"], heavy) == set()
    assert _loaded_after(batch, heavy) == set()  # the servers of /etc/resolv.conf
    zone = tmp_path / "zone"
    zone.write_text('$ORIGIN .\na.example. 300 IN TXT "v=spf1 -all"\n')
    assert _loaded_after([*batch, "--dns-zone", str(zone)], heavy) == {"dns"}


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
