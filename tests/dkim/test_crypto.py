"""The signing algorithms (RFC 6376 §3.3, RFC 8463)."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.dkim.helpers import ed_key

from mailwarden.dkim import Algorithm, verify_data


def test_algorithm_properties() -> None:
    assert Algorithm.RSA_SHA1.hash_name == "sha1"
    assert Algorithm.for_key(ed_key()) is Algorithm.ED25519_SHA256


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=300), flip=st.integers(min_value=0, max_value=63 * 8))
def test_ed25519_verification_agrees_with_openssl(data: bytes, flip: int) -> None:
    """libsodium (our verifier) and OpenSSL (`cryptography`) agree on valid signatures, on
    signatures with one bit flipped, and on truncated or extended ones (RFC 8463 §3)."""
    key = ed_key()
    public = key.public_key()
    signature = key.sign(hashlib.sha256(data).digest())
    assert verify_data(public, Algorithm.ED25519_SHA256, data, signature)
    flipped = bytearray(signature)
    flipped[flip // 8] ^= 1 << (flip % 8)
    assert not verify_data(public, Algorithm.ED25519_SHA256, data, bytes(flipped))
    assert not verify_data(public, Algorithm.ED25519_SHA256, data + b"x", signature)
    assert not verify_data(public, Algorithm.ED25519_SHA256, data, signature[:-1])
    assert not verify_data(public, Algorithm.ED25519_SHA256, data, signature + b"\0")
    assert not verify_data(public, Algorithm.ED25519_SHA256, data, b"")


def test_ed25519_key_given_for_rsa_algorithm_fails() -> None:
    key = ed_key()
    signature = key.sign(hashlib.sha256(b"x").digest())
    assert not verify_data(key.public_key(), Algorithm.RSA_SHA256, b"x", signature)


def test_ed25519_small_order_key_is_refused() -> None:
    """libsodium refuses a small-order public key (the identity point), which would accept a
    forged signature for any message under lax verifiers (RFC 8032 §5.1.7 leaves it open)."""
    identity = Ed25519PublicKey.from_public_bytes(b"\x01" + b"\x00" * 31)
    forged = b"\x01" + b"\x00" * 31 + b"\x00" * 32  # R = identity, S = 0
    assert not verify_data(identity, Algorithm.ED25519_SHA256, b"anything", forged)
