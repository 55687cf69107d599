"""How the long-running commands run: until SIGTERM or SIGINT, reloading on SIGHUP.

`serve`, `submit`, `policy` (and every later long-running front end) call
`run_until_signalled` through this module, so tests can replace it in one place (stopping as
soon as the server listens).

SIGHUP: `reload` (a coroutine function the command gives) re-reads the settings, builds a new
pipeline and installs it in the server, so new connections (new requests, for the policy
service) use it while those already open finish on the old one: no connection is dropped. A
configuration that cannot be used is logged and the running one kept. The old pipeline's
background work stops; its stores are drained at exit.

SIGTERM (or SIGINT): the listener closes, the transactions in flight finish (up to `grace`
seconds, STOP_GRACE by default: systemd's TimeoutStopSec must be longer), then the rest is cut
and the background work drained. A server takes part in this orderly stop by having
`stop_accepting()` and `wait_idle(seconds)` (the `Draining` protocol); others just close.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, runtime_checkable

import click

from mailwarden.pipeline import Pipeline
from mailwarden.signing import Rotator, maintain

from .common import one_line

__all__ = ["STOP_GRACE", "Draining", "Reload", "Told", "run_until_signalled"]

STOP_GRACE = 30.0  # seconds the transactions in flight get after SIGTERM

Reload = Callable[[], Awaitable[Pipeline | None]]
"""Re-read the settings, build and install the new pipeline, return it (None: nothing to
hand over). Raise on a configuration that cannot be used: the running one stays."""

Told = Callable[[str, bool], None]
"""A reload's outcome: its log line (without "mailwarden: ") and whether the new settings are
in force. By default logged; a worker of `serve --workers` tells its supervisor, which says
it once for all workers."""


@runtime_checkable
class Draining(Protocol):
    """A server that can stop taking connections and finish what it has."""

    async def stop_accepting(self) -> None: ...

    async def wait_idle(self, seconds: float) -> bool: ...


class _Generation:
    """One pipeline's background work: DNS-list health checks (RFC 5782 §5 test entries at
    start and then hourly) and the DMARC reports' schedule, stopped when it is replaced."""

    def __init__(self, pipeline: Pipeline | None) -> None:
        self.pipeline = pipeline
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Future[None]] = []
        if pipeline is not None:
            # Imported here: `check --batch` imports this module (through its workers) and has
            # no schedule; the reports' command module cost it 90 ms of start-up.
            from .report import report_schedule

            self.tasks.append(asyncio.ensure_future(pipeline.health_loop(self.stop)))
            self.tasks += [asyncio.ensure_future(w) for w in report_schedule(pipeline, self.stop)]

    async def finish(self) -> None:
        self.stop.set()
        for task in self.tasks:
            await task


def _say(text: str) -> None:
    click.echo(f"mailwarden: {one_line(text)}", err=True)


async def run_until_signalled(
    server: AbstractAsyncContextManager[Any],
    announce: Callable[[], None],
    pipeline: Pipeline | None = None,
    rotator: Rotator | None = None,
    *,
    reload: Reload | None = None,
    grace: float = STOP_GRACE,
    told: Told | None = None,
) -> None:
    """Start `server`, `announce` it, and run until SIGTERM/SIGINT, reloading on SIGHUP; the
    pipeline's background work and the DKIM key rotation (`rotator`) run meanwhile, and are
    drained at the end. `told` gets each reload's outcome instead of the log."""
    loop = asyncio.get_running_loop()
    stop, hangup = asyncio.Event(), asyncio.Event()
    for signum, event in ((signal.SIGTERM, stop), (signal.SIGINT, stop), (signal.SIGHUP, hangup)):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, event.set)
    current = _Generation(pipeline)
    retired: list[_Generation] = []
    rotation = None
    if rotator is not None:
        interval = rotator.settings.check_interval
        rotation = asyncio.ensure_future(maintain(rotator, stop, interval))
    try:
        async with server:
            announce()
            while await _next_signal(stop, hangup) == "reload":
                new = await _reload(reload, told or _told)
                if new is not None:
                    await current.finish()  # its stores stay open for connections still on it
                    retired.append(current)
                    current = _Generation(new)
            if isinstance(server, Draining):
                await server.stop_accepting()
                if not await server.wait_idle(grace):
                    _say(f"warning: transactions still open after {grace:g} s are cut")
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)
        stop.set()
        if rotation is not None:
            await rotation
        for generation in (*retired, current):
            await generation.finish()
            if generation.pipeline is not None:
                await generation.pipeline.drain()


async def _next_signal(stop: asyncio.Event, hangup: asyncio.Event) -> str:
    """ "stop" or "reload", whichever signal came (stop wins when both did)."""
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(hangup.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
    if stop.is_set():
        return "stop"
    hangup.clear()
    return "reload"


def _told(text: str, in_force: bool) -> None:
    _say(text)


async def _reload(reload: Reload | None, told: Told) -> Pipeline | None:
    if reload is None:
        told("SIGHUP: this command has no settings to reload", False)
        return None
    kept = "warning: reload failed, the running configuration is kept"
    try:
        new = await reload()
    except click.ClickException as exc:  # fail(): the settings' own error, one line
        told(f"{kept}: {one_line(exc.message)}", False)
        return None
    except Exception as exc:  # a store that does not open, a file that went away, ...
        told(f"{kept}: {one_line(str(exc))}", False)
        return None
    told("settings reloaded: new connections use them", True)
    return new
