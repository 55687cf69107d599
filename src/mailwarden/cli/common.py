"""What every command shares: DNS options, JSON output, and errors as one line with exit 2."""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console

from mailwarden.dns import Resolver
from mailwarden.pipeline import build_resolver
from mailwarden.settings import ConfigError, Settings, load_settings
from mailwarden.settings import Override as Override

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
    """The settings options every command that uses DNS takes: `--config` and `--dns-*`.

    `settings()` loads the configuration file (or the embedded defaults) with these options,
    and any the command adds, applied over it through the one settings reader; `build()` is
    the resolver the settings describe. Mistakes exit 2 naming the file or the option.
    """

    config: str | None
    servers: tuple[str, ...]
    zones: tuple[str, ...]
    timeout: float | None
    retries: int | None

    def overrides(self) -> dict[str, Override]:
        """The DNS options given on the command line, as settings overrides."""
        given: dict[str, Override] = {}
        if self.servers:
            given["dns.servers"] = (list(self.servers), "--dns-server")
        if self.zones:
            given["dns.zones"] = (list(self.zones), "--dns-zone")
        if self.timeout is not None:
            given["dns.timeout"] = (self.timeout, "--dns-timeout")
        if self.retries is not None:
            given["dns.retries"] = (self.retries, "--dns-retries")
        return given

    def settings(self, overrides: Mapping[str, Override] | None = None) -> Settings:
        """The settings: the file (or defaults), then these options, then `overrides`."""
        try:
            return load_settings(self.config, overrides={**self.overrides(), **(overrides or {})})
        except ConfigError as exc:
            fail(str(exc))

    def build(self, settings: Settings | None = None) -> Resolver:
        """Zones given: answer from them only (offline). Otherwise the configured servers,
        else the system's resolver (resolv.conf)."""
        settings = settings if settings is not None else self.settings()
        source = "--dns-zone" if self.zones else "--dns-server" if self.servers else None
        try:
            return build_resolver(settings.dns, source or settings.source)
        except ConfigError as exc:
            fail(str(exc))


def dns_options(command: F) -> F:
    """Adds --config, --dns-server, --dns-zone, --dns-timeout and --dns-retries, given to the
    command as `dns: DNSOptions`."""

    @click.option(
        "--config",
        "config_file",
        metavar="FILE",
        help="TOML configuration file (see examples/mailwarden.toml). [default: built-in]",
    )
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
        default=None,
        metavar="SECONDS",
        help="Timeout of one DNS query attempt. [default: 5, or [dns] timeout]",
    )
    @click.option(
        "--dns-retries",
        type=click.IntRange(min=0),
        default=None,
        help="Further attempts after a DNS timeout. [default: 2, or [dns] retries]",
    )
    @functools.wraps(command)
    def wrapper(
        *args: Any,
        config_file: str | None,
        dns_servers: tuple[str, ...],
        dns_zones: tuple[str, ...],
        dns_timeout: float | None,
        dns_retries: int | None,
        **kwargs: Any,
    ) -> Any:
        options = DNSOptions(config_file, dns_servers, dns_zones, dns_timeout, dns_retries)
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
