"""Relaying to the downstream mailbox server over SMTP or LMTP (RFC 5321, RFC 2033).

The gateway is a before-queue proxy: it opens one downstream transaction per client
transaction at the first accepted RCPT, passes each RCPT on at once (so a downstream refusal
of one recipient reaches the client as that RCPT's reply), and sends the message only when the
checks accepted it. Any failure to reach or hear the downstream becomes a `Unavailable` whose
reply is a 451: the client keeps the message and retries. That reply says nothing of the
downstream (no address, no exception, no host name); what happened is in its `detail`, for the
log. The downstream's own refusals reach the client through `public_reply`, which withholds
a text that names an address, a path or an exception.

aiosmtplib has no LMTP and hides the per-recipient replies after DATA; this client is small
and speaks both. It pipelines only MAIL with the first RCPT (`mail_and_rcpt`), when the
downstream offers PIPELINING (RFC 2920): one write and one wait for both. A message held in
memory goes to an SMTP downstream that offers CHUNKING as one `BDAT n LAST` (RFC 3030), sent
with its command in one write; otherwise after DATA, dot-stuffed, in writes of up to 64 KiB.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import re
import time
from collections.abc import Iterable, Iterator
from typing import Protocol

from mailwarden.body import Body, SpooledBody, chunks
from mailwarden.settings import DownstreamProtocol, Timeouts

from .hooks import Reply, Session

__all__ = [
    "Downstream",
    "DownstreamRelay",
    "Outbound",
    "Unavailable",
    "dot_stuff",
    "dot_stuff_pieces",
    "public_reply",
]

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)")
REPLY_LINE_MAX = 4096
WRITE_SIZE = 64 * 1024  # octets of message data gathered into one write
TRY_LATER = "Error: temporary failure, try again later"  # what the client is told


class Unavailable(Exception):
    """The downstream is down, slow or broke off: answer the client with `reply` (451, a
    generic text); `detail` says what happened, for the log only."""

    def __init__(self, reply: Reply, detail: str = "") -> None:
        super().__init__(detail or str(reply))
        self.reply = reply
        self.detail = detail or str(reply)


def _unavailable(status: str, detail: str) -> Unavailable:
    return Unavailable(Reply(451, status, TRY_LATER), detail)


# RFC 3463 §3: the subject of an enhanced status code, for a withheld reply text.
_SUBJECTS = {
    "1": "address rejected",
    "2": "mailbox unavailable",
    "3": "mail system problem",
    "4": "network problem",
    "5": "protocol error",
    "6": "message content rejected",
    "7": "refused by policy",
}
_PATH = re.compile(r"(?:^|[\s(\[<\"'=:])(?:/[\w.-]+){2,}|[A-Za-z]:\\")
_EXCEPTION = re.compile(r"\b\w*(?:Error|Exception)\b\s*\(|\[Errno|Traceback")
_IPV4 = re.compile(r"(?<![0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9])")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")


def _has_address(text: str) -> bool:
    """An IPv4 address anywhere (also inside IPv6 forms), or an IPv6 address as a word."""
    for found in _IPV4.findall(text):
        if all(int(octet) <= 255 for octet in found.split(".")):
            return True
    for word in _IPV6.findall(text):
        port = word.rsplit(":", 1)[0]  # an address with a port, without brackets
        for candidate in (word, word.rstrip("."), word.rstrip(".:"), word.lstrip(":"), port):
            try:
                ipaddress.IPv6Address(candidate)
            except ValueError:
                continue
            return True
    return False


def public_reply(reply: Reply, hidden: Iterable[str] = ()) -> Reply:
    """A downstream reply as the client may see it: its code and status, and its text unless
    that names an IP address, a file path, an exception or one of the `hidden` names (the
    downstream's host); then a generic text for the status (the original goes to the log)."""
    text = reply.text
    lowered = text.lower()
    leaks = (
        _has_address(text)
        or _PATH.search(text) is not None
        or _EXCEPTION.search(text) is not None
        or any(name and name.lower() in lowered for name in hidden)
        or not text.isprintable()
    )
    if not leaks:
        return reply
    if reply.code < 400:
        return Reply(reply.code, reply.status, "Ok")
    if reply.code < 500:
        return Reply(reply.code, reply.status, TRY_LATER)
    subject = reply.status.split(".")[1] if reply.status.count(".") == 2 else ""
    return Reply(reply.code, reply.status, f"Error: {_SUBJECTS.get(subject, 'refused')}")


class Outbound(Protocol):
    """One open transaction towards the next hop."""

    async def mail(self, sender: str, params: dict[str, str | None]) -> Reply: ...

    async def rcpt(self, rcpt: str) -> Reply: ...

    async def data(self, head: bytes, body: Body = b"") -> list[Reply]:
        """The message `head` + `body` (a spooled body is streamed): one reply (SMTP) or
        one per accepted recipient (LMTP)."""
        ...

    async def reset(self) -> Reply: ...

    async def close(self) -> None: ...


class Downstream(Protocol):
    """Where accepted mail goes: opens one Outbound per client transaction."""

    async def open(self, session: Session) -> Outbound: ...

    async def close(self) -> None:
        """The gateway stops: release what is kept between transactions."""
        ...


def dot_stuff(message: bytes) -> bytes:
    """RFC 5321 §4.5.2: double a leading dot on every line; end with CRLF.CRLF."""
    return b"".join(dot_stuff_pieces([message]))


def dot_stuff_pieces(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """`dot_stuff` for a message given in pieces (cut anywhere, even inside a CRLF): each
    piece is stuffed with the last two octets before it as context."""
    context = b"\r\n"  # the message starts a line: a leading dot is doubled
    last = b""
    for piece in pieces:
        if not piece:
            continue
        stuffed = (context + piece).replace(b"\r\n.", b"\r\n..")[len(context) :]
        context = (context + piece)[-2:]
        last = context
        yield stuffed
    yield b".\r\n" if last.endswith(b"\r\n") else b"\r\n.\r\n"


def parse_reply_text(code: int, text: str) -> Reply:
    match = _ENHANCED.match(text)
    if match and match.group(1) == str(code)[0]:
        status = f"{match.group(1)}.{match.group(2)}.{match.group(3)}"
        return Reply(code, status, text[match.end() :])
    return Reply(code, f"{str(code)[0]}.0.0" if code >= 200 else "", text)


class DownstreamRelay:
    """Connects to host:port and speaks SMTP (EHLO) or LMTP (LHLO) as `helo_name`.

    Connections that ended their transaction cleanly wait in a small pool for the next one
    (as Postfix's connection cache does): the next message skips the connect, the greeting,
    EHLO and QUIT. A pooled connection the downstream has meanwhile closed is replaced by a
    fresh one before MAIL, so reuse never costs the client a 451.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        dialect: DownstreamProtocol = DownstreamProtocol.SMTP,
        helo_name: str = "localhost",
        timeouts: Timeouts | None = None,
        pool_size: int = 32,
        pool_idle: float = 20.0,
    ) -> None:
        self.host = host
        self.port = port
        self.dialect = dialect
        self.helo_name = helo_name
        self.timeouts = timeouts or Timeouts()
        self.pool_size = pool_size
        self.pool_idle = pool_idle
        self._idle: list[tuple[float, DownstreamConnection]] = []

    async def open(self, session: Session) -> DownstreamConnection:
        now = time.monotonic()
        while self._idle:
            since, connection = self._idle.pop()
            if now - since < self.pool_idle and connection.healthy():
                connection.reused = True
                return connection
            connection.abort()
        return await self.connect()

    def release(self, connection: DownstreamConnection) -> bool:
        """Keep a connection for the next transaction; False if the pool is full."""
        if len(self._idle) >= self.pool_size or not connection.healthy():
            return False
        self._idle.append((time.monotonic(), connection))
        return True

    async def close(self) -> None:
        """Close the pooled connections."""
        idle, self._idle = self._idle, []
        for _, connection in idle:
            connection.relay = None
            await connection.close()

    async def connect(self) -> DownstreamConnection:
        timeouts = self.timeouts
        try:
            async with asyncio.timeout(timeouts.downstream_connect):
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, limit=REPLY_LINE_MAX * 4
                )
        except (OSError, TimeoutError) as exc:
            where = f"{self.host}:{self.port}"
            raise _unavailable("4.4.1", f"cannot connect to {where}: {exc!r}") from None
        connection = DownstreamConnection(reader, writer, self.dialect, timeouts, self)
        try:
            greeting = await connection.read_reply(timeouts.downstream_connect)
            if greeting.code != 220:
                raise _unavailable("4.4.1", f"greeting of {self.host}:{self.port}: {greeting}")
            await connection.hello(self.helo_name)
        except Unavailable:
            await connection.close()
            raise
        return connection


class DownstreamConnection:
    """One connection to the downstream; each method sends one command and reads its reply."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        dialect: DownstreamProtocol,
        timeouts: Timeouts,
        relay: DownstreamRelay | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.dialect = dialect
        self.timeouts = timeouts
        self.relay = relay
        self.reused = False  # taken from the pool
        self.idle = False  # between transactions: may go back to the pool
        self.broken = False
        self.extensions: dict[str, str] = {}
        self.accepted = 0  # recipients accepted in this transaction (LMTP replies after DATA)
        self._last_lines: list[str] = []

    def healthy(self) -> bool:
        return not (self.broken or self.reader.at_eof() or self.writer.is_closing())

    def abort(self) -> None:
        self.broken = True
        self.writer.close()

    async def read_reply(self, seconds: float) -> Reply:
        try:
            return await self._read_reply(seconds)
        except Unavailable:
            self.broken = True
            raise

    async def _read_reply(self, seconds: float) -> Reply:
        lines: list[str] = []
        code = 0
        try:
            async with asyncio.timeout(seconds):
                while True:
                    raw = await self.reader.readline()
                    if not raw.endswith(b"\n"):
                        raise _unavailable("4.4.2", "downstream closed the connection")
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    if (
                        len(line) < 3
                        or not (line[:3].isascii() and line[:3].isdigit())
                        or line[3:4] not in ("", " ", "-")
                    ):
                        raise _unavailable("4.4.2", f"bad reply line from downstream: {line!r}")
                    code = int(line[:3])
                    lines.append(line[4:])
                    if line[3:4] != "-":
                        break
        except TimeoutError:
            raise _unavailable("4.4.1", f"no reply from downstream within {seconds} s") from None
        except (OSError, ValueError, asyncio.LimitOverrunError) as exc:
            raise _unavailable("4.4.2", f"reading from downstream: {exc!r}") from None
        reply = parse_reply_text(code, lines[-1])
        self._last_lines = lines
        return reply

    async def command(
        self, line: str, seconds: float | None = None, *, payload: bytes = b""
    ) -> Reply:
        """Send one command (and the octets that go with it, for BDAT); read its reply."""
        try:
            self.writer.write(line.encode("utf-8") + b"\r\n" + payload)
            await self.writer.drain()
        except OSError as exc:
            self.broken = True
            raise _unavailable("4.4.2", f"writing to downstream: {exc!r}") from None
        return await self.read_reply(seconds or self.timeouts.downstream_command)

    async def hello(self, name: str) -> None:
        verb = "LHLO" if self.dialect is DownstreamProtocol.LMTP else "EHLO"
        reply = await self.command(f"{verb} {name}")
        if reply.code != 250:
            raise _unavailable("4.4.1", f"downstream refused {verb}: {reply}")
        for line in self._last_lines[1:]:
            keyword, _, value = line.partition(" ")
            self.extensions[keyword.upper()] = value
        self.idle = True

    async def mail(self, sender: str, params: dict[str, str | None]) -> Reply:
        if self.reused and self.relay is not None:
            try:
                return await self._mail(sender, params)
            except Unavailable:
                await self._replace()  # the pooled connection went stale: once, afresh
        return await self._mail(sender, params)

    async def mail_and_rcpt(
        self, sender: str, params: dict[str, str | None], rcpt: str
    ) -> tuple[Reply, Reply | None]:
        """MAIL and the transaction's first RCPT; their replies (None for the RCPT when MAIL
        was refused). Sent in one write when the downstream offers PIPELINING (RFC 2920 §3.1:
        MAIL and RCPT may be sent ahead of their replies), else one after the other."""
        if "PIPELINING" not in self.extensions:
            reply = await self.mail(sender, params)
            return (reply, None) if reply.code >= 300 else (reply, await self.rcpt(rcpt))
        if self.reused and self.relay is not None:
            try:
                return await self._mail_and_rcpt(sender, params, rcpt)
            except Unavailable:
                await self._replace()  # the pooled connection went stale: once, afresh
                return await self.mail_and_rcpt(sender, params, rcpt)
        return await self._mail_and_rcpt(sender, params, rcpt)

    async def _replace(self) -> None:
        """Go on over a fresh connection (this one, taken from the pool, went stale)."""
        assert self.relay is not None
        self.abort()
        fresh = await self.relay.connect()
        self.reader, self.writer, self.extensions = fresh.reader, fresh.writer, fresh.extensions
        self.broken, self.reused = False, False

    def _mail_command(self, sender: str, params: dict[str, str | None]) -> str | Reply:
        """The MAIL command for the downstream, or our refusal when it cannot take the mail."""
        extra = ""
        body = params.get("BODY")
        if body and "8BITMIME" in self.extensions:
            extra += f" BODY={body}"
        if "SMTPUTF8" in params:
            if "SMTPUTF8" not in self.extensions:
                return Reply(553, "5.6.7", "Error: SMTPUTF8 mail is not accepted here")
            extra += " SMTPUTF8"
        if params.get("SIZE") and "SIZE" in self.extensions:
            extra += f" SIZE={params['SIZE']}"
        return f"MAIL FROM:<{sender}>{extra}"

    async def _mail(self, sender: str, params: dict[str, str | None]) -> Reply:
        self.accepted = 0
        self.idle = False
        command = self._mail_command(sender, params)
        if isinstance(command, Reply):
            return command
        return await self.command(command)

    async def _mail_and_rcpt(
        self, sender: str, params: dict[str, str | None], rcpt: str
    ) -> tuple[Reply, Reply | None]:
        self.accepted = 0
        self.idle = False
        command = self._mail_command(sender, params)
        if isinstance(command, Reply):
            return command, None
        mail = await self.command(f"{command}\r\nRCPT TO:<{rcpt}>")
        # RFC 2920 §3.1: every reply is read, the RCPT's too when MAIL was refused.
        reply = await self.read_reply(self.timeouts.downstream_command)
        if mail.code >= 300:
            return mail, None
        if reply.code < 300:
            self.accepted += 1
        return mail, reply

    async def rcpt(self, rcpt: str) -> Reply:
        reply = await self.command(f"RCPT TO:<{rcpt}>")
        if reply.code < 300:
            self.accepted += 1
        return reply

    async def data(self, head: bytes, body: Body = b"") -> list[Reply]:
        if (
            self.dialect is DownstreamProtocol.SMTP
            and "CHUNKING" in self.extensions
            and not isinstance(body, SpooledBody)
        ):
            return [await self._bdat(head + body)]
        reply = await self.command("DATA")
        if reply.code != 354:
            return [reply]
        try:
            pending: list[bytes] = []
            size = 0
            for piece in dot_stuff_pieces(itertools.chain((head,), chunks(body))):
                pending.append(piece)
                size += len(piece)
                if size >= WRITE_SIZE:  # one send for many pieces, not one each
                    self.writer.write(b"".join(pending))
                    pending, size = [], 0
                    await self.writer.drain()  # a spooled body is read as it is taken
            self.writer.write(b"".join(pending))
            await self.writer.drain()
        except OSError as exc:
            self.broken = True
            raise _unavailable("4.4.2", f"writing the message to downstream: {exc!r}") from None
        count = self.accepted if self.dialect is DownstreamProtocol.LMTP else 1
        # RFC 2033 §4.2: LMTP answers once per accepted recipient, in RCPT order.
        replies = [await self.read_reply(self.timeouts.downstream_data) for _ in range(count)]
        self.idle = True
        return replies

    async def _bdat(self, message: bytes) -> Reply:
        """RFC 3030: the whole message in one BDAT LAST chunk, sent with its command in one
        write: no 354 to wait for and no dot-stuffing (the downstream offered CHUNKING). Only
        for SMTP: LMTP's replies per recipient are read after DATA only."""
        if not message.endswith(b"\r\n"):
            message += b"\r\n"  # as after DATA, where the final dot needs a line of its own
        # Its reply is the end-of-data reply, so it gets the time a reply after DATA gets.
        reply = await self.command(
            f"BDAT {len(message)} LAST", self.timeouts.downstream_data, payload=message
        )
        # §4.2: a refused chunk fails the transaction; such a connection is not reused.
        self.idle = reply.code < 300
        return reply

    async def reset(self) -> Reply:
        self.accepted = 0
        reply = await self.command("RSET")
        self.idle = reply.code == 250
        return reply

    async def close(self) -> None:
        """End this transaction: back to the pool when clean, else QUIT."""
        if self.idle and self.relay is not None and self.relay.release(self):
            return
        if self.broken:
            self.writer.close()
            return
        try:
            if not self.writer.is_closing():
                self.writer.write(b"QUIT\r\n")
                async with asyncio.timeout(2):
                    await self.writer.drain()
                    await self.reader.readline()
        except (OSError, TimeoutError):
            pass
        finally:
            self.writer.close()
            try:
                async with asyncio.timeout(2):
                    await self.writer.wait_closed()
            except (OSError, TimeoutError):
                pass
