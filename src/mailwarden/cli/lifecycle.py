"""How the long-running commands run: until SIGTERM or SIGINT, then an orderly stop.

`serve`, `submit` (and every later long-running front end) call `run_until_signalled` through
this module, so tests can replace it in one place (stopping as soon as the server listens).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from mailwarden.pipeline import Pipeline
from mailwarden.signing import Rotator, maintain

from .report import report_schedule

__all__ = ["run_until_signalled"]


async def run_until_signalled(
    server: AbstractAsyncContextManager[Any],
    announce: Callable[[], None],
    pipeline: Pipeline | None = None,
    rotator: Rotator | None = None,
) -> None:
    """Start `server`, `announce` it, and run until a signal; the pipeline's background work
    (DNS-list health checks, the DMARC reports' schedule) and the DKIM key rotation
    (`rotator`: activation once DNS shows a record, grace, revocation, schedule) run
    meanwhile, and are drained at the end."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    background = []
    if pipeline is not None:
        # RFC 5782 §5 test entries at start and then hourly: a failing list is ignored
        background.append(asyncio.ensure_future(pipeline.health_loop(stop)))
        # DMARC reports: the daily schedule and the watched Maildir ([reports])
        background += [asyncio.ensure_future(work) for work in report_schedule(pipeline, stop)]
    if rotator is not None:
        interval = rotator.settings.check_interval
        background.append(asyncio.ensure_future(maintain(rotator, stop, interval)))
    async with server:
        announce()
        await stop.wait()
    for task in background:
        await task
    if pipeline is not None:
        await pipeline.drain()
