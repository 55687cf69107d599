"""The keys we sign with, each on its way through the stages of a rotation.

    pending ──(its record is seen in DNS)──► active ──(a newer key became active)──► retired
       retired ──(grace period over)──► revoke ──(empty p= or no record seen)──► revoked

A key signs only while active. A retired key's record stays published for the grace period,
so mail signed with it and still in transit verifies; then the operator is told to revoke it
with an empty p= (RFC 6376 §3.6.1), and once DNS shows that, its private key is deleted. An
emergency rotation sends every key of the domain to `revoke` at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from mailwarden.dkim import KeyType, key_name

__all__ = ["ManagedKey", "Stage", "StoreError", "revocation_record"]


class Stage(StrEnum):
    """Where a key is in its rotation."""

    PENDING = "pending"  # made, its record not yet seen in DNS: not signing
    ACTIVE = "active"  # its record is published: signing
    RETIRED = "retired"  # replaced: not signing; the record stays for the grace period
    REVOKE = "revoke"  # the operator must now publish an empty p= (or remove the record)
    REVOKED = "revoked"  # DNS shows it revoked or gone; the private key is deleted


class StoreError(ValueError):
    """The key store cannot be read or written (the message says which file and why)."""


def revocation_record(key_type: KeyType) -> str:
    """The record that revokes a key: an empty p= (RFC 6376 §3.6.1)."""
    return f"v=DKIM1; k={key_type.value}; p="


@dataclass(frozen=True, slots=True)
class ManagedKey:
    """One key of the store: its identity, its public record, and its rotation stage.

    Times are seconds since the epoch. `note` says why the key is in its stage.
    """

    domain: str  # A-labels, lower case
    selector: str
    algorithm: KeyType
    bits: int  # RSA modulus size; 256 for Ed25519
    record: str  # the TXT record to publish ("v=DKIM1; k=...; p=...")
    created: float
    stage: Stage = Stage.PENDING
    since: float = 0.0  # when it entered its stage
    activated: float | None = None
    retired: float | None = None
    emergency: bool = False
    note: str = ""

    @property
    def name(self) -> str:
        """Where its record is published (RFC 6376 §3.6.2.1)."""
        return key_name(self.selector, self.domain)

    @property
    def signing(self) -> bool:
        return self.stage is Stage.ACTIVE

    @property
    def has_private_key(self) -> bool:
        return self.stage is not Stage.REVOKED

    def moved(self, stage: Stage, now: float, note: str, **changes: Any) -> ManagedKey:
        """This key in `stage` from `now` on."""
        return replace(self, stage=stage, since=now, note=note, **changes)

    def age(self, now: float) -> float:
        """Seconds since the key was made."""
        return max(0.0, now - self.created)

    def to_dict(self) -> dict[str, Any]:
        """The stored form, also the JSON of `mailwarden dkim keys`."""
        return {
            "domain": self.domain,
            "selector": self.selector,
            "algorithm": self.algorithm.value,
            "bits": self.bits,
            "stage": self.stage.value,
            "created": self.created,
            "since": self.since,
            "activated": self.activated,
            "retired": self.retired,
            "emergency": self.emergency,
            "note": self.note,
            "name": self.name,
            "record": self.record,
        }

    @classmethod
    def from_dict(cls, data: Any) -> ManagedKey:
        """A key from its stored form; StoreError naming what is wrong."""
        if not isinstance(data, dict):
            raise StoreError("a key entry is not an object")
        try:
            return cls(
                domain=_text(data, "domain"),
                selector=_text(data, "selector"),
                algorithm=KeyType(_text(data, "algorithm")),
                bits=_int(data, "bits"),
                record=_text(data, "record"),
                created=_number(data, "created"),
                stage=Stage(_text(data, "stage")),
                since=_number(data, "since"),
                activated=_optional(data, "activated"),
                retired=_optional(data, "retired"),
                emergency=bool(data.get("emergency", False)),
                note=str(data.get("note", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"a key entry is malformed: {exc}") from None


def _text(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} is not a string")
    return value


def _number(data: dict[str, Any], key: str) -> float:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{key} is not a number")
    return float(value)


def _int(data: dict[str, Any], key: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{key} is not a whole number")
    return value


def _optional(data: dict[str, Any], key: str) -> float | None:
    return None if data.get(key) is None else _number(data, key)
