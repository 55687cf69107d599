"""Shared helpers for the ARC tests: keys, DNS, messages, and a forwarding hop that seals."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailwarden.arc import ARCResult, ARCStatus, ARCVerifier, header_block, seal
from mailwarden.dkim import PrivateKey, key_record
from mailwarden.dns import StaticResolver
from mailwarden.message import HeaderField, Message

NOW = 1_700_000_000
RESULTS = "spf=pass smtp.mailfrom=origin.example; dmarc=pass header.from=origin.example"


@functools.cache
def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.cache
def ed_key(n: int = 0) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


# (domain, selector) -> private key of every sealer the tests use
SEALERS: dict[tuple[str, str], Callable[[], PrivateKey]] = {
    ("list.example", "rsa"): lambda: rsa_key(2048),
    ("list.example", "ed"): lambda: ed_key(0),
    ("fwd.example", "sel1"): lambda: rsa_key(1024),
    ("relay.example", "ed"): lambda: ed_key(1),
}


def records(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    out = {f"{sel}._domainkey.{dom}": key_record(make()) for (dom, sel), make in SEALERS.items()}
    out.update(extra or {})
    return out


def resolver(extra: Mapping[str, str] | None = None) -> StaticResolver:
    static = StaticResolver()
    for name, text in records(extra).items():
        static.add(name, "TXT", text)
    return static


def verifier(static: StaticResolver | None = None) -> ARCVerifier:
    return ARCVerifier(static or resolver(), clock=lambda: NOW)


BASE = (
    b"Received: from mail.origin.example by mx.list.example; Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    b"Authentication-Results: mx.list.example; spf=pass smtp.mailfrom=origin.example;\r\n"
    b" dkim=pass header.d=origin.example; dmarc=pass header.from=origin.example\r\n"
    b"From: Alice <alice@origin.example>\r\n"
    b"To: list@list.example\r\n"
    b"Subject: Hello\r\n"
    b"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    b"Message-ID: <1@origin.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"Hello  world.\r\n"
    b"\r\n"
)


HOPS = (("list.example", "rsa"), ("fwd.example", "sel1"), ("relay.example", "ed"))


def swap(message: Message, old: HeaderField, raw: bytes) -> Message:
    """`message` with the field `old` replaced by the field `raw` (CRLF included)."""
    new = Message.from_bytes(raw).fields[0]
    fields = tuple(new if f is old else f for f in message.fields)
    return Message(fields, message.separator, message.body)


def base_message() -> Message:
    return Message.from_bytes(BASE)


def sealed_by(
    message: Message,
    domain: str,
    selector: str,
    cv: ARCStatus | str,
    *,
    auth_results: str = RESULTS,
    authserv_id: str | None = None,
    headers: Iterable[str] | None = None,
) -> Message:
    """`message` with the next ARC set of (domain, selector) prepended."""
    fields = seal(
        message,
        domain=domain,
        selector=selector,
        private_key=SEALERS[(domain, selector)](),
        authserv_id=authserv_id or f"mx.{domain}",
        auth_results=auth_results,
        chain_validation=cv,
        headers=headers,
        timestamp=NOW,
    )
    return message.prepend(header_block(fields)) if fields else message


async def hop(
    message: Message,
    domain: str,
    selector: str,
    *,
    static: StaticResolver | None = None,
    auth_results: str = RESULTS,
    change: Callable[[Message], Message] | None = None,
) -> tuple[Message, ARCResult]:
    """A forwarder: validate the chain as received, optionally change the message, seal."""
    result = await verifier(static).verify(message)
    if change is not None:
        message = change(message)
    payload = f"arc={result.result}; {auth_results}"
    return sealed_by(message, domain, selector, result.result, auth_results=payload), result


def add_footer(message: Message) -> Message:
    """What a mailing list does to the body."""
    return Message(message.fields, message.separator, message.body + b"-- \r\nlist footer\r\n")


def replace_header(message: Message, name: bytes, raw: bytes) -> Message:
    """`message` with the first field called `name` replaced by `raw` (CRLF included)."""
    fields = list(message.fields)
    for index, field in enumerate(fields):
        if field.lname == name.decode().lower():
            fields[index] = Message.from_bytes(raw + b"\r\n").fields[0]
            break
    return Message(tuple(fields), message.separator, message.body)
