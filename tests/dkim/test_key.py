"""Key records (mailwarden.dkim.key): a valid record's text is decoded once per process, each
answer keeps its own TTL, and an invalid one is refused every time."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailwarden.dkim import KeyFailure, KeyRecord, fetch_key
from mailwarden.dkim import key as key_module
from mailwarden.dkim.keygen import key_record
from mailwarden.dns import StaticResolver

ED = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def zone(text: str, ttl: int = 3600) -> StaticResolver:
    return StaticResolver({"sel._domainkey.example.com": {"TXT": text}}, ttl=ttl)


async def test_fresh_resolvers_share_one_decoded_key_with_their_own_ttl() -> None:
    text = key_record(ED)
    first = await fetch_key(zone(text, ttl=300), "sel", "example.com")
    second = await fetch_key(zone(text, ttl=60), "sel", "example.com")
    assert isinstance(first, KeyRecord)
    assert isinstance(second, KeyRecord)
    assert second.public_key is first.public_key  # decoded once
    assert (first.ttl, second.ttl) == (300, 60)


async def test_an_rsa_key_is_shared_too() -> None:
    text = key_record(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    first = await fetch_key(zone(text), "sel", "example.com")
    second = await fetch_key(zone(text), "sel", "example.com")
    assert isinstance(first, KeyRecord)
    assert isinstance(second, KeyRecord)
    assert second.public_key is first.public_key
    assert first.key_bits == 1024


async def test_an_invalid_record_fails_every_time() -> None:
    for _ in range(2):
        outcome = await fetch_key(zone("v=DKIM1; k=rsa; p=AAAA"), "sel", "example.com")
        assert isinstance(outcome, KeyFailure)
        assert outcome.reason == "p= is not a valid RSA public key"


async def test_a_long_record_is_not_kept() -> None:
    text = key_record(ED) + "; n=" + "x" * 5000
    before = key_module._parse_remembered.cache_info().currsize
    first = await fetch_key(zone(text), "sel", "example.com")
    second = await fetch_key(zone(text), "sel", "example.com")
    assert isinstance(first, KeyRecord)
    assert isinstance(second, KeyRecord)
    assert second.public_key is not first.public_key
    assert key_module._parse_remembered.cache_info().currsize == before
