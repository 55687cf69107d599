"""Signing algorithms (RFC 6376 §3.3, RFC 8301, RFC 8463): sign and verify bytes.

Thin wrappers shared by DKIM and ARC: the data given is the canonicalized header input; the
hash is applied here as each algorithm prescribes. `cryptography` signs (both algorithms) and
verifies RSA; Ed25519 signatures are verified by libsodium through PyNaCl, about twice as fast
as `cryptography`'s OpenSSL build (benchmarks/dkim_bench.py), and strict where RFC 8032 §5.1.7
lets implementations differ (non-canonical S, small-order keys are refused).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from enum import StrEnum

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from nacl.bindings import crypto_sign_BYTES, crypto_sign_open
from nacl.exceptions import BadSignatureError

from .key import KeyType, PublicKey

__all__ = [
    "Algorithm",
    "PrivateKey",
    "load_private_key",
    "sign_data",
    "verify_data",
]

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


class Algorithm(StrEnum):
    """a= values."""

    RSA_SHA256 = "rsa-sha256"
    RSA_SHA1 = "rsa-sha1"  # RFC 8301 §3.1: verifiers must not accept it (we report policy)
    ED25519_SHA256 = "ed25519-sha256"

    @property
    def key_type(self) -> KeyType:
        return _ED25519 if self is _ED25519_SHA256 else _RSA

    @property
    def hash_name(self) -> str:
        """The hash, as named in a key record's h= tag and by hashlib."""
        return "sha1" if self is _RSA_SHA1 else "sha256"

    @classmethod
    def for_key(cls, key: PrivateKey | PublicKey) -> Algorithm:
        """The SHA-256 algorithm that goes with a key."""
        if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
            return cls.ED25519_SHA256
        return cls.RSA_SHA256


# Members read on the warm path, as module constants: on Python 3.11 a member read through
# its class goes through EnumType.__getattr__'s slow attribute path.
_RSA_SHA1, _ED25519_SHA256 = Algorithm.RSA_SHA1, Algorithm.ED25519_SHA256
_RSA, _ED25519 = KeyType.RSA, KeyType.ED25519
_PKCS1 = padding.PKCS1v15()
_SHA1 = hashes.SHA1()
_SHA256 = hashes.SHA256()


def _rsa_hash(algorithm: Algorithm) -> hashes.HashAlgorithm:
    return _SHA1 if algorithm is _RSA_SHA1 else _SHA256


def sign_data(private_key: PrivateKey, algorithm: Algorithm, data: bytes) -> bytes:
    """The signature of `data` (the canonicalized header input) under `algorithm`."""
    if algorithm is Algorithm.ED25519_SHA256:
        if not isinstance(private_key, ed25519.Ed25519PrivateKey):
            raise TypeError("ed25519-sha256 needs an Ed25519 private key")
        # RFC 8463 §3: PureEdDSA over the SHA-256 digest of the data
        return private_key.sign(hashlib.sha256(data).digest())
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise TypeError(f"{algorithm} needs an RSA private key")
    return private_key.sign(data, _PKCS1, _rsa_hash(algorithm))


def verify_data(public_key: PublicKey, algorithm: Algorithm, data: bytes, signature: bytes) -> bool:
    """Whether `signature` is a valid `algorithm` signature of `data` under `public_key`."""
    try:
        if algorithm is _ED25519_SHA256:
            if not isinstance(public_key, ed25519.Ed25519PublicKey):
                return False
            if len(signature) != crypto_sign_BYTES:  # a signed message is signature || data
                return False
            # RFC 8463 §3: PureEdDSA over the SHA-256 digest of the data
            digest = hashlib.sha256(data).digest()
            try:
                crypto_sign_open(signature + digest, public_key.public_bytes_raw())
            except BadSignatureError:
                return False
        else:
            if not isinstance(public_key, rsa.RSAPublicKey):
                return False
            public_key.verify(signature, data, _PKCS1, _rsa_hash(algorithm))
    except InvalidSignature:
        return False
    return True


def load_private_key(data: bytes, password: bytes | None = None) -> PrivateKey:
    """An RSA or Ed25519 private key from PEM (PKCS#1 or PKCS#8), or a base64 32-byte Ed25519
    seed as dkimpy and RFC 8463 §A.1 write it. ValueError when it is neither."""
    if b"-----BEGIN" in data:
        try:
            key = load_pem_private_key(data, password)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ValueError(f"cannot read the PEM private key: {exc}") from None
        if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
            raise ValueError("the private key is neither RSA nor Ed25519")
        return key
    try:
        seed = base64.b64decode(b"".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the key is neither PEM nor a base64 Ed25519 seed") from None
    if len(seed) != 32:
        raise ValueError(f"a base64 Ed25519 seed must be 32 bytes, not {len(seed)}")
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed)
