"""Signing our own mail: every active key of the From domain, in one pass (RFC 6376 §5).

    signer = Signer.from_settings(settings)
    fields = await signer.sign(message, "a.example")   # b"" when no key signs for it

The keys come from the store of `mailwarden.signing` (the active ones of the domain, or of the
nearest parent domain that has some: a d= of a parent domain aligns under DMARC's relaxed
mode), beside the keys of one's own that `[[signing.keys]]` names; the header list,
over-signing and canonicalization from `[signing]`. With an RSA and
an Ed25519 key active, a message gets both signatures (RFC 8463 §6), with one body hash.
The store is read again whenever it changes, so a key activated by another process (cron,
`serve`) signs from the next message on.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from mailwarden.dkim import Algorithm, KeyType, SigningError, SigningKey, sign_many
from mailwarden.dns import to_ascii

from .model import ManagedKey, Stage
from .settings import SigningSettings
from .store import DirectoryStore, KeyStore

__all__ = ["SettingsLike", "Signer", "SigningError", "store_path"]


class _DataDir(Protocol):
    @property
    def data_dir(self) -> str: ...


class SettingsLike(Protocol):
    """What the signer reads of `mailwarden.settings.Settings` (which it may not import)."""

    @property
    def signing(self) -> SigningSettings: ...

    @property
    def gateway(self) -> _DataDir: ...


# Messages larger than this are signed in a worker thread (body hashing takes a while).
_THREAD_THRESHOLD = 256 * 1024


def store_path(settings: SettingsLike) -> Path:
    """Where the signing keys of `settings` live: <data_dir>/dkim."""
    return Path(settings.gateway.data_dir) / "dkim"


class Signer:
    """Signs messages with the active keys of a store (see the module docstring)."""

    def __init__(
        self,
        store: KeyStore,
        settings: SigningSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`settings.keys` (keys of one's own) are read now: ValueError naming a key file
        that cannot be read."""
        self.store = store
        self.settings = settings if settings is not None else SigningSettings()
        self.clock = clock
        self._static: dict[str, list[tuple[KeyType, SigningKey]]] = {}
        for entry in self.settings.keys:
            private = entry.load()
            key_type = Algorithm.for_key(private).key_type
            self._static.setdefault(entry.domain, []).append(
                (key_type, SigningKey(entry.selector, private))
            )
        self._lock = threading.Lock()
        self._version: object = object()
        self._active: dict[str, list[SigningKey]] = {}
        self._types: dict[str, list[KeyType]] = {}

    @classmethod
    def from_settings(
        cls, settings: SettingsLike, *, clock: Callable[[], float] = time.time
    ) -> Signer:
        """The signer of `settings`: the `[signing]` section and the store in the data
        directory (read at the first message; nothing is created). ValueError naming a key
        file of `[[signing.keys]]` that cannot be read."""
        return cls(DirectoryStore(store_path(settings)), settings.signing, clock=clock)

    def _refresh(self) -> None:
        """Reload the active keys when the store changed (StoreError when unreadable)."""
        version = self.store.version()
        if version == self._version:
            return
        with self._lock:
            if version == self._version:
                return
            active: dict[str, list[SigningKey]] = {}
            types: dict[str, list[KeyType]] = {}
            for domain, static in self._static.items():
                for key_type, signing_key in static:
                    active.setdefault(domain, []).append(signing_key)
                    types.setdefault(domain, []).append(key_type)
            for key in self.store.load():
                if key.stage is not Stage.ACTIVE:
                    continue
                private = self.store.read_private_key(key.domain, key.selector)
                active.setdefault(key.domain, []).append(SigningKey(key.selector, private))
                types.setdefault(key.domain, []).append(key.algorithm)
            for domain in active:  # RSA first, then Ed25519 (RFC 8463 §6)
                pairs = sorted(zip(types[domain], active[domain], strict=True), key=_rank)
                types[domain] = [key_type for key_type, _ in pairs]
                active[domain] = [key for _, key in pairs]
            self._active, self._types, self._version = active, types, version

    def keys_for(self, from_domain: str) -> tuple[str, list[SigningKey]]:
        """The signing domain (d=) for mail from `from_domain` and its active keys: the
        domain itself, else its nearest parent with keys; ("", []) when none has any."""
        self._refresh()
        try:
            name = to_ascii(from_domain.strip().rstrip(".").lower())
        except ValueError:
            return "", []
        labels = name.split(".")
        for start in range(len(labels) - 1):  # never a top-level domain alone
            candidate = ".".join(labels[start:])
            keys = self._active.get(candidate)
            if keys:
                return candidate, list(keys)
        return "", []

    def arc_key(self, domain: str) -> tuple[str, SigningKey] | None:
        """An active RSA key for ARC sealing as `domain` (or its nearest parent with keys):
        receivers that check ARC expect rsa-sha256 seals."""
        self._refresh()
        signing_domain, _ = self.keys_for(domain)
        if not signing_domain:
            return None
        for key, key_type in zip(
            self._active[signing_domain], self._types[signing_domain], strict=True
        ):
            if key_type is KeyType.RSA:
                return signing_domain, key
        return None

    def active(self) -> list[ManagedKey]:
        """The rotated keys that sign now, every domain."""
        return [k for k in self.store.load() if k.stage is Stage.ACTIVE]

    def domains(self) -> list[str]:
        """The domains some key signs for now (static or rotated)."""
        self._refresh()
        return sorted(self._active)

    async def sign(self, message: bytes, from_domain: str) -> bytes:
        """The DKIM-Signature fields to prepend to `message` (CRLF line ends, one per active
        key of the domain), or b"" when no key is configured for `from_domain`.

        Raises `SigningError` when the message cannot be signed (no From field, a header
        section that does not parse) and `StoreError` when the key store is unreadable."""
        domain, keys = self.keys_for(from_domain)
        if not keys:
            return b""
        settings = self.settings

        def run() -> bytes:
            return b"".join(
                sign_many(
                    message,
                    domain,
                    keys,
                    headers=settings.headers,
                    oversign=settings.oversign,
                    canonicalization=settings.canonicalization_pair,
                    clock=self.clock,
                )
            )

        if len(message) > _THREAD_THRESHOLD:
            return await asyncio.to_thread(run)
        return run()


def _rank(pair: tuple[KeyType, SigningKey]) -> int:
    return 0 if pair[0] is KeyType.RSA else 1
