"""DKIM key pairs: generate, store the private key safely, format the record to publish."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from .crypto import PrivateKey
from .key import KeyType, key_name

__all__ = [
    "MAX_RSA_BITS",
    "MIN_RSA_BITS",
    "generate_key",
    "key_record",
    "private_key_pem",
    "txt_strings",
    "write_private_key",
    "zone_entry",
]

MIN_RSA_BITS = 1024  # RFC 8301 §3.2 (2048 recommended)
MAX_RSA_BITS = 4096  # RFC 8301 §3.2: verifiers need not go past 4096


def generate_key(key_type: KeyType | str, bits: int = 2048) -> PrivateKey:
    """A new private key: RSA of `bits` bits (1024..4096), or Ed25519."""
    if KeyType(key_type) is KeyType.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    if not MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
        raise ValueError(f"RSA key size must be {MIN_RSA_BITS}..{MAX_RSA_BITS} bits, not {bits}")
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_key_pem(key: PrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_private_key(path: str | Path, key: PrivateKey) -> None:
    """Write the PEM with mode 0600; FileExistsError rather than overwrite an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, private_key_pem(key))
    finally:
        os.close(fd)


def key_record(key: PrivateKey) -> str:
    """The key record to publish (RFC 6376 §3.6.1; RFC 8463 §4 for Ed25519)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode("ascii")
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode("ascii")


def txt_strings(record: str, limit: int = 255) -> list[str]:
    """The record cut into TXT character-strings of at most `limit` bytes (RFC 1035 §3.3)."""
    data = record.encode("ascii")
    return [data[i : i + limit].decode("ascii") for i in range(0, len(data), limit)] or [""]


def zone_entry(selector: str, domain: str, record: str) -> str:
    """An RFC 1035 master-file line publishing `record` at selector._domainkey.domain."""
    strings = " ".join(f'"{s}"' for s in txt_strings(record))
    return f"{key_name(selector, domain)}. IN TXT ( {strings} )"
