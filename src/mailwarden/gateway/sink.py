"""A built-in downstream: delivers every accepted message into one Maildir.

For `make run` and tests when no mailbox server is configured. `MaildirRelay` plugs into the
gateway directly (no socket); `sink_config` makes a gateway that accepts any recipient from
anywhere and delivers with it, which is what `mailwarden sink` runs. A message is written to
`tmp/`, flushed to disk and renamed into `new/` before it is acknowledged.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import secrets
import socket
import time
from pathlib import Path

from mailwarden.body import Body, chunks
from mailwarden.settings import GatewaySettings, SMTPLimits, StrictAction, TLSSettings

from .hooks import Reply, Session

__all__ = ["MaildirRelay", "deliver_to_maildir", "sink_config"]


def deliver_to_maildir(
    maildir: Path,
    sender: str,
    rcpts: list[str],
    message: bytes,
    *,
    fsync: bool = True,
    body: Body = b"",
) -> Path:
    """Write one message (`message` then `body`, a spooled body copied in pieces), with
    Return-Path and Delivered-To, into maildir/new."""
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    now = time.time()
    name = (
        f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}R{secrets.token_hex(6)}."
        f"{socket.gethostname().replace('/', '_').replace(':', '_')}"
    )
    head = f"Return-Path: <{sender}>\r\n".encode()
    head += b"".join(f"Delivered-To: {rcpt}\r\n".encode() for rcpt in rcpts)
    tmp = maildir / "tmp" / name
    with open(tmp, "wb") as handle:
        handle.write(head + message)
        for piece in chunks(body):
            handle.write(piece)
        if fsync:
            handle.flush()
            os.fsync(handle.fileno())
    final = maildir / "new" / name
    os.rename(tmp, final)
    return final


class _MaildirOutbound:
    def __init__(self, maildir: Path, fsync: bool) -> None:
        self.maildir = maildir
        self.fsync = fsync
        self.sender = ""
        self.rcpts: list[str] = []

    async def mail(self, sender: str, params: dict[str, str | None]) -> Reply:
        self.sender, self.rcpts = sender, []
        return Reply(250, "2.1.0", "Ok")

    async def rcpt(self, rcpt: str) -> Reply:
        self.rcpts.append(rcpt)
        return Reply(250, "2.1.5", "Ok")

    async def data(self, head: bytes, body: Body = b"") -> list[Reply]:
        path = await asyncio.to_thread(
            deliver_to_maildir,
            self.maildir,
            self.sender,
            list(self.rcpts),
            head,
            fsync=self.fsync,
            body=body,
        )
        return [Reply(250, "2.0.0", f"Ok: delivered as {path.name}")]

    async def reset(self) -> Reply:
        self.sender, self.rcpts = "", []
        return Reply(250, "2.0.0", "Ok")

    async def close(self) -> None:
        return None


class MaildirRelay:
    """Delivers into a Maildir instead of relaying over the network."""

    def __init__(self, maildir: str | Path, *, fsync: bool = True) -> None:
        self.maildir = Path(maildir)
        self.fsync = fsync

    async def open(self, session: Session) -> _MaildirOutbound:
        return _MaildirOutbound(self.maildir, self.fsync)

    async def close(self) -> None:
        return None


def sink_config(listen: tuple[str, int], hostname: str = "sink.invalid") -> GatewaySettings:
    """A gateway that takes anything from anyone: every network trusted, no greet pause."""
    return GatewaySettings(
        listen=listen,
        hostname=hostname,
        trusted_networks=(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")),
        greet_pause=0.0,
        pipelining_action=StrictAction.LOG,
        non_smtp_action=StrictAction.LOG,
        log_file="",
        limits=SMTPLimits(
            max_message_size=100 * 1024 * 1024,
            max_line_length=1_000_000,
            max_header_size=10 * 1024 * 1024,
            max_connections=5000,
            max_connections_per_client=5000,
            max_recipients=1000,
        ),
        tls=TLSSettings(enabled=False, self_signed=False),
    )
