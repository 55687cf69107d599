"""A gateway with every check, under attack: the zone, the messages and the SMTP dialogue.

bank.example publishes p=reject and sends only from 198.51.100.0/24; the attacker connects
from 127.0.0.1, which bank.example never uses. a.example is a clean sender at 127.0.0.1 with
SPF, DKIM (ed25519, selector "sel") and DMARC p=reject, and a forward-confirmed reverse name.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from tests.gateway.helpers import HOSTNAME, Client, make_config, messages, running

from mailwarden.dkim import SigningError, sign
from mailwarden.dkim.keygen import key_record
from mailwarden.dns import Resolver, StaticResolver
from mailwarden.gateway import PipelineChecks
from mailwarden.pipeline import build
from mailwarden.settings import DNSListSettings, GatewaySettings, Settings

KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(90, 122)))
HELO = "mail.a.example"
BODY = b"Subject: payment\r\nTo: bob@example.net\r\nMessage-ID: <x@a.example>\r\n\r\nPay.\r\n"


def zone_data() -> dict[str, dict[str, Any]]:
    return {
        "a.example": {"TXT": "v=spf1 ip4:127.0.0.0/8 -all"},
        "mail.a.example": {"A": "127.0.0.1"},
        "1.0.0.127.in-addr.arpa": {"PTR": "mail.a.example"},
        "sel._domainkey.a.example": {"TXT": key_record(KEY)},
        "_dmarc.a.example": {"TXT": "v=DMARC1; p=reject"},
        "bank.example": {"TXT": "v=spf1 ip4:198.51.100.0/24 -all", "A": "198.51.100.1"},
        "_dmarc.bank.example": {"TXT": "v=DMARC1; p=reject"},
    }


def settings(**policy: Any) -> Settings:
    from dataclasses import replace

    base = Settings(gateway=GatewaySettings(hostname=HOSTNAME), dnsbl=DNSListSettings(use=()))
    return replace(base, policy=replace(base.policy, **policy)) if policy else base


def signed(header: bytes, body: bytes = BODY) -> bytes:
    """`header` (the From field and whatever else) above BODY, signed by a.example when our
    signer accepts the message (it refuses malformed header sections and a missing From)."""
    message = header + body
    try:
        return sign(message, "a.example", "sel", KEY, timestamp=int(time.time())) + message
    except SigningError:
        return message


@dataclass
class Outcome:
    code: int
    text: str
    delivered: list[bytes] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)


async def send(
    tmp: Path,
    message: bytes,
    *,
    mail_from: str = "ceo@bank.example",
    smtputf8: bool = False,
    resolver: Resolver | None = None,
    config: Settings | None = None,
    gateway_changes: dict[str, Any] | None = None,
) -> Outcome:
    """One transaction through a fresh gateway over a real socket: the final reply, what the
    mailbox got, and the transaction log."""
    resolver = StaticResolver(zone_data()) if resolver is None else resolver
    checks = PipelineChecks(build(config or settings(), resolver))
    maildir = tmp / f"Maildir-{time.monotonic_ns()}"
    gateway_config = make_config(tmp, hostname=HOSTNAME, **(gateway_changes or {}))
    async with running(gateway_config, checks, maildir=maildir) as gateway:
        client = await Client.connect(gateway.address)
        assert (await client.cmd(f"EHLO {HELO}", 30))[0] == 250
        option = " SMTPUTF8" if smtputf8 else ""
        code, text = await client.cmd(f"MAIL FROM:<{mail_from}>{option}", 30)
        assert code == 250, text
        code, text = await client.cmd("RCPT TO:<bob@example.net>", 30)
        assert code == 250, text
        assert (await client.cmd("DATA"))[0] == 354
        await client.send(_stuffed(message) + b".\r\n")
        code, lines = await client.reply(30)
        await client.cmd("QUIT")
    records = [r for r in gateway.log.records if r.get("type") == "transaction"]
    return Outcome(code, " ".join(lines), messages(maildir), records)


def _stuffed(message: bytes) -> bytes:
    lines = message.split(b"\r\n")
    return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)


def header_lines(delivered: bytes) -> list[str]:
    """The delivered message's header fields, unfolded, as text."""
    head = delivered.split(b"\r\n\r\n")[0].decode("utf-8", "replace")
    fields: list[str] = []
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def named(delivered: bytes, name: str) -> Sequence[str]:
    prefix = name.lower() + ":"
    return [line for line in header_lines(delivered) if line.lower().startswith(prefix)]
