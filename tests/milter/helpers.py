"""What the milter tests share: a zone, settings, messages, and a server on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric import ed25519

from mailwarden.dkim import sign
from mailwarden.dkim.keygen import key_record
from mailwarden.dns import StaticResolver
from mailwarden.greylist import MemoryStore
from mailwarden.milter import MilterServer, negotiate
from mailwarden.milter import protocol as p
from mailwarden.pipeline import build
from mailwarden.policy import PolicyConfig, Thresholds
from mailwarden.settings import (
    DNSListSettings,
    GatewaySettings,
    MilterSettings,
    Settings,
)

T = TypeVar("T")
HOSTNAME = "mx.b.example"
KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(40, 72)))
LISTED_IP = "203.0.113.66"  # on the list: refused at RCPT


def zone() -> StaticResolver:
    """a.example sends from 127.0.0.0/8 and 192.0.2.10 (SPF, DKIM, DMARC p=reject);
    bank.example (p=reject) never sends from here; 203.0.113.66 is on zen."""
    return StaticResolver(
        {
            "a.example": {"TXT": "v=spf1 ip4:127.0.0.0/8 ip4:192.0.2.10 -all"},
            "mail.a.example": {"A": "127.0.0.1"},
            "1.0.0.127.in-addr.arpa": {"PTR": "mail.a.example"},
            "sel._domainkey.a.example": {"TXT": key_record(KEY)},
            "_dmarc.a.example": {"TXT": "v=DMARC1; p=reject"},
            "bank.example": {"TXT": "v=spf1 ip4:198.51.100.0/24 -all"},
            "_dmarc.bank.example": {"TXT": "v=DMARC1; p=reject"},
            "lax.example": {"TXT": "v=spf1 ?all"},
            "66.113.0.203.zen.spamhaus.org": {"A": "127.0.0.2"},
            "2.0.0.127.zen.spamhaus.org": {"A": "127.0.0.2"},  # RFC 5782 §5 test entry
        }
    )


def settings(data_dir: Path, **milter: object) -> Settings:
    milter.setdefault("listen", "127.0.0.1:0")
    return Settings(
        gateway=GatewaySettings(hostname=HOSTNAME, data_dir=str(data_dir)),
        dnsbl=DNSListSettings(use=("zen",)),
        policy=PolicyConfig(scores={"SPF_NEUTRAL": 4.0}, thresholds=Thresholds(add_header=10.0)),
        milter=MilterSettings(**milter),  # type: ignore[arg-type]
    )


def message(
    author: str = "alice@a.example",
    extra: bytes = b"",
    body: bytes = b"",
    *,
    simple: bool = False,
) -> bytes:
    """A message signed by a.example; `simple`: c=simple/simple, with a folded Subject and
    odd spacing, so that any change to a header field on the way breaks the signature."""
    subject = "Subject:  lunch\r\n\t at  noon" if simple else "Subject: lunch"
    text = (
        f"From: Alice <{author}>\r\nTo: bob@b.example\r\n{subject}\r\n"
        "Date: Mon, 23 Nov 2026 12:00:00 +0000\r\nMessage-ID: <m@a.example>\r\n\r\n"
        "See you at noon.\r\n"
    ).encode() + body
    canonicalization = ("simple", "simple") if simple else ("relaxed", "relaxed")
    signed = sign(text, "a.example", "sel", KEY, canonicalization=canonicalization) + text
    return extra + signed


@contextlib.asynccontextmanager
async def running(tmp: Path, **milter: object) -> AsyncIterator[MilterServer]:
    config = settings(tmp, **milter)
    pipeline = build(config, zone(), greylist=MemoryStore())
    async with MilterServer(config, pipeline, spool_dir=tmp / "spool") as server:
        yield server


def split(raw: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """A message as Postfix hands it to a milter: header fields (name, value with its
    leading space, folded lines joined by LF), then the body."""
    head, _, body = raw.partition(b"\r\n\r\n")
    fields: list[tuple[str, str]] = []
    for line in head.decode().split("\r\n"):
        if line[:1] in (" ", "\t"):
            name, value = fields[-1]
            fields[-1] = (name, value + "\n" + line)
        else:
            name, _, value = line.partition(":")
            fields.append((name, value))
    return fields, body


def commands(
    raw: bytes,
    *,
    ip: str = "192.0.2.10",
    helo: str = "mail.a.example",
    sender: str = "alice@a.example",
    rcpts: tuple[str, ...] = ("bob@b.example",),
) -> list[p.Command]:
    """One SMTP session with one message, as Postfix sends it (no DATA, no unknown)."""
    fields, body = split(raw)
    out: list[p.Command] = [
        p.Macro("C", {"j": HOSTNAME, "{client_addr}": ip}),
        p.Connect("client.example", p.Family.INET6 if ":" in ip else p.Family.INET, 4000, ip),
        p.Helo(helo),
        p.Macro("M", {"i": "ABC123", "{mail_addr}": sender}),
        p.Mail(f"<{sender}>", ("BODY=8BITMIME",)),
    ]
    out += [p.Rcpt(f"<{r}>") for r in rcpts]
    out += [p.Header(name, value) for name, value in fields]
    out.append(p.EndOfHeaders())
    out += [p.Body(body[i : i + 65535]) for i in range(0, len(body), 65535)]
    out.append(p.BodyEnd())
    return out


class Background:
    """A milter served by its own event loop in a thread (for sync clients: sockets,
    swaks, Postfix), restartable on the same port."""

    def __init__(self, tmp: Path, port: int = 0) -> None:
        self.tmp = tmp
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.stack: contextlib.AsyncExitStack | None = None
        self.start(port)

    def start(self, port: int = 0) -> None:
        async def start() -> MilterServer:
            self.stack = contextlib.AsyncExitStack()
            return await self.stack.enter_async_context(
                running(self.tmp, listen=f"127.0.0.1:{port}")
            )

        self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        host, _, bound = self.server.address.rpartition(":")
        self.address = (host, int(bound))

    def call(self, work: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout)

    def connections(self) -> int:
        async def count() -> int:
            await asyncio.sleep(0.05)
            return len(self.server._connections)

        return self.call(count())

    def negotiates(self) -> bool:
        return self.call(negotiate(*self.address, 5)).version == 6

    def halt(self) -> None:
        """Stop serving (the thread and loop stay, for `start`)."""
        if self.stack is not None:
            self.call(self.stack.aclose())
            self.stack = None

    def stop(self) -> None:
        self.halt()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
