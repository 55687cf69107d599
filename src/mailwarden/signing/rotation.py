"""DKIM key rotation: new keys, their activation once DNS shows them, grace, revocation.

`step` is the pure core: the keys, the time, what DNS shows for each, and the settings in;
the keys' new stages, what happened (events, with the record the operator must publish) and
which rotations are due out. `Rotator` does the I/O around it: DNS through the injected
resolver, new keys, the store (under its lock, in a thread so a server's loop never waits on
it). The stages are drawn in `mailwarden.signing.model`.

Rules, in the order `step` applies them:
  1. a pending key whose record DNS shows with its own public key becomes active; the active
     key it replaces (same domain and algorithm) is retired (it stops signing now);
  2. a retired key whose grace period is over moves to `revoke`: publish an empty p=;
  3. a key in `revoke` whose record DNS shows revoked, absent or replaced is revoked (its
     private key is then deleted);
  4. an active key older than the rotation period, with no pending successor, is due for
     rotation (a new key is made: publish its record).
A DNS failure changes nothing: the key is looked at again next time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mailwarden.dkim import (
    DKIMReason,
    KeyFailure,
    KeyRecordError,
    KeyType,
    PrivateKey,
    PublicKey,
    fetch_key,
    generate_key,
    key_record,
    parse_key_record,
    zone_entry,
)
from mailwarden.dns import Resolver, is_domain_name, to_ascii

from .model import ManagedKey, Stage, StoreError, revocation_record
from .settings import SigningSettings, render_selector
from .store import KeyStore

__all__ = [
    "DAY",
    "EventKind",
    "Publication",
    "RotationEvent",
    "Rotator",
    "Seen",
    "domain_name",
    "next_selector",
    "observe",
    "step",
]

DAY = 86400.0
_SUFFIXES = "bcdefghijklmnopqrstuvwxyz"


class Publication(StrEnum):
    """What DNS shows at a key's name."""

    MATCHES = "matches"  # a record with this key's public key
    OTHER = "other"  # a record with another key, or one that cannot be used
    REVOKED = "revoked"  # a record with an empty p=
    ABSENT = "absent"  # no such name, or no TXT record there
    UNKNOWN = "unknown"  # the lookup failed (timeout, SERVFAIL): decide nothing


@dataclass(frozen=True, slots=True)
class Seen:
    publication: Publication
    detail: str = ""


class EventKind(StrEnum):
    """What a rotation step did or needs from the operator."""

    CREATED = "created"  # a new key: publish its record
    WAITING = "waiting"  # pending: its record is not (yet) in DNS
    ACTIVATED = "activated"  # its record is published: signing with it from now on
    RETIRED = "retired"  # replaced: no longer signing; its record stays for the grace period
    REVOKE = "revoke"  # publish an empty p= for it now
    REVOKED = "revoked"  # DNS shows it revoked: private key deleted
    MISSING = "missing"  # an active key whose record DNS does not show: signatures fail
    DNS_ERROR = "dns-error"  # its record could not be looked up this time


_OPERATOR = {EventKind.CREATED, EventKind.WAITING, EventKind.REVOKE, EventKind.MISSING}


@dataclass(frozen=True, slots=True)
class RotationEvent:
    """One thing that happened to a key, or that the operator must do about it."""

    kind: EventKind
    key: ManagedKey
    message: str
    record: str | None = None  # the TXT record to publish now, if any

    @property
    def needs_operator(self) -> bool:
        return self.kind in _OPERATOR

    def zone_entry(self) -> str | None:
        """The record to publish as an RFC 1035 master-file line."""
        if self.record is None:
            return None
        return zone_entry(self.key.selector, self.key.domain, self.record)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.kind.value,
            "domain": self.key.domain,
            "selector": self.key.selector,
            "algorithm": self.key.algorithm.value,
            "stage": self.key.stage.value,
            "message": self.message,
            "name": self.key.name,
            "publish": self.record,
            "zone_entry": self.zone_entry(),
        }


def domain_name(text: str) -> str:
    """A domain given by a user, in A-label form and lower case; ValueError when invalid."""
    try:
        name = to_ascii(text.strip().rstrip(".").lower())
    except ValueError as exc:
        raise ValueError(f"invalid domain {text!r}: {exc}") from None
    if not is_domain_name(name) or "." not in name:
        raise ValueError(f"invalid domain {text!r}")
    return name


def _spki(key: PublicKey) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


async def observe(resolver: Resolver, key: ManagedKey) -> Seen:
    """What DNS shows at `key`'s name (never raises for a DNS outcome)."""
    found = await fetch_key(resolver, key.selector, key.domain)
    if isinstance(found, KeyFailure):
        if found.temporary:
            return Seen(Publication.UNKNOWN, found.reason)
        if found.code is DKIMReason.NO_KEY:
            return Seen(Publication.ABSENT, found.reason)
        return Seen(Publication.OTHER, found.reason)
    if found.public_key is None:
        return Seen(Publication.REVOKED, "empty p=")
    try:
        ours = parse_key_record(key.record).public_key
    except KeyRecordError as exc:  # our own record is broken: never activate it
        return Seen(Publication.OTHER, f"the stored record is unusable: {exc}")
    if ours is not None and _spki(ours) == _spki(found.public_key):
        return Seen(Publication.MATCHES)
    return Seen(Publication.OTHER, "DNS holds a different key")


def next_selector(template: str, algorithm: KeyType, now: float, used: Iterable[str]) -> str:
    """The selector for a new key: the template's, or with a letter added when taken.

    Selectors are never reused, even revoked ones (caches and reports still hold them)."""
    base = render_selector(template, algorithm, now)
    taken = set(used)
    for candidate in [base, *(base + letter for letter in _SUFFIXES)]:
        if candidate not in taken:
            return candidate
    raise ValueError(f"every selector from {base} to {base}z is taken")


def step(
    keys: Sequence[ManagedKey],
    now: float,
    settings: SigningSettings,
    seen: Mapping[tuple[str, str], Seen],
) -> tuple[list[ManagedKey], list[RotationEvent], list[tuple[str, KeyType]]]:
    """One pass of the rules (module docstring): new keys, events, rotations due."""
    out = list(keys)
    events: list[RotationEvent] = []
    grace = settings.grace_days * DAY

    def look(key: ManagedKey) -> Seen:
        return seen.get((key.domain, key.selector), Seen(Publication.UNKNOWN, "not looked up"))

    # 1. activation (and the retirement of the key each new one replaces)
    for index, key in enumerate(out):
        if key.stage is not Stage.PENDING:
            continue
        found = look(key)
        if found.publication is Publication.MATCHES:
            out[index] = key.moved(Stage.ACTIVE, now, "its record is published", activated=now)
            events.append(
                RotationEvent(EventKind.ACTIVATED, out[index], f"{key.name}: now signing with it")
            )
            for other, old in enumerate(out):
                if (
                    old.stage is Stage.ACTIVE
                    and other != index
                    and (old.domain, old.algorithm) == (key.domain, key.algorithm)
                ):
                    out[other] = old.moved(
                        Stage.RETIRED, now, f"replaced by {key.selector}", retired=now
                    )
                    until = time.strftime("%Y-%m-%d", time.gmtime(now + grace))
                    events.append(
                        RotationEvent(
                            EventKind.RETIRED,
                            out[other],
                            f"{old.name}: replaced by {key.selector}; keep its record "
                            f"published until {until} (grace period)",
                        )
                    )
        elif found.publication is Publication.UNKNOWN:
            events.append(RotationEvent(EventKind.DNS_ERROR, key, f"{key.name}: {found.detail}"))
        else:
            what = {
                Publication.ABSENT: "not in DNS yet",
                Publication.OTHER: f"DNS shows something else ({found.detail})",
                Publication.REVOKED: "DNS shows it revoked (empty p=)",
            }[found.publication]
            events.append(
                RotationEvent(
                    EventKind.WAITING,
                    key,
                    f"{key.name}: {what}; publish its record to start signing with it",
                    key.record,
                )
            )
    # 2. the end of the grace period
    for index, key in enumerate(out):
        if key.stage is Stage.RETIRED and key.retired is not None and now >= key.retired + grace:
            out[index] = key.moved(Stage.REVOKE, now, "grace period over")
            events.append(
                RotationEvent(
                    EventKind.REVOKE,
                    out[index],
                    f"{key.name}: grace period over; publish an empty p= (revoke it)",
                    revocation_record(key.algorithm),
                )
            )
        elif key.stage is Stage.REVOKE:
            found = look(key)
            if found.publication in (Publication.REVOKED, Publication.ABSENT, Publication.OTHER):
                # 3. revocation seen
                out[index] = key.moved(Stage.REVOKED, now, f"DNS: {found.publication}")
                events.append(
                    RotationEvent(
                        EventKind.REVOKED,
                        out[index],
                        f"{key.name}: revoked in DNS; private key deleted",
                    )
                )
            elif found.publication is Publication.MATCHES:
                events.append(
                    RotationEvent(
                        EventKind.REVOKE,
                        key,
                        f"{key.name}: still published; publish an empty p= (revoke it)",
                        revocation_record(key.algorithm),
                    )
                )
            else:
                events.append(
                    RotationEvent(EventKind.DNS_ERROR, key, f"{key.name}: {found.detail}")
                )
        elif key.stage is Stage.ACTIVE and (key.domain, key.selector) in seen:
            found = look(key)
            if found.publication in (Publication.ABSENT, Publication.OTHER, Publication.REVOKED):
                events.append(
                    RotationEvent(
                        EventKind.MISSING,
                        key,
                        f"{key.name}: signing with it, but DNS shows {found.publication} "
                        f"({found.detail}): its signatures fail; publish its record",
                        key.record,
                    )
                )
    # 4. the schedule
    due: list[tuple[str, KeyType]] = []
    period = settings.rotate_after_days * DAY
    if period > 0:
        for key in out:
            if key.stage is not Stage.ACTIVE or key.algorithm not in settings.algorithms:
                continue
            started = key.activated if key.activated is not None else key.created
            successor = any(
                k.stage is Stage.PENDING and (k.domain, k.algorithm) == (key.domain, key.algorithm)
                for k in out
            )
            if now - started >= period and not successor:
                due.append((key.domain, key.algorithm))
    return out, events, list(dict.fromkeys(due))


@dataclass(frozen=True, slots=True)
class _NewKey:
    key: ManagedKey
    private_key: PrivateKey


class Rotator:
    """Rotation over a store, with DNS through `resolver` and time from `clock`.

    `advance()` applies the rules once (what the long-running commands do periodically and
    `mailwarden dkim rotate --advance` does from cron); `rotate(domain)` starts a rotation
    (`emergency`: every current key of the domain goes to `revoke` at once and stops
    signing; mail goes unsigned until the new records are seen).
    """

    def __init__(
        self,
        store: KeyStore,
        settings: SigningSettings,
        resolver: Resolver,
        *,
        clock: Callable[[], float] = time.time,
        generate: Callable[[KeyType, int], PrivateKey] = generate_key,
    ) -> None:
        self.store = store
        self.settings = settings
        self.resolver = resolver
        self.clock = clock
        self.generate = generate

    def current(self, domain: str | None = None) -> list[ManagedKey]:
        keys = self.store.load()
        return [k for k in keys if domain is None or k.domain == domain]

    async def _observe_all(self, keys: Sequence[ManagedKey]) -> dict[tuple[str, str], Seen]:
        watched = [k for k in keys if k.stage in (Stage.PENDING, Stage.ACTIVE, Stage.REVOKE)]
        found = await asyncio.gather(*(observe(self.resolver, k) for k in watched))
        return {(k.domain, k.selector): s for k, s in zip(watched, found, strict=True)}

    async def advance(self) -> list[RotationEvent]:
        """Apply the rules once (DNS first, then the store under its lock)."""
        keys = await asyncio.to_thread(self.store.load)
        if not keys:
            return []  # nothing to look after (and nothing is created on disk)
        seen = await self._observe_all(keys)
        now = self.clock()
        return await asyncio.to_thread(self._apply, now, seen, None, False)

    async def rotate(self, domain: str, *, emergency: bool = False) -> list[RotationEvent]:
        """Make the next key of `domain` for each algorithm (an existing pending key is kept
        unless `emergency`), then apply the rules once: a record published in advance makes
        the new key active at once."""
        domain = domain_name(domain)
        now = self.clock()
        events = await asyncio.to_thread(self._apply, now, {}, domain, emergency)
        made = {e.key.selector for e in events if e.kind is EventKind.CREATED}
        later = [
            e
            for e in await self.advance()
            if not (e.kind is EventKind.WAITING and e.key.selector in made)
        ]
        return events + later

    def _apply(
        self,
        now: float,
        seen: Mapping[tuple[str, str], Seen],
        rotate: str | None,
        emergency: bool,
    ) -> list[RotationEvent]:
        with self.store.lock():
            keys = self.store.load()
            events: list[RotationEvent] = []
            due: list[tuple[str, KeyType]] = []
            if rotate is None:
                keys, events, due = step(keys, now, self.settings, seen)
            else:
                if emergency:
                    keys, events = _emergency(keys, rotate, now)
                for algorithm in self.settings.algorithms:
                    pending = [
                        k
                        for k in keys
                        if (k.domain, k.algorithm, k.stage) == (rotate, algorithm, Stage.PENDING)
                    ]
                    if pending:
                        events.append(
                            RotationEvent(
                                EventKind.WAITING,
                                pending[0],
                                f"{pending[0].name}: a new key is already waiting for its "
                                "record; publish it",
                                pending[0].record,
                            )
                        )
                    else:
                        due.append((rotate, algorithm))
            new: list[_NewKey] = []
            for domain, algorithm in due:
                made = self._make(
                    domain,
                    algorithm,
                    now,
                    [k.selector for k in keys] + [n.key.selector for n in new],
                    emergency,
                )
                new.append(made)
            for made in new:
                self.store.write_private_key(made.key.domain, made.key.selector, made.private_key)
                events.append(
                    RotationEvent(
                        EventKind.CREATED,
                        made.key,
                        f"{made.key.name}: new {made.key.algorithm.value} key; publish its "
                        "record (signing starts once DNS shows it)",
                        made.key.record,
                    )
                )
            before = self.store.load()
            keys = keys + [made.key for made in new]
            if keys != before:
                self.store.save(keys)
            for event in events:
                if event.kind is EventKind.REVOKED:
                    self.store.delete_private_key(event.key.domain, event.key.selector)
            return events

    def _make(
        self,
        domain: str,
        algorithm: KeyType,
        now: float,
        used: Iterable[str],
        emergency: bool,
    ) -> _NewKey:
        try:
            selector = next_selector(self.settings.selector_template, algorithm, now, used)
        except ValueError as exc:
            raise StoreError(str(exc)) from None
        bits = self.settings.rsa_bits if algorithm is KeyType.RSA else 256
        private_key = self.generate(algorithm, bits)
        note = "emergency rotation" if emergency else "rotation"
        key = ManagedKey(
            domain=domain,
            selector=selector,
            algorithm=algorithm,
            bits=bits,
            record=key_record(private_key),
            created=now,
            stage=Stage.PENDING,
            since=now,
            emergency=emergency,
            note=note,
        )
        return _NewKey(key, private_key)


def _emergency(
    keys: Sequence[ManagedKey], domain: str, now: float
) -> tuple[list[ManagedKey], list[RotationEvent]]:
    """Every key of `domain` not yet revoked stops signing and must be revoked at once."""
    out: list[ManagedKey] = []
    events: list[RotationEvent] = []
    for key in keys:
        if key.domain == domain and key.stage in (
            Stage.PENDING,
            Stage.ACTIVE,
            Stage.RETIRED,
        ):
            key = replace(
                key.moved(Stage.REVOKE, now, "emergency rotation"),
                emergency=True,
                retired=key.retired if key.retired is not None else now,
            )
            events.append(
                RotationEvent(
                    EventKind.REVOKE,
                    key,
                    f"{key.name}: emergency rotation; publish an empty p= now (revoke it)",
                    revocation_record(key.algorithm),
                )
            )
        out.append(key)
    return out, events
