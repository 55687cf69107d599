"""A byte stream over one asyncio connection that can see what the client has sent ahead.

asyncio's StreamReader hides its buffer; the strict-SMTP tests need it: a client that talks
before the greeting (pregreet) or sends commands ahead of a reply without PIPELINING is found
by looking at what is already buffered, without consuming it. The stream also upgrades to TLS
in place (STARTTLS) and applies flow control in both directions.

Every wait has a deadline: the one the caller gives, the session's (`session_deadline`, a total
time limit for the connection) and, while message data is read, the data-rate deadline of
`meter` (a minimum average rate). Which one ran out is told by the exception: TimeoutError,
SessionTimeExceeded or DataTooSlow (both TimeoutErrors).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import cast

__all__ = [
    "ConnectionClosed",
    "DataRate",
    "DataTooSlow",
    "LineTooLong",
    "SessionTimeExceeded",
    "Stream",
]


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


HIGH_WATER = 256 * 1024  # stop reading from the socket above this many buffered octets


class ConnectionClosed(Exception):
    """The peer closed the connection (or it broke) before a full line arrived."""


class LineTooLong(Exception):
    """A line exceeded the limit; it has been read and thrown away up to its LF."""


class SessionTimeExceeded(TimeoutError):
    """The connection reached its total time limit."""


class DataTooSlow(TimeoutError):
    """Message data arrived slower than the minimum rate (see DataRate)."""


class DataRate:
    """A deadline that each octet received moves 1/`rate` seconds later, never more than
    `budget` seconds ahead (Postfix's smtpd_min_data_rate): a client trickling data runs out
    of time however it spaces its octets, one keeping up never does."""

    def __init__(self, budget: float, rate: float, now: float) -> None:
        self.budget = budget
        self.rate = rate
        self.deadline = now + budget

    def received(self, octets: int, now: float) -> None:
        self.deadline = min(self.deadline + octets / self.rate, now + self.budget)


class Stream(asyncio.Protocol):
    """The server side of one connection; `on_open(stream)` is started as a task."""

    def __init__(self, on_open: Callable[[Stream], object], *, tls: bool = False) -> None:
        self._on_open = on_open
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._scanned = 0  # octets of the buffer already searched for LF
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None
        self._paused_reading = False
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._discarding = False  # inside a line too long: drop input up to its LF
        self._tls = tls  # in TLS from the start (implicit TLS) or after STARTTLS
        self.session_deadline: float | None = None  # loop time; every wait ends by then
        self.meter: DataRate | None = None  # set while message data is read
        self._held: list[bytes] = []  # replies to pipelined commands, sent at the next wait

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport; not always an asyncio.Transport subclass (uvloop's is not).
        self.transport = cast(asyncio.Transport, transport)
        self._on_open(self)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self.meter is not None:
            self.meter.received(len(data), asyncio.get_running_loop().time())
        if len(self._buffer) > HIGH_WATER and not self._paused_reading and self.transport:
            self._paused_reading = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        """The client half-closed: keep the connection to answer what it sent (not on TLS,
        where asyncio cannot half-close)."""
        self._eof = True
        self._wake()
        return not self._tls

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._can_write.set()
        self._wake()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # reading

    @property
    def buffered(self) -> int:
        """Octets received and not read yet."""
        return len(self._buffer)

    @property
    def at_eof(self) -> bool:
        return self._eof and not self._buffer

    def discard_buffer(self) -> int:
        """Throw away what was received and not read (before STARTTLS); return its size."""
        size = len(self._buffer)
        self._buffer.clear()
        self._scanned = 0
        self._resume()
        return size

    async def wait_for_data(self, seconds: float) -> bool:
        """True as soon as something is buffered (or the peer closed), False after `seconds`."""
        if self._buffer or self._eof:
            return True
        if self._held:
            self.flush()
        try:
            async with asyncio.timeout(seconds):
                await self._wait()
        except TimeoutError:
            return False
        return True

    async def readline(self, limit: int, seconds: float) -> bytes:
        """One line up to and including its LF, at most `limit` octets, within `seconds`.

        Raises LineTooLong (the line is consumed), ConnectionClosed or a TimeoutError (see the
        module docstring). The timer is only armed when the line is not buffered yet (the
        common case in DATA).
        """
        deadline: float | None = None
        while True:
            index = self._buffer.find(b"\n", self._scanned)
            if index >= 0:
                line = bytes(self._buffer[: index + 1])
                del self._buffer[: index + 1]
                self._scanned = 0
                self._resume()
                if self._discarding or len(line) > limit:
                    self._discarding = False
                    raise LineTooLong
                return line
            if len(self._buffer) > limit:
                self._discarding = True
                self._buffer.clear()
                self._resume()
            self._scanned = len(self._buffer)
            if self._eof:
                raise ConnectionClosed
            if deadline is None:
                deadline = asyncio.get_running_loop().time() + seconds
            await self._wait_until(deadline)

    def buffered_lines(self, limit: int) -> bytes:
        """The complete lines at the start of the buffer, at most `limit` octets of them, not
        consumed (see `consume`); empty when no whole line is there (or a line too long is
        being dropped: `readline` ends it)."""
        if self._discarding:
            return b""
        end = self._buffer.rfind(b"\n", 0, limit)
        return bytes(self._buffer[: end + 1]) if end >= 0 else b""

    def consume(self, octets: int) -> None:
        """Drop the first `octets` of the buffer (after `buffered_lines`)."""
        del self._buffer[:octets]
        self._scanned = 0
        self._resume()

    async def read_some(self, limit: int, seconds: float) -> bytes:
        """Up to `limit` octets (at least one), as raw bytes, waiting at most `seconds` for
        them. Raises ConnectionClosed or a TimeoutError."""
        deadline: float | None = None
        while not self._buffer:
            if self._eof:
                raise ConnectionClosed
            if deadline is None:
                deadline = asyncio.get_running_loop().time() + seconds
            await self._wait_until(deadline)
        data = bytes(self._buffer[:limit])
        del self._buffer[:limit]
        self._scanned = 0
        self._resume()
        return data

    async def _wait_until(self, deadline: float) -> None:
        """Wait for input until the earliest of `deadline`, the session's and the meter's."""
        if self._held:  # the replies to a group of pipelined commands: all answered now
            self.flush()
        ends = [deadline]
        if self.session_deadline is not None:
            ends.append(self.session_deadline)
        if self.meter is not None:
            ends.append(self.meter.deadline)
        try:
            await self._wait(min(ends))
        except TimeoutError:
            raise self._expired() from None

    def _expired(self) -> TimeoutError:
        now = asyncio.get_running_loop().time()
        if self.session_deadline is not None and now >= self.session_deadline:
            return SessionTimeExceeded()
        if self.meter is not None and now >= self.meter.deadline:
            return DataTooSlow()
        return TimeoutError()

    async def _wait(self, deadline: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        timer = None
        if deadline is not None:
            timer = loop.call_at(deadline, _expire, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _resume(self) -> None:
        if self._paused_reading and len(self._buffer) <= HIGH_WATER // 2 and self.transport:
            self._paused_reading = False
            self.transport.resume_reading()

    # writing

    async def write(self, data: bytes, seconds: float | None = None) -> None:
        """Send `data`; with `seconds`, wait that long at most (and not beyond the session's
        deadline) for a client that does not read its replies. Raises ConnectionClosed or a
        TimeoutError.

        While a whole command line is already buffered (the client pipelines, RFC 2920), the
        reply is held and goes out with the next ones, in one write, when the stream next
        waits for input (or closes, or starts TLS): one send per group of commands."""
        if self.transport is None or self.transport.is_closing():
            raise ConnectionClosed
        if b"\n" in self._buffer:
            self._held.append(data)
            return
        if self._held:
            self._held.append(data)
            data = b"".join(self._held)
            self._held.clear()
        self.transport.write(data)
        if self._can_write.is_set():
            return
        ends = [] if seconds is None else [asyncio.get_running_loop().time() + seconds]
        if self.session_deadline is not None:
            ends.append(self.session_deadline)
        if not ends:
            await self._can_write.wait()
            return
        deadline = min(ends)
        try:
            async with asyncio.timeout_at(deadline):
                await self._can_write.wait()
        except TimeoutError:
            raise self._expired() from None

    async def start_tls(self, context: ssl.SSLContext, seconds: float) -> None:
        """Upgrade the connection to TLS (server side); raises on handshake failure."""
        assert self.transport is not None
        self.flush()
        loop = asyncio.get_running_loop()
        transport = await loop.start_tls(
            self.transport, self, context, server_side=True, ssl_handshake_timeout=seconds
        )
        if transport is None:
            raise ConnectionClosed
        self.transport = transport
        self._tls = True

    def extra(self, name: str) -> object:
        return self.transport.get_extra_info(name) if self.transport else None

    def write_last(self, data: bytes) -> None:
        """Send `data` without waiting for the client to read it (last words before closing)."""
        self._held.append(data)
        self.flush()

    def flush(self) -> None:
        """Send the replies held (see `write`) now, in one write."""
        if not self._held:
            return
        data = b"".join(self._held)
        self._held.clear()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        self.flush()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
