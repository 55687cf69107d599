"""The `mailwarden` command line."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from mailwarden import __version__

from .common import EXIT_BAD_INPUT, EXIT_INTERNAL, one_line

# Each command's module, imported when the command is used (see LazyGroup).
COMMANDS: dict[str, str] = {
    "analyze": "analyze:analyze",
    "check": "check:check",
    "dkim": "dkim:dkim",
    "dmarc": "dmarc:dmarc",
    "dnsbl": "netchecks:dnsbl",
    "domain": "domain:domain",
    "greylist": "greylist:greylist",
    "helo": "netchecks:helo",
    "http": "http:http",
    "iprev": "netchecks:iprev",
    "milter": "milter:milter",
    "policy": "policy:policy",
    "postfix": "postfix:postfix",
    "report": "report:report",
    "serve": "serve:serve",
    "sink": "serve:sink",
    "spf": "spf:spf",
    "srs": "srs:srs",
    "submit": "submit:submit",
    "user": "user:user",
}
# Subcommands defined in a module of their own, attached to their group when it is loaded.
SUBCOMMANDS: dict[str, dict[str, str]] = {
    "spf": {"build": "spfbuild:build"},
    "dkim": {"rotate": "dkimkeys:rotate", "keys": "dkimkeys:keys"},
}


def _import(target: str) -> click.Command:
    module, _, name = target.partition(":")
    command = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    assert isinstance(command, click.Command)
    return command


class LazyGroup(click.Group):
    """The top-level group, importing each command's module only when that command runs:
    `mailwarden check` does not load the milter, the HTTP server and the dashboard, which
    were most of its start-up (`check --help`: 1.7-2.4 s before, 0.8-1.1 s after, same
    loaded machine). `--help` and anything that walks `commands` load them all, so the
    group looks as it always did."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        self._lazy = dict(lazy)
        self._loaded: dict[str, click.Command] = {}
        super().__init__(*args, **kwargs)

    @property  # type: ignore[override]
    def commands(self) -> dict[str, click.Command]:
        """Every command, loaded."""
        for name in list(self._lazy):
            self._load(name)
        return self._loaded

    @commands.setter
    def commands(self, value: dict[str, click.Command]) -> None:
        self._loaded = dict(value)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self._loaded, *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            self._load(cmd_name)
        return self._loaded.get(cmd_name)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        self._loaded[name or str(cmd.name)] = cmd

    def _load(self, name: str) -> None:
        command = _import(self._lazy.pop(name))
        if isinstance(command, click.Group):
            for sub, target in SUBCOMMANDS.get(name, {}).items():
                if sub not in command.commands:
                    command.add_command(_import(target), sub)
        self._loaded[name] = command


EPILOG = """\b
Exit status:
  0   the command ran (whatever the SPF/DKIM/DMARC results were)
  1   it ran, but some input lines could not be evaluated (see their "error"),
      or (domain check) an error-level finding exists, or (dmarc record) DNS failed
  2   bad input: option, address, domain or file; nothing was evaluated
  3   (domain check) no error-level finding, but DNS lookups timed out or failed,
      so some checks were not done
  70  internal error (a bug: set MAILWARDEN_DEBUG=1 for the traceback and report it)
"""


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="mailwarden")
def cli() -> None:
    """mailwarden: e-mail authentication checks and anti-spam tools."""


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status. Errors are one line on stderr."""
    args = list(argv) if argv is not None else sys.argv[1:]
    for number, arg in enumerate(args, 1):
        if "\x00" in arg:  # execve() cannot pass one: only a program calling run() can
            click.echo(f"mailwarden: error: argument {number} contains a NUL character", err=True)
            return EXIT_BAD_INPUT
    try:
        cli.main(
            args=args,
            prog_name="mailwarden",
            standalone_mode=False,
        )
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except click.exceptions.Exit as exc:  # --help, --version
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("mailwarden: aborted", err=True)
        return 130
    except click.ClickException as exc:  # usage errors and BadInput: one clear line
        click.echo(f"mailwarden: error: {one_line(exc.format_message())}", err=True)
        return EXIT_BAD_INPUT if isinstance(exc, click.UsageError) else exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("MAILWARDEN_DEBUG"):
            raise
        click.echo(
            f"mailwarden: internal error: {type(exc).__name__}: {one_line(str(exc))}", err=True
        )
        return EXIT_INTERNAL
    return 0


def main() -> None:
    """Console entry point."""
    sys.exit(run())
