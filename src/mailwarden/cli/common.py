"""What every command shares: DNS options, checked numbers and addresses, JSON output, JSON-lines
batches, and errors as one line with exit 2."""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import math
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from mailwarden import runtime
from mailwarden.dns import Answer, IPAddress, RdType, Resolver
from mailwarden.dns.cache import CachingResolver
from mailwarden.ipinput import parse_ip_input
from mailwarden.jsontext import clean_text as clean_text
from mailwarden.jsontext import dumps
from mailwarden.message import Message, MessageError, read_message
from mailwarden.pipeline import Pipeline, build, build_resolver
from mailwarden.settings import ConfigError, Settings, load_settings
from mailwarden.settings import Override as Override

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live

# Exit codes, documented in `mailwarden --help`.
EXIT_OK = 0
EXIT_PARTIAL = 1  # the command ran, but some input could not be evaluated or a check failed
EXIT_BAD_INPUT = 2  # bad option, address, domain or file: nothing was evaluated
EXIT_DNS_FAILED = 3  # (domain check) some DNS lookups failed: those checks were not done
EXIT_INTERNAL = 70  # a bug: please report it (EX_SOFTWARE)

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
R = TypeVar("R")

MAX_DNS_TIMEOUT = 60.0  # seconds per attempt; longer is a typo, not a wish
MAX_DNS_RETRIES = 10
STATUS_DELAY = 1.0  # seconds a DNS query may take before the status line says what it waits for
PIPE_WIDTH = 100_000  # output that is not a terminal: wide enough to never cut a value


class BadInput(click.ClickException):
    """Bad user input: one clear line on stderr, exit status 2."""

    exit_code = EXIT_BAD_INPUT


def fail(message: str) -> NoReturn:
    raise BadInput(message)


def one_line(text: str) -> str:
    """`text` as one printable line: line breaks and other control characters (from a file
    name or a value given on the command line) shown escaped, as Python writes them."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


# -- numbers and addresses -----------------------------------------------------------------


class FiniteFloat(click.FloatRange):
    """A number in a range: ASCII digits only, and never nan, inf or one that overflows
    (1e309). click's FloatRange lets nan through every bound, so every float option is this."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.isascii():
            self.fail(f"{value!r} is not a number (ASCII digits only)", param, ctx)
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number + 0.0, param, ctx)  # + 0.0: -0 is 0


class BoundedInt(click.IntRange):
    """A whole number in a range: ASCII digits only (click's IntRange takes "٣" as 3)."""

    name = "integer"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip().isascii():
            self.fail(f"{value!r} is not a whole number (ASCII digits only)", param, ctx)
        return super().convert(value, param, ctx)


def parse_address(text: str, what: str = "IP address") -> IPAddress:
    """An IP address from the command line or a batch line; ValueError saying what is wrong
    (scoped IPv6 and invalid dotted quads included: see `mailwarden.ipinput`)."""
    return parse_ip_input(text, what)


def address_arg(text: str, what: str = "IP address") -> IPAddress:
    """`parse_address`, failing with exit 2."""
    try:
        return parse_address(text, what)
    except ValueError as exc:
        fail(str(exc))


# -- DNS -----------------------------------------------------------------------------------


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

    def build(self, settings: Settings | None = None, *, status: bool = True) -> Resolver:
        """Zones given: answer from them only (offline). Otherwise the configured servers,
        else the system's resolver (resolv.conf). With `status` (a command that waits for
        its answers; not a server, which logs instead), a status line on a terminal's stderr
        says what a query that takes long waits for."""
        settings = settings if settings is not None else self.settings()
        source = "--dns-zone" if self.zones else "--dns-server" if self.servers else None
        try:
            resolver = build_resolver(settings.dns, source or settings.source)
        except ConfigError as exc:
            fail(str(exc))
        terminal = status_console() if status else None
        if terminal is not None and isinstance(resolver, CachingResolver):
            resolver.inner = WaitStatus(resolver.inner, terminal)  # behind the cache: misses
        return resolver


def status_console() -> Console | None:
    """The console for the DNS status line: stderr, only when it is a terminal."""
    if not sys.stderr.isatty() and not {"TTY_COMPATIBLE", "FORCE_COLOR"} & os.environ.keys():
        return None  # nothing can make it one: rich is not even imported (15 ms of a start)
    from rich.console import Console

    console = Console(stderr=True, highlight=False)
    return console if console.is_terminal else None


class WaitStatus:
    """Wraps a resolver: once a query has waited STATUS_DELAY seconds, a status line (rich,
    on a terminal's stderr) says what the command waits for, until no query is pending."""

    def __init__(self, inner: Resolver, console: Console, delay: float | None = None) -> None:
        self.inner = inner
        self.console = console
        self.delay = STATUS_DELAY if delay is None else delay
        self._pending: dict[int, tuple[str, RdType, float]] = {}
        self._next = 0
        self._live: Live | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def resolve(self, name: str, rdtype: RdType) -> Answer:
        loop = asyncio.get_running_loop()
        token = self._next
        self._next += 1
        self._pending[token] = (name, rdtype, loop.time())
        if self._timer is None:
            self._timer = loop.call_later(self.delay, self._tick)
        try:
            return await self.inner.resolve(name, rdtype)
        finally:
            del self._pending[token]
            if not self._pending:
                self._stop()

    def _tick(self) -> None:
        self._timer = None
        if not self._pending:
            return
        loop = asyncio.get_running_loop()
        name, rdtype, started = min(self._pending.values(), key=lambda p: p[2])
        waited = loop.time() - started
        if waited >= self.delay:
            others = len(self._pending) - 1
            text = f"waiting for DNS: {name} {rdtype} ({waited:.0f} s)" + (
                f", {others} more {'query' if others == 1 else 'queries'}" if others else ""
            )
            from rich.live import Live
            from rich.spinner import Spinner
            from rich.text import Text

            line = Spinner("dots", Text(one_line(text)))  # a name may hold escapes
            if self._live is None:  # stdout is left alone: results never go to stderr
                self._live = Live(
                    line,
                    console=self.console,
                    transient=True,
                    redirect_stdout=False,
                    redirect_stderr=False,
                )
                self._live.start()
            else:
                self._live.update(line)
        self._timer = loop.call_later(min(0.5, self.delay), self._tick)

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._live is not None:
            self._live.stop()
            self._live = None


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
        help="Query this DNS server (an address, or a host name resolved once at start-up) "
        "instead of resolv.conf's (repeatable).",
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
        type=FiniteFloat(min=0.01, max=MAX_DNS_TIMEOUT),
        default=None,
        metavar="SECONDS",
        help="Timeout of one DNS query attempt. [default: 5, or [dns] timeout]",
    )
    @click.option(
        "--dns-retries",
        type=BoundedInt(min=0, max=MAX_DNS_RETRIES),
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


# -- output --------------------------------------------------------------------------------


def json_option(command: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")(
        command
    )


def json_line(data: Any) -> str:
    """One JSON document as one line of text (no newline), valid UTF-8 whatever bytes the
    input held."""
    return dumps(data)


def print_json(data: Any) -> None:
    """One JSON document on one line, valid UTF-8 whatever bytes the input held."""
    sys.stdout.write(json_line(data) + "\n")


def console() -> Console:
    """Rich console for human output; plain (no colour codes) when not a terminal, and then
    wide enough that no table cuts or wraps a value (`| cat`, `| grep` see every value)."""
    from rich.console import Console  # here: commands writing JSON never import rich

    out = Console(highlight=False, soft_wrap=True)
    if not out.is_terminal:
        out.width = PIPE_WIDTH
    return out


def read_bytes(path: str) -> bytes:
    """A file's bytes ("-": standard input); exit 2 with one line when unreadable."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}")


def load_message(path: str) -> tuple[Message, bytes]:
    """The message (bare LF read as CRLF) and the file's bytes as they were."""
    data = read_bytes(path)
    try:
        return read_message(data), data
    except MessageError as exc:
        fail(f"{path}: {exc}")


def parse_now(text: str) -> float:
    """Seconds since the epoch, or an ISO 8601 date and time (UTC unless it says otherwise)."""
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            fail(f"--now {text!r} is not a finite timestamp")
        return value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--now {text!r} is neither a Unix timestamp nor an ISO 8601 date")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# -- batches -------------------------------------------------------------------------------


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


async def line_outcome(
    number: int,
    raw: bytes,
    evaluate: Callable[[int, dict[str, Any]], Awaitable[dict[str, Any]]],
    error_fields: dict[str, Any] | None,
) -> tuple[str, dict[str, Any]]:
    """One batch line's JSON object and its kind: "ok", "error" (a bad line, reported as
    {"line": N, "error": ...}) or "internal" (a bug on this line: reported, the batch goes
    on)."""
    try:
        result = await evaluate(number, read_line(number, raw))
    except LineError as exc:
        return "error", {"line": number, **(error_fields or {}), **exc.fields, "error": str(exc)}
    except Exception as exc:  # a bug: say so on this line, keep going
        if os.environ.get("MAILWARDEN_DEBUG"):
            raise
        return "internal", {
            "line": number,
            **(error_fields or {}),
            "error": f"internal error: {type(exc).__name__}: {exc}",
        }
    return ("error" if "error" in result else "ok"), result


class LineError(ValueError):
    """A batch line that cannot be evaluated; `fields` go into its error object."""

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.fields = fields


def read_line(number: int, raw: bytes) -> dict[str, Any]:
    """One JSON-lines batch line as a JSON object; LineError saying what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LineError(f"not UTF-8 text (byte {exc.start + 1})") from None
    if not text.strip():
        raise LineError("empty line")
    try:
        item = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, and RecursionError's cousins
        raise LineError(f"not JSON: {exc}") from None
    except RecursionError:
        raise LineError("not JSON: nested too deeply") from None
    if not isinstance(item, dict):
        raise LineError("expected a JSON object")
    return item


def string_field(item: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    """`item[key]` when it is a string; LineError when it is missing (and required) or not."""
    value = item.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise LineError(f'"{key}" is missing or not a string')
    return value


def run_batch(
    stream: IO[bytes],
    evaluate: Callable[[int, dict[str, Any]], Awaitable[dict[str, Any]]],
    *,
    concurrency: int,
    error_fields: dict[str, Any] | None = None,
) -> int:
    """Evaluate a JSON-lines batch concurrently, one JSON result per line in input order, and
    return the exit status. A line that cannot be evaluated (not UTF-8, empty, not JSON, a bad
    field) is reported as {"line": N, "error": ...} and the batch goes on (exit 1); a bug on
    one line is reported the same way, the batch goes on, and the exit status is 70."""
    counts = {"errors": 0, "internal": 0}

    async def work(item: tuple[int, bytes]) -> dict[str, Any]:
        kind, result = await line_outcome(*item, evaluate, error_fields)
        if kind == "internal":
            counts["internal"] += 1
        return result

    async def main() -> None:
        async for line in ordered_map(enumerate(stream, 1), work, concurrency):
            if "error" in line:
                counts["errors"] += 1
            print_json(line)

    runtime.run(main())
    if counts["internal"]:
        click.echo(
            f"mailwarden: internal error on {counts['internal']} line(s) (a bug: set "
            "MAILWARDEN_DEBUG=1 for the traceback and report it)",
            err=True,
        )
        return EXIT_INTERNAL
    return EXIT_PARTIAL if counts["errors"] else EXIT_OK


def server_pipeline(settings: Settings, dns: DNSOptions) -> Pipeline:
    """The pipeline of a long-running front end (gateway, milter): greylisting, DMARC report
    recording and the store of recent transactions on; unusable settings or stores exit 2."""
    try:
        return build(
            settings,
            dns.build(settings, status=False),
            greylist=True,
            reports=True,
            transactions=True,
        )
    except ConfigError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot open the greylist or report store: {exc.strerror or exc}")
