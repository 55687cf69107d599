"""Writing transactions off the SMTP path: `record` only queues; a background task writes
batches. A store that fails loses the batch (logged), never the message: the reply the
client gets never waits for, or depends on, this store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable

from .model import TransactionRecord
from .store import TransactionStore

__all__ = ["TransactionRecorder"]

log = logging.getLogger("mailwarden.transactions")


class TransactionRecorder:
    """Queues records and writes them to `store` in batches of up to `batch` every
    `interval` seconds; at most `max_queued` wait (the oldest are dropped beyond, counted in
    `dropped`). Every `prune_every` seconds, rows beyond `keep_days` / `max_rows` go. A
    write that takes longer than `write_timeout` seconds is given up (its batch lost)."""

    def __init__(
        self,
        store: TransactionStore,
        *,
        keep_days: float = 7.0,
        max_rows: int = 200_000,
        interval: float = 1.0,
        batch: int = 500,
        max_queued: int = 50_000,
        prune_every: float = 600.0,
        write_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.keep_days = keep_days
        self.max_rows = max_rows
        self.interval = interval
        self.batch = batch
        self.prune_every = prune_every
        self.write_timeout = write_timeout
        self.clock = clock
        self._queue: deque[TransactionRecord] = deque(maxlen=max_queued)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._last_prune = 0.0
        self.dropped = 0
        self.failed = 0
        self.written = 0

    def record(self, record: TransactionRecord) -> None:
        """Queue `record` (never blocks, never raises for the store)."""
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(record)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._writer())

    async def flush(self) -> None:
        """Write everything queued now (tests, the dashboard's own reads, shutdown)."""
        while self._queue:
            await self._write_batch()

    async def _writer(self) -> None:
        while self._queue:
            with contextlib.suppress(TimeoutError):  # closing wakes it at once
                await asyncio.wait_for(self._wake.wait(), self.interval)
            await self._write_batch()

    async def _write_batch(self) -> None:
        records = [self._queue.popleft() for _ in range(min(self.batch, len(self._queue)))]
        try:
            async with asyncio.timeout(self.write_timeout):
                await self.store.add(records)
                self.written += len(records)
                now = self.clock()
                if now - self._last_prune >= self.prune_every:
                    self._last_prune = now
                    await self.store.prune(now, self.keep_days, self.max_rows)
        except Exception as exc:  # the store is down: these records are lost, mail is not
            self.failed += len(records)
            log.warning("transactions store: %d records not kept: %s", len(records), exc)

    async def close(self, seconds: float = 10.0) -> None:
        """Write what is queued (for at most `seconds`: a store that hangs does not
        hold up the shutdown), stop, and close the store."""
        self._wake.set()
        try:
            async with asyncio.timeout(seconds):
                if self._task is not None:
                    await asyncio.gather(self._task, return_exceptions=True)
                await self.flush()
                await self.store.close()
        except TimeoutError:
            lost = len(self._queue)
            self._queue.clear()
            self.failed += lost
            log.warning("transactions store: did not answer at shutdown, %d records lost", lost)
        finally:
            if self._task is not None:
                self._task.cancel()
            self._task = None
