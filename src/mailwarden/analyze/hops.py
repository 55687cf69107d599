"""The Received chain in travel order (oldest hop first), with delays and time flags:
clock skew, fields out of order, times in the future."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mailwarden.message import Message
from mailwarden.received import ParseError as ReceivedParseError
from mailwarden.received import ReceivedHop, parse_received

__all__ = ["MAX_CLOCK_SKEW", "Hop", "read_hops", "replace_hop"]

MAX_CLOCK_SKEW = 600  # seconds a hop may seem earlier than the one before: clocks differ


@dataclass(frozen=True, slots=True)
class Hop:
    """One Received field in travel order: `index` 1 is the oldest, `position` 0 the topmost
    field. `hop` is None when the field could not be read at all (`error` says why)."""

    index: int
    position: int
    hop: ReceivedHop | None
    error: str = ""
    delay: float | None = None  # seconds since the previous hop (None: a time is missing)
    trusted: bool = False  # written by a host of the receiving organisation
    flags: tuple[str, ...] = ()  # clock-skew, out-of-order, in-the-future, forged, chain-break
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        hop = self.hop
        tls = hop.tls if hop is not None else None
        return {
            "index": self.index,
            "position": self.position,
            "from": None
            if hop is None
            else {
                "name": hop.from_name or None,
                "helo": hop.helo or None,
                "reverse_name": hop.reverse_name or None,
                "ip": str(hop.ip) if hop.ip is not None else None,
            },
            "by": hop.by or None if hop else None,
            "by_comment": hop.by_comment or None if hop else None,
            "with": None
            if hop is None
            else {
                "protocol": hop.protocol or None,
                "tls": None if tls is None else {"version": tls.version, "cipher": tls.cipher},
            },
            "id": hop.id or None if hop else None,
            "for": hop.for_address or None if hop else None,
            "time": hop.date.isoformat() if hop and hop.date else None,
            "time_text": hop.date_text or None if hop else None,
            "delay": self.delay,
            "trusted": self.trusted,
            "flags": list(self.flags),
            "notes": list(self.notes),
            "problems": list(hop.problems) if hop else [],
            "error": self.error or None,
        }


def read_hops(message: Message, *, now: float | None = None) -> list[Hop]:
    """The Received fields in travel order (oldest first), with delays and time flags."""
    fields = message.get_all("received")
    hops: list[Hop] = []
    total = len(fields)
    for position, received in enumerate(fields):
        index = total - position
        try:
            hops.append(Hop(index, position, parse_received(received.text())))
        except ReceivedParseError as exc:
            hops.append(Hop(index, position, None, error=str(exc)))
    hops.sort(key=lambda h: h.index)
    out: list[Hop] = []
    previous: float | None = None
    for hop in hops:
        stamp = hop.hop.timestamp if hop.hop is not None else None
        flags: list[str] = []
        notes: list[str] = []
        delay = None
        if stamp is not None and previous is not None:
            delay = stamp - previous
            if -MAX_CLOCK_SKEW <= delay < 0:
                flags.append("clock-skew")
                notes.append(
                    f"{-delay:g} s earlier than the hop before: one of the two clocks is off"
                )
            elif delay < -MAX_CLOCK_SKEW:
                flags.append("out-of-order")
                notes.append(
                    f"{_duration(-delay)} earlier than the hop before: the fields are out of "
                    "order, or one was forged"
                )
        if stamp is not None and now is not None and stamp > now + MAX_CLOCK_SKEW:
            flags.append("in-the-future")
            notes.append(f"dated {_duration(stamp - now)} in the future: that host's clock is off")
        if stamp is not None:
            previous = stamp
        out.append(replace_hop(hop, delay=delay, flags=tuple(flags), notes=tuple(notes)))
    return out


def replace_hop(hop: Hop, **changes: Any) -> Hop:
    return dataclasses.replace(hop, **changes)


def _duration(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
