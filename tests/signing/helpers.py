"""Shared helpers of the signing tests: a DNS zone the tests change, a clock, fast keys."""

from __future__ import annotations

import functools
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailwarden.dkim import KeyType, PrivateKey
from mailwarden.dns import Answer, RdType, StaticResolver, TemporaryFailure

DAY = 86400.0
START = 1_714_521_600.0  # 2024-05-01T00:00:00Z


class Zone:
    """A DNS zone of TXT records that a test publishes, replaces, removes or breaks."""

    def __init__(self) -> None:
        self.records: dict[str, str] = {}
        self.broken: set[str] = set()
        self.queries: list[str] = []

    def publish(self, name: str, text: str) -> None:
        self.records[name.lower().rstrip(".")] = text

    def remove(self, name: str) -> None:
        self.records.pop(name.lower().rstrip("."), None)

    async def resolve(self, name: str, rdtype: RdType) -> Answer:
        self.queries.append(name)
        if name in self.broken:
            raise TemporaryFailure(name, rdtype, "timeout")
        static = StaticResolver()
        for owner, text in self.records.items():
            static.add(owner, "TXT", text, ttl=300)
        return await static.resolve(name, rdtype)


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, days: float) -> None:
        self.now += days * DAY


@functools.cache
def _rsa(index: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def fast_keys() -> Callable[[KeyType, int], PrivateKey]:
    """A key generator handing out a few pre-made RSA keys (RSA generation is slow)."""
    counter = {"rsa": 0}

    def generate(key_type: KeyType, bits: int = 2048) -> PrivateKey:
        if KeyType(key_type) is KeyType.ED25519:
            return ed25519.Ed25519PrivateKey.generate()
        counter["rsa"] += 1
        return _rsa(counter["rsa"] % 6)

    return generate
