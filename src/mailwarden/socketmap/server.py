"""Lookup services for Postfix: socketmap (netstrings, several named maps on one socket) and
tcp_table (one map a port, `get KEY` lines), as postsrsd 2.x and 1.x offer SRS.

    maps = {"forward": lookup, "reverse": lookup}      # async (key) -> Answer
    server = SocketmapServer(maps);  await server.start("127.0.0.1", 10003)

A lookup answers found (OK value), not found, or a temporary or permanent error; the servers
only translate that into each protocol (socketmap_table(5), tcp_table(5)). Requests are
limited in size, idle connections are closed, and a malformed request ends its connection
with an error answer, never the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes

from mailwarden.runtime import close_listener
from mailwarden.settings import parse_hostport

from .netstring import NetstringError, encode, read_netstring

__all__ = ["Answer", "Lookup", "SocketmapServer", "Status", "TCPTableServer", "parse_listen"]

log = logging.getLogger("mailwarden.socketmap")
MAX_REQUEST = 1000  # octets: a map name and an address (postsrsd allows 512 for the key)
IDLE_TIMEOUT = 300.0  # seconds without a request before a connection is closed


class Status(StrEnum):
    OK = "OK"
    NOTFOUND = "NOTFOUND"
    TEMP = "TEMP"
    PERM = "PERM"


@dataclass(frozen=True, slots=True)
class Answer:
    status: Status
    text: str = ""  # the value when OK, else the reason

    @classmethod
    def found(cls, value: str) -> Answer:
        return cls(Status.OK, value)

    @classmethod
    def not_found(cls, reason: str = "") -> Answer:
        return cls(Status.NOTFOUND, reason)


Lookup = Callable[[str], Awaitable[Answer]]


def parse_listen(text: str) -> tuple[str, int] | Path:
    """`host:port`, `[v6]:port` or `unix:/path`; ValueError otherwise."""
    if text.startswith("unix:"):
        path = text[5:]
        if not path or "\x00" in path:
            raise ValueError(f"no socket path in {text!r}")
        return Path(path)
    return parse_hostport(text)


def _remove_stale_socket(path: Path) -> None:
    """A socket file left by an earlier run (never any other kind of file)."""
    with contextlib.suppress(FileNotFoundError):
        if path.is_socket():
            path.unlink()


class _Server:
    def __init__(self, idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.idle_timeout = idle_timeout
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self, where: tuple[str, int] | Path) -> None:
        if isinstance(where, Path):
            _remove_stale_socket(where)
            self._server = await asyncio.start_unix_server(self._client, path=str(where))
            os.chmod(where, 0o666)  # Postfix's processes run as another user
        else:
            host, port = where
            self._server = await asyncio.start_server(self._client, host, port, reuse_address=True)

    @property
    def address(self) -> tuple[str, int] | str:
        assert self._server is not None
        assert self._server.sockets
        name = self._server.sockets[0].getsockname()
        return name if isinstance(name, str) else (str(name[0]), int(name[1]))

    async def close(self) -> None:
        if self._server is not None:
            await close_listener(self._server)
            await self._server.wait_closed()
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            await self.serve(reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


async def _answer(lookup: Lookup, key: str) -> Answer:
    try:
        return await lookup(key)
    except Exception:  # a bug in a lookup answers TEMP (Postfix retries), never kills us
        log.exception("lookup of %r failed", key)
        return Answer(Status.TEMP, "Internal error.")


class SocketmapServer(_Server):
    """Postfix/Sendmail socketmap: `<name> <key>` netstrings in, `<STATUS> <data>` out."""

    def __init__(self, maps: Mapping[str, Lookup], *, idle_timeout: float = IDLE_TIMEOUT) -> None:
        super().__init__(idle_timeout)
        self.maps = dict(maps)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                async with asyncio.timeout(self.idle_timeout):
                    request = await read_netstring(reader, MAX_REQUEST)
            except NetstringError as exc:
                await self._reply(writer, Answer(Status.PERM, "Invalid query."))
                log.warning("socketmap: %s: closing the connection", exc)
                return
            if request is None:
                return
            name, space, key_bytes = request.partition(b" ")
            if not space or not name:
                await self._reply(writer, Answer(Status.PERM, "Invalid query."))
                return
            lookup = self.maps.get(name.decode("ascii", "replace"))
            if lookup is None:
                answer = Answer(Status.PERM, "Invalid map.")
            else:
                answer = await _answer(lookup, key_bytes.decode("utf-8", "surrogateescape"))
            await self._reply(writer, answer)

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, answer: Answer) -> None:
        text = f"{answer.status.value} {answer.text}".encode("utf-8", "surrogateescape")
        writer.write(encode(text))
        await writer.drain()


class TCPTableServer(_Server):
    """Postfix tcp_table: `get KEY` lines (URL-encoded) in; `200 value`, `500 reason` (not
    found) or `400 reason` (try again) out. One map a port, as postsrsd 1.x serves SRS."""

    def __init__(self, lookup: Lookup, *, idle_timeout: float = IDLE_TIMEOUT) -> None:
        super().__init__(idle_timeout)
        self.lookup = lookup

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                async with asyncio.timeout(self.idle_timeout):
                    line = await reader.readuntil(b"\n")
            except asyncio.LimitOverrunError:
                await self._reply(writer, "500 Too big.")
                return
            except asyncio.IncompleteReadError:
                return
            if len(line) > MAX_REQUEST * 3:
                await self._reply(writer, "500 Too big.")
                return
            verb, _, key = line.rstrip(b"\r\n").partition(b" ")
            if verb.lower() != b"get" or not key:
                await self._reply(writer, "500 Invalid query.")
                continue
            text = unquote_to_bytes(key).decode("utf-8", "surrogateescape")
            answer = await _answer(self.lookup, text)
            if answer.status is Status.OK:
                value = quote(
                    answer.text.encode("utf-8", "surrogateescape"), safe="@=+-/._~!$&'*^`{|}#?"
                )
                await self._reply(writer, f"200 {value}")
            elif answer.status is Status.TEMP:
                await self._reply(writer, f"400 {answer.text}")
            else:
                await self._reply(writer, f"500 {answer.text or 'Not found.'}")

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, text: str) -> None:
        writer.write(text.encode("utf-8", "replace") + b"\n")
        await writer.drain()
