"""mailwarden.signing: DKIM signing of our own mail, and the rotation of its keys.

    signer = Signer.from_settings(settings)
    fields = await signer.sign(message, from_domain)     # b"" when no key signs for it

`Signer` signs with every active key of the From domain (an RSA and an Ed25519 signature
together, RFC 8463 §6) as `[signing]` says. `Rotator` moves keys through their stages
(pending, active, retired, revoke, revoked: see `model`) as DNS shows their records, on the
schedule of `[signing]`, and starts rotations (`rotate`, emergency or not). The keys live in a
`KeyStore`: `DirectoryStore` in the data directory (private keys 0600, written atomically)
or `MemoryStore`. `maintain` is the periodic task of the long-running commands. Its settings
are `SigningSettings` (`[signing]`, with `[[signing.keys]]` of one's own).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .model import ManagedKey, Stage, StoreError, revocation_record
from .rotation import (
    EventKind,
    Publication,
    RotationEvent,
    Rotator,
    Seen,
    domain_name,
    next_selector,
    observe,
    step,
)
from .settings import (
    DEFAULT_OVERSIGNED,
    SELECTOR_FIELDS,
    KeySettings,
    SigningSettings,
    render_selector,
)
from .signer import SettingsLike, Signer, SigningError, store_path
from .store import DirectoryStore, KeyStore, MemoryStore

__all__ = [
    "DEFAULT_OVERSIGNED",
    "SELECTOR_FIELDS",
    "DirectoryStore",
    "EventKind",
    "KeySettings",
    "KeyStore",
    "ManagedKey",
    "MemoryStore",
    "Publication",
    "RotationEvent",
    "Rotator",
    "Seen",
    "SettingsLike",
    "Signer",
    "SigningError",
    "SigningSettings",
    "Stage",
    "StoreError",
    "domain_name",
    "log_event",
    "maintain",
    "next_selector",
    "observe",
    "render_selector",
    "revocation_record",
    "step",
    "store_path",
]

_log = logging.getLogger("mailwarden.signing")


def log_event(event: RotationEvent) -> None:
    """One rotation event in the log: what the operator must do is a warning."""
    text = event.message
    if event.record is not None:
        text += f"; publish: {event.zone_entry()}"
    (_log.warning if event.needs_operator else _log.info)("dkim rotation: %s", text)


async def maintain(rotator: Rotator, stop: asyncio.Event, interval: float) -> None:
    """Advance the rotation stages now and every `interval` seconds until `stop` is set (the
    periodic task of `serve` and the other long-running commands). A failure is logged and
    tried again next time: it never stops the server."""
    while not stop.is_set():
        try:
            for event in await rotator.advance():
                log_event(event)
        except asyncio.CancelledError:
            raise
        except (StoreError, OSError) as exc:
            _log.error("dkim rotation: cannot advance the stages: %s", exc)
        except Exception:  # a bug must not stop the server; it is logged in full
            _log.exception("dkim rotation failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
