"""Queries to one DNS server over a small pool of long-lived UDP sockets, TCP when truncated.

Every query used to open a socket of its own; a burst of hundreds of queries then opened
hundreds of sockets, and under load the kernel dropped answers. Here each server has a few
connected UDP sockets (8 by default) shared by all queries, with a cap on queries in flight.

Reusing sockets must not make answers easier to forge (RFC 5452):
- each socket is bound to a port the kernel picks at random from its ephemeral range, and is
  replaced by a new one after `rotate_after` queries, so no port lives long;
- each query goes out on a socket drawn at random, with a random 16-bit ID that is unique among
  the queries in flight on that socket (IDs and draws come from the OS's CSPRNG);
- the socket is connected to the server, so the kernel drops datagrams from any other address
  or port, and the source is checked again on receipt (RFC 5452 §9.1);
- an answer is taken only when its ID and its question (name, type and class; the name without
  regard to case) are those of a query in flight; anything else is dropped unread, and a
  matching answer that does not parse is dropped too, as dnspython does: the real one may follow.

A connected socket also hears ICMP port unreachable (RFC 1122 §4.1.3.3): a server whose port is
closed fails its queries at once, as refused, instead of after the whole timeout.

One transport belongs to one event loop at a time; used from another loop, it closes its
sockets and opens new ones there.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from .wire import Question, Response, WireError, build_query, matches, parse, truncated

DEFAULT_SOCKETS = 8
DEFAULT_MAX_IN_FLIGHT = 512
DEFAULT_ROTATE_AFTER = 128
RECEIVE_BUFFER = 1 << 20  # per socket, so a burst of answers is not dropped (capped by the OS)
_TCP_LENGTH = struct.Struct("!H")
_U32 = struct.Struct("!I")


class _RandomPool:
    """Random 32-bit numbers from the OS's CSPRNG, read 4 KiB at a time (os.urandom per query
    costs more than the rest of the ID logic); a forked child starts with a fresh pool."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.data = b""
        self.offset = 0

    def u32(self) -> int:
        if self.offset >= len(self.data):
            self.data = os.urandom(4096)
            self.offset = 0
        value: int = _U32.unpack_from(self.data, self.offset)[0]
        self.offset += 4
        return value


_random = _RandomPool()
os.register_at_fork(after_in_child=_random.reset)


class TransportError(Exception):
    """No answer from this server, for a reason other than a timeout."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Refused(TransportError):
    """The server's port is closed: ICMP port unreachable, or a TCP reset."""

    def __init__(self) -> None:
        super().__init__("connection refused (port unreachable)")


# A query in flight: its question, and the future its answer goes to (None: truncated, ask
# again over TCP).
_Pending = tuple[Question, "asyncio.Future[Response | None]"]


class _Socket:
    """One connected UDP socket to one server, read by the event loop."""

    __slots__ = (
        "address",
        "closed",
        "in_use",
        "loop",
        "pending",
        "pid",
        "port",
        "retired",
        "sent",
        "sock",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, address: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            with contextlib.suppress(OSError):  # a kernel that refuses: keep its default
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))  # a random port
            sock.connect((address, port))
            loop.add_reader(sock.fileno(), self._readable)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.pid = os.getpid()
        self.loop = loop
        self.address = address
        self.port = port
        self.pending: dict[int, _Pending] = {}
        self.sent = 0
        self.in_use = 0  # queries between send and their end (answered or not)
        self.retired = False
        self.closed = False

    def new_id(self, draw: int) -> int:
        query_id = draw & 0xFFFF
        while query_id in self.pending:
            query_id = _random.u32() & 0xFFFF
        return query_id

    def _readable(self) -> None:
        """Read the datagrams waiting while answers are awaited (a datagram still queued after
        that makes the socket readable again: no read is spent on finding nothing)."""
        while not self.closed:
            try:
                data, source = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionRefusedError:  # the ICMP error of an earlier datagram
                self.fail(Refused)
                continue
            except OSError as exc:
                self.fail(_network_error(exc))
                return
            self.take(data, source)
            if not self.pending:
                return

    def take(self, data: bytes, source: tuple[str, int]) -> None:
        """One datagram: the answer to a query in flight when source, ID and question match
        and it parses; otherwise dropped."""
        if len(data) < 12 or source[0] != self.address or source[1] != self.port:
            return
        query_id = data[0] << 8 | data[1]
        pending = self.pending.get(query_id)
        if pending is None or not matches(data, query_id, pending[0]):
            return
        response: Response | None = None
        if not truncated(data):
            try:
                response = parse(data, pending[0])
            except WireError:
                return  # as dnspython's resolver: wait on, the real answer may come
        del self.pending[query_id]
        if not pending[1].done():
            pending[1].set_result(response)

    def send(self, wire: bytes) -> None:
        try:
            self.sock.send(wire)
        except (BlockingIOError, InterruptedError):
            pass  # the send buffer is full: as a lost datagram, the timeout and retry cover it
        except ConnectionRefusedError:
            self.fail(Refused)
        except OSError as exc:
            self.fail(_network_error(exc))

    def fail(self, error: Callable[[], TransportError]) -> None:
        """Every query in flight on this socket ends with an error (the server is unreachable)."""
        pending, self.pending = self.pending, {}
        for _, future in pending.values():
            if not future.done():
                future.set_exception(error())

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        # In a forked child the loop's epoll instance is the parent's: leave it alone.
        if self.pid == os.getpid() and not self.loop.is_closed():
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        self.fail(lambda: TransportError("transport closed"))


def _network_error(exc: OSError) -> Callable[[], TransportError]:
    detail = exc.strerror or type(exc).__name__
    return lambda: TransportError(detail)


def _expire(future: asyncio.Future[Response | None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class _Deadlines:
    """Query deadlines in the order they were set, under one loop timer: a resolver's queries
    mostly share one timeout, so deadlines come in order and a queue replaces a timer each.
    One that comes out of order gets a timer of its own."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: collections.deque[tuple[float, asyncio.Future[Response | None]]] = (
            collections.deque()
        )
        self.last = 0.0
        self.timer: asyncio.TimerHandle | None = None

    def add(self, deadline: float, future: asyncio.Future[Response | None]) -> None:
        queue = self.queue
        while queue and queue[0][1].done():  # answered long before their deadline
            queue.popleft()
        if deadline < self.last:
            timer = self.loop.call_at(deadline, _expire, future)
            future.add_done_callback(lambda _: timer.cancel())
            return
        self.last = deadline
        queue.append((deadline, future))
        if self.timer is None:
            self.timer = self.loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self.timer = None
        now = self.loop.time()
        queue = self.queue
        while queue:
            deadline, future = queue[0]
            if deadline > now:
                self.timer = self.loop.call_at(deadline, self._fire)
                return
            queue.popleft()
            _expire(future)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()


@dataclass(slots=True)
class _LoopState:
    loop: asyncio.AbstractEventLoop
    sockets: list[_Socket | None]
    deadlines: _Deadlines
    retired: list[_Socket] = field(default_factory=list)
    in_flight: int = 0
    waiting: collections.deque[asyncio.Future[None]] = field(default_factory=collections.deque)

    def release(self) -> None:
        """A query is over: its place goes to the longest waiting one."""
        self.in_flight -= 1
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class ServerTransport:
    """Exchanges queries with one server (address, port) for a resolver."""

    def __init__(
        self,
        address: str,
        port: int,
        *,
        sockets: int = DEFAULT_SOCKETS,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        rotate_after: int = DEFAULT_ROTATE_AFTER,
        edns_payload: int = 1232,
    ) -> None:
        if sockets < 1 or max_in_flight < 1 or rotate_after < 1:
            raise ValueError("sockets, max_in_flight and rotate_after must be positive")
        self.address = address
        self.port = port
        self.socket_count = sockets
        self.max_in_flight = max_in_flight
        self.rotate_after = rotate_after
        self.edns_payload = edns_payload
        self._state: _LoopState | None = None

    def __repr__(self) -> str:
        return f"ServerTransport({self.address!r}, {self.port})"

    def _bind(self, loop: asyncio.AbstractEventLoop) -> _LoopState:
        self.close()
        self._state = _LoopState(loop, [None] * self.socket_count, _Deadlines(loop))
        return self._state

    def open_sockets(self) -> list[_Socket]:
        """The sockets in use now (for tests and statistics)."""
        state = self._state
        if state is None:
            return []
        return [s for s in state.sockets if s is not None] + state.retired

    async def query(self, q: Question, timeout: float) -> Response:  # noqa: ASYNC109
        """Ask `q`: the parsed answer that matches it, over TCP when the UDP one is truncated.

        Raises TimeoutError when nothing matching arrives within `timeout` seconds, Refused
        when the server's port is closed, TransportError on other network errors.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        state = self._state
        if state is None or state.loop is not loop:
            state = self._bind(loop)
        if state.in_flight >= self.max_in_flight:  # a bound on what is outstanding here
            await self._place(state)
        state.in_flight += 1
        try:
            draw = _random.u32()
            index = (draw >> 16) % self.socket_count
            sock = state.sockets[index]
            if sock is None:
                try:
                    sock = _Socket(loop, self.address, self.port)
                except OSError as exc:  # no route, no file descriptors left...
                    raise _network_error(exc)() from None
                state.sockets[index] = sock
            query_id = sock.new_id(draw)
            future: asyncio.Future[Response | None] = loop.create_future()
            pending: _Pending = (q, future)
            sock.pending[query_id] = pending
            sock.sent += 1
            sock.in_use += 1
            if sock.sent >= self.rotate_after:  # a fresh socket, on a fresh port, from now on
                sock.retired = True
                state.sockets[index] = None
                state.retired.append(sock)
            state.deadlines.add(deadline, future)
            try:
                sock.send(build_query(query_id, q, self.edns_payload))
                response = await future
            finally:
                if sock.pending.get(query_id) is pending:
                    del sock.pending[query_id]
                sock.in_use -= 1
                if sock.retired and not sock.in_use and not sock.closed:
                    sock.close()
                    state.retired.remove(sock)
        finally:
            state.release()
        if response is None:  # RFC 7766 §5: a truncated answer is asked again over TCP
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            async with asyncio.timeout(remaining):
                response = await self._query_tcp(q)
        return response

    async def _place(self, state: _LoopState) -> None:
        """Wait until fewer than `max_in_flight` queries are outstanding (first come, first
        served: one woken but overtaken waits again at the head of the line)."""
        first = True
        while state.in_flight >= self.max_in_flight:
            waiter: asyncio.Future[None] = state.loop.create_future()
            if first:
                state.waiting.append(waiter)
            else:
                state.waiting.appendleft(waiter)
            first = False
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # woken, but going: pass it on
                    state.in_flight += 1
                    state.release()
                raise

    async def _query_tcp(self, q: Question) -> Response:
        try:
            reader, writer = await asyncio.open_connection(self.address, self.port)
        except ConnectionRefusedError:
            raise Refused() from None
        except OSError as exc:
            raise TransportError(exc.strerror or type(exc).__name__) from None
        try:
            query_id = _random.u32() & 0xFFFF
            wire = build_query(query_id, q, self.edns_payload)
            writer.write(_TCP_LENGTH.pack(len(wire)) + wire)
            while True:  # RFC 7766 §7: take only the response to this query
                (length,) = _TCP_LENGTH.unpack(await reader.readexactly(2))
                data = await reader.readexactly(length)
                if matches(data, query_id, q):
                    try:
                        return parse(data, q)
                    except WireError:
                        continue
        except asyncio.IncompleteReadError:
            raise TransportError("connection closed before the answer") from None
        except ConnectionResetError:
            raise Refused() from None
        except OSError as exc:
            raise TransportError(exc.strerror or type(exc).__name__) from None
        finally:
            writer.close()

    def close(self) -> None:
        """Close every socket (queries in flight fail). Safe after the loop has closed."""
        state, self._state = self._state, None
        if state is None:
            return
        for sock in [*state.sockets, *state.retired]:
            if sock is not None:
                sock.close()
        if not state.loop.is_closed():
            state.deadlines.close()
