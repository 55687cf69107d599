"""Recording evaluations without slowing the mail down.

`Recorder.record()` only appends to a list; a background task writes batches to the store
(whose driver runs on its own thread), purges what is older than the retention time, and keeps
failure-report incidents when failure reports are on. A store that cannot keep up loses
records (counted in `dropped`), never mail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from .config import ReportSettings
from .evaluation import Evaluation
from .failure import failure_wanted, make_incident
from .store import Incident, ReportStore

__all__ = ["Recorder"]

log = logging.getLogger("mailwarden.reports")

DAY = 86400.0


class Recorder:
    """Writes evaluations to `store` in the background, in batches of up to `batch`, at least
    every `interval` seconds. At most `queue_limit` wait; beyond that they are dropped."""

    def __init__(
        self,
        store: ReportStore,
        settings: ReportSettings,
        *,
        secret: bytes = b"",
        clock: Callable[[], float] = time.time,
        interval: float = 1.0,
        batch: int = 2000,
        queue_limit: int = 100_000,
        purge_interval: float = 3600.0,
    ) -> None:
        self.store = store
        self.settings = settings
        self.secret = secret
        self.clock = clock
        self.interval = interval
        self.batch = batch
        self.queue_limit = queue_limit
        self.purge_interval = purge_interval
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self._queue: list[Evaluation] = []
        self._incidents: list[Incident] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._last_purge = 0.0

    def wants_headers(self, evaluation: Evaluation) -> bool:
        """Whether `record` needs the message's header section (a failure report is due)."""
        return failure_wanted(evaluation, self.settings.failure)

    def record(
        self, evaluation: Evaluation, headers: bytes = b"", body: bytes = b"", mail_from: str = ""
    ) -> None:
        """Queue one evaluation (and, when a failure report is wanted, its incident: pass
        the header section, the body and the MAIL FROM address then)."""
        if self._closed or len(self._queue) >= self.queue_limit:
            self.dropped += 1
            return
        self._queue.append(evaluation)
        if headers and self.wants_headers(evaluation):
            incident = make_incident(
                evaluation,
                headers,
                body,
                self.settings.failure,
                secret=self.secret,
                mail_from=mail_from,
            )
            if incident is not None:
                self._incidents.append(incident)
        self._start()
        if len(self._queue) >= self.batch and self._wake is not None:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    def _start(self) -> None:
        if self._task is not None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no loop: flushed by whoever closes us
            return
        self._wake = asyncio.Event()
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            self._wake.clear()
            await self.flush()
            await self._maybe_purge()

    async def flush(self) -> None:
        """Write what is queued now."""
        incidents, self._incidents = self._incidents, []
        for incident in incidents:
            try:
                await self.store.add_incident(incident)
            except Exception:
                log.exception("cannot keep a failure-report incident")
        while self._queue:
            batch, self._queue = self._queue[: self.batch], self._queue[self.batch :]
            try:
                await self.store.add_evaluations(batch)
                self.written += len(batch)
            except Exception:
                self.failed += len(batch)
                log.exception("cannot write %d evaluations to the report store", len(batch))
                return

    async def _maybe_purge(self) -> None:
        now = self.clock()
        if now - self._last_purge < self.purge_interval:
            return
        self._last_purge = now
        try:
            await self.store.purge(
                now,
                keep=self.settings.keep_days * DAY,
                keep_imported=self.settings.keep_imported_days * DAY,
            )
        except Exception:
            log.exception("cannot purge the report store")

    async def close(self) -> None:
        """Write what is queued, stop, and close the store (once)."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            assert self._wake is not None
            self._wake.set()
            await self._task
            self._task = None
        await self.flush()
        await self.store.close()
