"""Connection limits shared by the gateway's worker processes (`serve --workers N`).

`max_connections` and `max_connections_per_client` hold across all workers, not per worker:
the counts live in one block of shared memory made before the workers are forked, with one
column per worker so that a worker's own counts can be dropped when it dies (the supervisor
calls `forget`), and one process-shared lock around each admission (read the sums, count in).

The total is exact. Per client, addresses are counted in `BUCKETS` hashed buckets: two
addresses that share a bucket share one count, which can only refuse early, never admit
more than the limit (with 100 clients connected, a new address shares a bucket with another
about 0.6% of the time, and is refused early only if their connections together reach the
per-client limit).
"""

from __future__ import annotations

import ipaddress
import mmap
import multiprocessing
import zlib
from typing import Literal

__all__ = ["BUCKETS", "SharedAdmission"]

BUCKETS = 16_384
_INT = 4  # bytes per counter (a C int)
_LOCK_TIMEOUT = 2.0  # seconds; longer means a holder died inside the lock (see `forget`)

Refusal = Literal["total", "client"]


def _key(ip: str) -> bytes:
    try:
        return ipaddress.ip_address(ip).packed
    except ValueError:  # not an address (a Unix socket peer, a test name): its text
        return ip.encode("utf-8", "surrogateescape")


class SharedAdmission:
    """Counts of admitted connections for `workers` processes, in memory they all share.

    Make it in the supervisor before forking; each worker calls `bind(index)` once, then
    `admit` / `release` for its connections."""

    def __init__(self, workers: int, max_connections: int, max_per_client: int) -> None:
        if workers < 1:
            raise ValueError("at least one worker")
        self.workers = workers
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        # [holder] [total per worker] [bucket x worker]
        self._memory = mmap.mmap(-1, _INT * (1 + workers + BUCKETS * workers))
        self._counts = memoryview(self._memory).cast("i")
        self._lock = multiprocessing.get_context("fork").Lock()
        self._index = -1

    def bind(self, index: int) -> None:
        """This process is worker `index` (0 .. workers-1)."""
        if not 0 <= index < self.workers:
            raise ValueError(f"worker index {index} out of range")
        self._index = index

    def _bucket(self, ip: str) -> int:
        return 1 + self.workers + (zlib.crc32(_key(ip)) % BUCKETS) * self.workers

    def total(self) -> int:
        n = self.workers
        return sum(self._counts[1 : 1 + n])

    def client(self, ip: str) -> int:
        start = self._bucket(ip)
        return sum(self._counts[start : start + self.workers])

    def admit(self, ip: str) -> Refusal | None:
        """Count a connection from `ip` in for this worker, or say which limit refuses it.
        A lock that cannot be had in time refuses too (a temporary 421, never an admission
        past the limits)."""
        me = self._index
        if me < 0:
            raise RuntimeError("bind(index) first")
        if not self._lock.acquire(timeout=_LOCK_TIMEOUT):
            return "total"
        try:
            self._counts[0] = me + 1
            if self.total() >= self.max_connections:
                return "total"
            bucket = self._bucket(ip)
            if sum(self._counts[bucket : bucket + self.workers]) >= self.max_per_client:
                return "client"
            self._counts[1 + me] += 1
            self._counts[bucket + me] += 1
            return None
        finally:
            self._counts[0] = 0
            self._lock.release()

    def release(self, ip: str) -> None:
        """A connection admitted by this worker ended (only this worker writes its column)."""
        me = self._index
        bucket = self._bucket(ip)
        if self._counts[bucket + me] > 0:
            self._counts[bucket + me] -= 1
        if self._counts[1 + me] > 0:
            self._counts[1 + me] -= 1

    def forget(self, index: int) -> None:
        """Worker `index` died: its connections are gone, so are its counts (supervisor).
        A worker killed while holding the lock leaves it held: it is released here."""
        n = self.workers
        if self._counts[0] == index + 1:
            self._counts[0] = 0
            self._lock.release()
        self._counts[1 + index] = 0
        for bucket in range(BUCKETS):
            self._counts[1 + n + bucket * n + index] = 0
