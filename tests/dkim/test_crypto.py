"""The signing algorithms (RFC 6376 §3.3, RFC 8463)."""

from __future__ import annotations

from tests.dkim.helpers import ed_key

from mailwarden.dkim import Algorithm


def test_algorithm_properties() -> None:
    assert Algorithm.RSA_SHA1.hash_name == "sha1"
    assert Algorithm.for_key(ed_key()) is Algorithm.ED25519_SHA256
