"""Shared helpers for the DKIM tests: keys, static DNS, and dkimpy wired to the same DNS."""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable, Mapping

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailwarden.dkim import DKIMResult, DKIMVerifier, PrivateKey, key_record
from mailwarden.dns import StaticResolver
from mailwarden.message import Message

NOW = 1_700_000_000  # a fixed clock for signing and verifying


@functools.cache
def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.cache
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def pem(key: PrivateKey) -> bytes:
    """PKCS#1 PEM for RSA (as dkimpy wants), base64 seed for Ed25519 (dkimpy's format)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return base64.b64encode(raw)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def resolver(records: Mapping[str, str | bytes]) -> StaticResolver:
    """TXT records by owner name (a trailing dot allowed)."""
    static = StaticResolver()
    for name, text in records.items():
        static.add(name.rstrip("."), "TXT", text)
    return static


def key_records(domain: str, keys: Mapping[str, PrivateKey]) -> dict[str, str]:
    return {f"{selector}._domainkey.{domain}": key_record(k) for selector, k in keys.items()}


def dkimpy_dns(records: Mapping[str, str | bytes]) -> Callable[..., bytes | None]:
    """A dkimpy dnsfunc answering from the same records."""
    table = {
        name.rstrip(".").lower(): text.encode() if isinstance(text, str) else text
        for name, text in records.items()
    }

    def dnsfunc(name: bytes | str, timeout: int = 5) -> bytes | None:
        key = (name.decode() if isinstance(name, bytes) else name).rstrip(".").lower()
        return table.get(key)

    return dnsfunc


async def verify(
    message: Message | bytes, records: Mapping[str, str | bytes], now: float = NOW, **kw: object
) -> list[DKIMResult]:
    verifier = DKIMVerifier(resolver(records), clock=lambda: now, **kw)  # type: ignore[arg-type]
    return await verifier.verify(message)
