"""What the HTTP API's tests share: one zone, one configuration, messages, a running API."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from mailwarden.dkim import sign
from mailwarden.dkim.keygen import key_record
from mailwarden.greylist import GreylistStore, MemoryStore
from mailwarden.http import HTTPServer
from mailwarden.pipeline import build, build_resolver
from mailwarden.settings import Override, Settings, load_settings

KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(7, 39)))
TOKEN = "t0ken-for-the-tests-0123456789"
HOST = "mx.b.example"

CONFIG = f"""
[gateway]
hostname = "{HOST}"
[dnsbl]
use = []
[http]
token = "{TOKEN}"
[policy.scores]
SPF_NEUTRAL = 2.5
"""


def zone_text() -> str:
    return f"""
a.example. 300 IN TXT "v=spf1 ip4:127.0.0.0/8 ip4:192.0.2.0/24 -all"
mail.a.example. 300 IN A 192.0.2.1
1.2.0.192.in-addr.arpa. 300 IN PTR mail.a.example.
sel._domainkey.a.example. 300 IN TXT "{key_record(KEY)}"
_dmarc.a.example. 300 IN TXT "v=DMARC1; p=reject"
bank.example. 300 IN TXT "v=spf1 ip4:198.51.100.0/24 -all"
_dmarc.bank.example. 300 IN TXT "v=DMARC1; p=quarantine"
"""


def legitimate(number: int = 1) -> bytes:
    body = (
        b"From: Alice <alice@a.example>\r\nTo: bob@example.net\r\nSubject: lunch\r\n"
        b"Message-ID: <%d@a.example>\r\n\r\nSee you at noon.\r\n" % number
    )
    return sign(body, "a.example", "sel", KEY) + body


def spoof() -> bytes:
    return (
        b"From: CEO <ceo@bank.example>\r\nTo: bob@example.net\r\nSubject: wire\r\n"
        b"Message-ID: <2@a.example>\r\n\r\nPay now.\r\n"
    )


def broken_signature() -> bytes:
    signed = legitimate(3)
    return signed.replace(b"See you at noon.", b"See you at one.")


def not_utf8() -> bytes:
    return (
        b"From: =?x?q?\xff?= <alice@a.example>\r\nTo: bob@example.net\r\nSubject: \xe9t\xe9\r\n"
        b"Message-ID: <4@a.example>\r\n\r\nCaf\xe9\r\n"
    )


def several_authors() -> bytes:
    return (
        b"From: alice@a.example, ceo@bank.example\r\nTo: bob@example.net\r\n"
        b"Subject: two\r\nMessage-ID: <5@a.example>\r\n\r\nHi.\r\n"
    )


MESSAGES = {
    "legitimate": legitimate,
    "spoof": spoof,
    "broken_signature": broken_signature,
    "not_utf8": not_utf8,
    "several_authors": several_authors,
}


def write_setup(root: Path, config: str = CONFIG) -> tuple[Path, Path]:
    """The configuration file and the zone file, in `root`."""
    (root / "mailwarden.toml").write_text(config)
    (root / "zone").write_text(zone_text())
    return root / "mailwarden.toml", root / "zone"


def settings_of(root: Path, **overrides: Any) -> Settings:
    given: dict[str, Override] = {"dns.zones": ([str(root / "zone")], "--dns-zone")}
    given["gateway.data_dir"] = (str(root / "data"), "--data-dir")
    for key, value in overrides.items():
        given[key.replace("__", ".")] = (value, key)
    return load_settings(root / "mailwarden.toml", overrides=given)


@asynccontextmanager
async def running(
    settings: Settings, store: GreylistStore | None = None, **options: Any
) -> AsyncIterator[HTTPServer]:
    """The API of `settings` on a free loopback port (a memory greylist store by default)."""
    resolver = build_resolver(settings.dns, settings.source)
    greylist = store if store is not None else MemoryStore()
    pipeline = build(settings, resolver, greylist=greylist)
    async with HTTPServer(settings, pipeline, ("127.0.0.1", 0), **options) as server:
        yield server
    await pipeline.drain()


def url(server: HTTPServer, path: str) -> str:
    host, port = server.address
    return f"http://{host}:{port}{path}"


AUTH = {"Authorization": f"Bearer {TOKEN}"}


@contextmanager
def in_thread(settings: Settings) -> Iterator[tuple[str, int]]:
    """The API of `settings` served by an event loop in a thread of its own, for synchronous
    clients (hypothesis, schemathesis): its address while held."""
    ready: dict[str, Any] = {}

    async def serve() -> None:
        stop = asyncio.Event()
        async with running(settings) as server:
            ready.update(address=server.address, loop=asyncio.get_running_loop(), stop=stop)
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    for _ in range(400):
        if "address" in ready or not thread.is_alive():
            break
        thread.join(0.05)
    assert "address" in ready, "the API did not start"
    try:
        yield ready["address"]
    finally:
        ready["loop"].call_soon_threadsafe(ready["stop"].set)
        thread.join(10)
