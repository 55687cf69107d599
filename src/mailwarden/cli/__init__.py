"""The `mailwarden` command line."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

from mailwarden import __version__

from .analyze import analyze
from .check import check
from .common import EXIT_BAD_INPUT, EXIT_INTERNAL, one_line
from .dkim import dkim
from .dkimkeys import keys as dkim_keys
from .dkimkeys import rotate as dkim_rotate
from .dmarc import dmarc
from .domain import domain
from .greylist import greylist
from .http import http
from .milter import milter
from .netchecks import dnsbl, helo, iprev
from .policy import policy
from .postfix import postfix
from .report import report
from .serve import serve, sink
from .spf import spf
from .spfbuild import build as spf_build
from .srs import srs
from .submit import submit
from .user import user

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


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mailwarden")
def cli() -> None:
    """mailwarden: e-mail authentication checks and anti-spam tools."""


cli.add_command(spf)
cli.add_command(check)
cli.add_command(dkim)
cli.add_command(serve)
cli.add_command(sink)
cli.add_command(dmarc)
cli.add_command(greylist)
cli.add_command(iprev)
cli.add_command(helo)
cli.add_command(dnsbl)
cli.add_command(analyze)
cli.add_command(domain)
cli.add_command(submit)
cli.add_command(user)
cli.add_command(srs)
cli.add_command(report)
cli.add_command(milter)
cli.add_command(http)
cli.add_command(policy)
cli.add_command(postfix)
spf.add_command(spf_build)
dkim.add_command(dkim_rotate)
dkim.add_command(dkim_keys)


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
