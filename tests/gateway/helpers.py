"""Helpers for the gateway tests: a raw SMTP client, a running gateway, Maildir reading."""

from __future__ import annotations

import asyncio
import shutil
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from tests.testdata import unavailable

from mailwarden.gateway import Checks, Downstream, Gateway, MaildirRelay, TransactionLog
from mailwarden.settings import GatewaySettings, SMTPLimits, Timeouts, TLSSettings

HOSTNAME = "mx.test.example"
LOCAL = "example.net"


def require_program(name: str) -> str:
    """The path of a program the test needs; skip without it, fail under CI=true."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if path is None:
        unavailable(f"{name} is not installed (Debian package {name}; `make system-deps`)")
    return path


def make_config(tmp: Path, **changes: Any) -> GatewaySettings:
    """A gateway on a free loopback port: no greet pause, no TLS, no log output."""
    limits = changes.pop("limits", {})
    timeouts = changes.pop("timeouts", {})
    config = GatewaySettings(
        listen=("127.0.0.1", 0),
        hostname=HOSTNAME,
        local_domains=(LOCAL,),
        greet_pause=0.0,
        data_dir=str(tmp / "data"),
        log_file="",
        tls=TLSSettings(enabled=False, self_signed=False),
        limits=replace(SMTPLimits(), **limits),
        timeouts=replace(Timeouts(), **timeouts),
    )
    return replace(config, **changes)


@asynccontextmanager
async def running(
    config: GatewaySettings,
    checks: Checks | None = None,
    *,
    relay: Downstream | None = None,
    maildir: Path | None = None,
    tls_context: ssl.SSLContext | None = None,
) -> AsyncIterator[Gateway]:
    """A started gateway whose log keeps its records (gateway.log.records)."""
    if relay is None:
        relay = MaildirRelay(maildir or Path(config.data_dir) / "Maildir", fsync=False)
    gateway = Gateway(
        config, checks, relay=relay, log=TransactionLog("", keep=100), tls_context=tls_context
    )
    try:
        async with gateway:
            yield gateway
    finally:
        while OPEN_CLIENTS:
            await OPEN_CLIENTS.pop().close()


def messages(maildir: Path) -> list[bytes]:
    """The messages delivered into a Maildir (new/ and cur/), oldest first."""
    found: list[Path] = []
    for sub in ("new", "cur"):
        folder = maildir / sub
        if folder.is_dir():
            found.extend(p for p in folder.iterdir() if p.is_file())
    return [p.read_bytes() for p in sorted(found, key=lambda p: p.stat().st_mtime_ns)]


OPEN_CLIENTS: list[Client] = []  # closed when `running` ends (unclosed sockets warn)


class Client:
    """A raw SMTP client: send exact bytes, read whole replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, address: tuple[str, int], *, greeting: bool = True) -> Client:
        reader, writer = await asyncio.open_connection(*address)
        client = cls(reader, writer)
        OPEN_CLIENTS.append(client)
        if greeting:
            code, _ = await client.reply()
            assert code == 220
        return client

    async def reply(self, seconds: float = 5.0) -> tuple[int, list[str]]:
        """(code, text lines) of one reply; (0, []) if the server closed the connection."""
        lines: list[str] = []
        async with asyncio.timeout(seconds):
            while True:
                raw = await self.reader.readline()
                if not raw:
                    return 0, lines
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                lines.append(line[4:])
                if line[3:4] != "-":
                    return int(line[:3]), lines

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def cmd(self, line: str, seconds: float = 5.0) -> tuple[int, str]:
        await self.send(line.encode() + b"\r\n")
        code, lines = await self.reply(seconds)
        return code, " ".join(lines)

    async def closed(self, seconds: float = 5.0) -> bool:
        """True once the server has closed the connection (all pending input read)."""
        async with asyncio.timeout(seconds):
            try:
                while await self.reader.read(4096):
                    pass
            except ConnectionResetError:  # it closed while the client was still sending
                pass
        return True

    async def starttls(self, hostname: str = HOSTNAME) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        await self.writer.start_tls(context, server_hostname=hostname)

    async def close(self) -> None:
        self.writer.close()
        try:
            async with asyncio.timeout(2):
                await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError, TimeoutError):
            pass

    async def transaction(
        self, sender: str, rcpts: list[str], body: bytes, *, ehlo: bool = True
    ) -> int:
        """EHLO (optional), MAIL, RCPTs, DATA with `body` (must end with CRLF.CRLF)."""
        if ehlo:
            assert (await self.cmd("EHLO client.example.org"))[0] == 250
        code, text = await self.cmd(f"MAIL FROM:<{sender}>")
        assert code == 250, text
        for rcpt in rcpts:
            code, text = await self.cmd(f"RCPT TO:<{rcpt}>")
            assert code == 250, text
        code, text = await self.cmd("DATA")
        assert code == 354, text
        await self.send(body)
        code, _ = await self.reply()
        return code


SIMPLE = b"From: alice@example.com\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nHello.\r\n.\r\n"
