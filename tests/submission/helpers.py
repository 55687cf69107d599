"""Helpers of the submission tests: settings, keys, users, a running server, TLS clients."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from tests.gateway.helpers import OPEN_CLIENTS, Client

from mailwarden.dkim import key_record
from mailwarden.dkim.keygen import private_key_pem
from mailwarden.dns import StaticResolver
from mailwarden.gateway import Downstream, TransactionLog
from mailwarden.pipeline import build
from mailwarden.ratelimit import CounterStore, MemoryCounterStore
from mailwarden.settings import Settings, settings_from_mapping
from mailwarden.submission import Alerts, Passwords, Submission

HOST = "msa.a.example"
ED_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(40, 72)))
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
CHEAP = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}  # argon2 for tests
PASSWORD = "correct horse battery staple"
NOW = 1_750_000_000.0


def dkim_records() -> dict[str, str]:
    return {
        "ed._domainkey.a.example": key_record(ED_KEY),
        "rsa._domainkey.a.example": key_record(RSA_KEY),
    }


def write_keys(folder: Path) -> list[dict[str, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ed.pem").write_bytes(private_key_pem(ED_KEY))
    (folder / "rsa.pem").write_bytes(private_key_pem(RSA_KEY))
    return [
        {"domain": "a.example", "selector": "rsa", "key_file": str(folder / "rsa.pem")},
        {"domain": "a.example", "selector": "ed", "key_file": str(folder / "ed.pem")},
    ]


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def make_settings(tmp: Path, **submission: Any) -> Settings:
    """Both listeners on free loopback ports, cheap argon2, both keys of a.example."""
    data: dict[str, Any] = {
        "gateway": {"data_dir": str(tmp / "data"), "hostname": HOST},
        "dnsbl": {"use": []},
        "submission": _merge(
            {
                "listen": "127.0.0.1:0",
                "listen_tls": "127.0.0.1:0",
                "log_file": "",
                "smarthost": "127.0.0.1:9",
                "argon2": CHEAP,
            },
            submission,
        ),
        "signing": {"keys": write_keys(tmp / "keys")},
    }
    return settings_from_mapping(data)


class Clock:
    """An injected wall clock; `sleep` records the waits instead of sleeping."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def add_user(settings: Settings, name: str, *senders: str, password: str = PASSWORD) -> None:
    from mailwarden.submission import user_store

    store = user_store(settings)
    try:
        store.add(name, Passwords(settings.submission.argon2).hash(password), senders)
    finally:
        store.close()


@asynccontextmanager
async def running(
    settings: Settings,
    tls_context: ssl.SSLContext,
    relay: Downstream,
    *,
    clock: Clock | None = None,
    counters: CounterStore | None = None,
    alerts: Alerts | None = None,
) -> AsyncIterator[Submission]:
    resolver = StaticResolver()
    for name, text in dkim_records().items():
        resolver.add(name, "TXT", text)
    clock = clock or Clock()
    submission = Submission.build(
        settings,
        build(settings, resolver, clock=clock),
        counters=counters if counters is not None else MemoryCounterStore(),
        relay=relay,
        log=TransactionLog("", keep=200),
        tls_context=tls_context,
        alerts=alerts,
        clock=clock,
        sleep=clock.sleep,
    )
    try:
        async with submission:
            yield submission
    finally:
        while OPEN_CLIENTS:
            await OPEN_CLIENTS.pop().close()


def client_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def connect_tls(address: tuple[str, int]) -> Client:
    """A client on the implicit-TLS port (RFC 8314 §3.3), after the greeting and EHLO."""
    reader, writer = await asyncio.open_connection(*address, ssl=client_tls(), server_hostname=HOST)
    client = Client(reader, writer)
    OPEN_CLIENTS.append(client)
    code, _ = await client.reply()
    assert code == 220
    code, text = await client.cmd("EHLO client.a.example")
    assert code == 250
    assert "AUTH PLAIN LOGIN" in text
    assert "STARTTLS" not in text
    return client


async def connect_starttls(address: tuple[str, int]) -> Client:
    """A client on the STARTTLS port, in TLS and after the second EHLO."""
    client = await Client.connect(address)
    assert (await client.cmd("EHLO client.a.example"))[0] == 250
    assert (await client.cmd("STARTTLS"))[0] == 220
    await client.starttls(HOST)
    assert (await client.cmd("EHLO client.a.example"))[0] == 250
    return client


def plain(user: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


async def login(client: Client, user: str = "alice@a.example", password: str = PASSWORD) -> int:
    code, _ = await client.cmd(f"AUTH PLAIN {plain(user, password)}")
    return code


def message(sender: str = "alice@a.example", to: str = "bob@b.example", extra: str = "") -> bytes:
    return (
        f"From: Alice <{sender}>\r\nTo: <{to}>\r\nSubject: lunch\r\n{extra}\r\n"
        "See you at noon.\r\n.\r\n"
    ).encode()


async def send(
    client: Client, sender: str, rcpts: list[str], body: bytes | None = None
) -> tuple[int, str]:
    """MAIL, RCPTs, DATA; the first refusal (code, text) or the end-of-data reply."""
    code, text = await client.cmd(f"MAIL FROM:<{sender}>")
    if code != 250:
        return code, text
    accepted = 0
    last = (0, "")
    for rcpt in rcpts:
        last = await client.cmd(f"RCPT TO:<{rcpt}>")
        accepted += last[0] == 250
    if not accepted:
        await client.cmd("RSET")
        return last
    code, text = await client.cmd("DATA")
    if code != 354:
        return code, text
    await client.send(body if body is not None else message(sender))
    code, lines = await client.reply()
    return code, " ".join(lines)
