"""What every command shares: DNS options, JSON output, and errors as one line with exit 2."""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console

from mailwarden.dns import Resolver, StaticResolver
from mailwarden.dns.cache import CachingResolver
from mailwarden.dns.system import SystemResolver, parse_server

# Exit codes, documented in `mailwarden --help`.
EXIT_OK = 0
EXIT_PARTIAL = 1  # the command ran, but some input could not be evaluated or a check failed
EXIT_BAD_INPUT = 2  # bad option, address, domain or file: nothing was evaluated
EXIT_INTERNAL = 70  # a bug: please report it (EX_SOFTWARE)

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
R = TypeVar("R")


class BadInput(click.ClickException):
    """Bad user input: one clear line on stderr, exit status 2."""

    exit_code = EXIT_BAD_INPUT


def fail(message: str) -> NoReturn:
    raise BadInput(message)


@dataclass(frozen=True)
class DNSOptions:
    servers: tuple[str, ...]
    zones: tuple[str, ...]
    timeout: float
    retries: int

    def build(self) -> Resolver:
        """Zones given: answer from them only (offline). Otherwise the system's resolver."""
        inner: Resolver
        if self.zones:
            static = StaticResolver()
            for zone in self.zones:
                try:
                    text = Path(zone).read_text(encoding="utf-8")
                except OSError as exc:
                    fail(f"cannot read zone file {zone}: {exc.strerror or exc}")
                except UnicodeDecodeError:
                    fail(f"zone file {zone} is not UTF-8 text")
                try:
                    static.load_master_text(text)
                except ValueError as exc:
                    fail(f"bad zone file {zone}: {exc}")
            inner = static
        else:
            for server in self.servers:
                try:
                    parse_server(server)
                except ValueError as exc:
                    fail(f"bad --dns-server {server!r}: {exc}")
            inner = SystemResolver(self.servers, timeout=self.timeout, retries=self.retries)
        return CachingResolver(inner)


def dns_options(command: F) -> F:
    """Adds --dns-server, --dns-zone, --dns-timeout and --dns-retries as `dns: DNSOptions`."""

    @click.option(
        "--dns-server",
        "dns_servers",
        multiple=True,
        metavar="HOST[:PORT]",
        help="Query this DNS server instead of resolv.conf's (repeatable).",
    )
    @click.option(
        "--dns-zone",
        "dns_zones",
        multiple=True,
        metavar="FILE",
        help="Answer from this RFC 1035 master file instead of the network (repeatable).",
    )
    @click.option(
        "--dns-timeout",
        type=click.FloatRange(min=0.01),
        default=5.0,
        show_default=True,
        metavar="SECONDS",
        help="Timeout of one DNS query attempt.",
    )
    @click.option(
        "--dns-retries",
        type=click.IntRange(min=0),
        default=2,
        show_default=True,
        help="Further attempts after a DNS timeout.",
    )
    @functools.wraps(command)
    def wrapper(
        *args: Any,
        dns_servers: tuple[str, ...],
        dns_zones: tuple[str, ...],
        dns_timeout: float,
        dns_retries: int,
        **kwargs: Any,
    ) -> Any:
        options = DNSOptions(dns_servers, dns_zones, dns_timeout, dns_retries)
        return command(*args, dns=options, **kwargs)

    return wrapper  # type: ignore[return-value]


def json_option(command: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")(
        command
    )


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")


def console() -> Console:
    """Rich console for human output; plain (no colour codes) when not a terminal."""
    return Console(highlight=False, soft_wrap=True)


async def ordered_map(
    items: Iterable[T], work: Callable[[T], Awaitable[R]], concurrency: int = 64
) -> AsyncIterator[R]:
    """`work` over `items` with at most `concurrency` in flight, results in input order."""
    window: collections.deque[asyncio.Task[R]] = collections.deque()
    try:
        for item in items:
            window.append(asyncio.ensure_future(work(item)))
            if len(window) >= concurrency:
                yield await window.popleft()
        while window:
            yield await window.popleft()
    finally:
        for task in window:
            task.cancel()
