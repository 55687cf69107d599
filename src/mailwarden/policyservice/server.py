"""The policy service's listener: TCP or a UNIX socket, many requests per connection.

Each connection reads requests one after another (protocol.read_request) and answers each
before reading the next, as Postfix expects. A request is answered with the `PolicyChecks`
current when it arrived, so a reload (`replace`) takes effect at the next request on every
connection and no connection is dropped for it. Stopping: `stop_accepting` closes the
listener, idle connections are closed at once, and a request being answered finishes first
(`wait_idle`, bounded by the caller); `close` then cuts whatever is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
from pathlib import Path

from mailwarden import metrics
from mailwarden.runtime import close_listener
from mailwarden.settings import PolicyServiceSettings, UnixPath

from .checks import PolicyChecks
from .protocol import Limits, ProtocolError, format_answer, read_request

__all__ = ["PolicyServer"]

log = logging.getLogger("mailwarden.policy")


class PolicyServer:
    """`async with PolicyServer(checks, listen) as server:` serves until the block ends.
    `listen` is (host, port) (port 0: a free one) or a UnixPath."""

    def __init__(
        self,
        checks: PolicyChecks,
        listen: tuple[str, int] | UnixPath,
        config: PolicyServiceSettings | None = None,
    ) -> None:
        self.checks = checks
        self.listen = listen
        config = config if config is not None else checks.config
        self.config = config
        self.limits = Limits(
            max_line=config.max_line,
            max_attributes=config.max_attributes,
            idle_timeout=config.idle_timeout,
            read_timeout=config.read_timeout,
        )
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle: set[asyncio.Task[None]] = set()  # waiting for their next request
        self._stopping = False
        self._old: list[PolicyChecks] = []

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        limit = self.limits.max_line + 2
        if isinstance(self.listen, UnixPath):
            _remove_stale_socket(Path(self.listen))
            self._server = await asyncio.start_unix_server(
                self._connection, str(self.listen), limit=limit, backlog=1024
            )
            # Postfix's smtpd (user postfix) connects: the directory's mode decides who else
            os.chmod(self.listen, 0o666)
        else:
            host, port = self.listen
            self._server = await asyncio.start_server(
                self._connection, host, port, limit=limit, reuse_address=True, backlog=1024
            )

    @property
    def address(self) -> str:
        """Where it listens: `host:port` (the port actually bound) or `unix:/path`."""
        if isinstance(self.listen, UnixPath):
            return f"unix:{self.listen}"
        assert self._server is not None
        assert self._server.sockets
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"

    def replace(self, checks: PolicyChecks) -> None:
        """Answer from now on with `checks` (a reload); the old ones are closed at the end."""
        self._old.append(self.checks)
        self.checks = checks

    async def stop_accepting(self) -> None:
        """No new connections; idle connections are closed now, busy ones after their answer."""
        self._stopping = True
        if self._server is not None:
            await close_listener(self._server)
        for task in list(self._idle):
            task.cancel()

    async def wait_idle(self, seconds: float) -> bool:
        """Wait up to `seconds` for the requests being answered; True when none is
        left."""
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(set(self._tasks), timeout=seconds)
        return not pending

    async def close(self) -> None:
        await self.stop_accepting()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if isinstance(self.listen, UnixPath):
            with contextlib.suppress(OSError):
                os.unlink(self.listen)
        for checks in (*self._old, self.checks):
            await checks.close()

    async def __aenter__(self) -> PolicyServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connections(self) -> int:
        return len(self._tasks)

    # -- one connection --------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._stopping or len(self._tasks) >= self.config.max_connections:
            writer.close()  # Postfix then uses its default action for this request
            return
        self._tasks.add(task)
        metrics.connection_opened("policy")
        peer = _peer(writer)
        try:
            await self._serve(reader, writer, task)
        except (ProtocolError, TimeoutError) as exc:
            log.info("policy: %s: closed: %s", peer, exc or "timed out")
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            self._idle.discard(task)
            metrics.connection_closed("policy")
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.shield(writer.wait_closed())

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        task: asyncio.Task[None],
    ) -> None:
        while not self._stopping:
            self._idle.add(task)
            try:
                request = await read_request(reader, self.limits)
            finally:
                self._idle.discard(task)
            if request is None:
                return
            started = time.perf_counter()
            checks = self.checks  # the one current now: a reload affects the next request
            answer = await checks.answer(request)
            writer.write(format_answer(answer.action))
            async with asyncio.timeout(self.limits.read_timeout):  # a peer that never reads
                await writer.drain()
            stage = request.protocol_state.lower() or "none"
            metrics.observe_answer(
                "policy",
                stage if request.problem == "" else "malformed",
                time.perf_counter() - started,
            )
            log.info(
                "policy: client=%s sender=%s recipient=%s state=%s action=%s (%s)",
                request.client_address or "-",
                request.sender or "<>",
                request.recipient or "-",
                stage,
                answer.action.split(" ", 1)[0],
                answer.reason,
            )


def _peer(writer: asyncio.StreamWriter) -> str:
    name = writer.get_extra_info("peername")
    if isinstance(name, tuple) and len(name) >= 2:
        return f"{name[0]}:{name[1]}"
    return "local"


def _remove_stale_socket(path: Path) -> None:
    """A socket left by a crash is removed; anything else at the path is an error."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(f"{path} exists and is not a socket")
    path.unlink()
