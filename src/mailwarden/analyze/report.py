"""The whole analysis: `analyze_message` runs hops, boundary, explanations, re-verification
and comparison, and returns an `Analysis` whose `to_dict()` is the JSON of `mailwarden analyze`."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mailwarden.dns import IPAddress, Resolver, parse_ip
from mailwarden.dnsbl import DNSList
from mailwarden.message import Message
from mailwarden.pipeline import build
from mailwarden.settings import DNSListSettings, Settings

from .boundary import (
    BoundaryMethod,
    TrustBoundary,
    find_boundary,
    received_field_positions,
    topmost_authserv_id,
)
from .changes import Change, compare, recorded_results
from .explain import HeaderExplanation, explain_headers
from .hops import Hop, read_hops
from .reverification import Reverification, envelope_sender, reverify

__all__ = ["Analysis", "analyze_message"]


@dataclass(frozen=True, slots=True)
class Analysis:
    hops: tuple[Hop, ...]
    boundary: TrustBoundary
    headers: tuple[HeaderExplanation, ...]
    reverification: Reverification | None
    changes: tuple[Change, ...]

    @property
    def summary(self) -> str:
        parts = [f"{len(self.hops)} hop{'s' * (len(self.hops) != 1)}"]
        b = self.boundary
        if b.hop is not None:
            parts.append(
                f"entered at hop {b.hop} from {b.ip or 'an unknown address'}"
                f" (HELO {b.helo or '-'}) by {b.by or '-'}"
            )
        flagged = sorted({flag for hop in self.hops for flag in hop.flags})
        if flagged:
            parts.append("flags: " + ", ".join(flagged))
        now = self.reverification
        if now is not None:
            words = [f"spf={now.spf.result.value}" if now.spf else "spf=not checked"]
            words.append("dkim=" + (",".join(r.result.value for r in now.dkim) or "none"))
            words.append(
                f"dmarc={now.dmarc.result.value}" if now.dmarc.evaluated else "dmarc=not evaluated"
            )
            words.append(f"arc={now.arc.result.value}")
            listed = [r for r in now.relays if r.dnsbl is not None and r.dnsbl.listed]
            if listed:
                words.append(f"{len(listed)} relay(s) listed")
            parts.append("now: " + " ".join(words))
        changed = [c for c in self.changes if c.changed]
        parts.append(f"{len(changed)} change{'s' * (len(changed) != 1)} since delivery")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "hops": [h.to_dict() for h in self.hops],
            "boundary": self.boundary.to_dict(),
            "headers": [h.to_dict() for h in self.headers],
            "reverify": self.reverification.to_dict() if self.reverification else None,
            "changes": [c.to_dict() for c in self.changes],
        }


async def analyze_message(
    message: Message,
    resolver: Resolver | None,
    *,
    trusted_hosts: Sequence[str] = (),
    ip: IPAddress | str | None = None,
    helo: str | None = None,
    mail_from: str | None = None,
    settings: Settings | None = None,
    dns_lists: Iterable[DNSList] = (),
    clock: Callable[[], float] = time.time,
) -> Analysis:
    """The whole analysis; without a resolver nothing is re-verified (offline reading).

    The checks run again are the pipeline's (`mailwarden.pipeline.build`) for `settings`
    (the defaults when None), with `dns_lists` as its DNS lists (none by default)."""
    hops = read_hops(message, now=clock())
    boundary, hops = find_boundary(hops, trusted_hosts, topmost_authserv_id(message))
    boundary_field = None
    if boundary.hop is not None:
        # Fields the boundary hop added sit around its own Received field: just below it is
        # where receivers (Gmail, Postfix milters, mailwarden) put Authentication-Results.
        # What lies below the Received field of the hop before it came from outside.
        received = received_field_positions(message)
        entry = next(h for h in hops if h.index == boundary.hop)
        older = entry.position + 1
        boundary_field = received[older] if older < len(received) else len(message.fields)
    trusted = boundary.trusted_names if boundary.method is not BoundaryMethod.TOPMOST else ()
    recorded = recorded_results(message, trusted, boundary_field)
    now: Reverification | None = None
    changes: list[Change] = []
    if resolver is not None:
        address = parse_ip(ip) if isinstance(ip, str) else ip
        source = "option" if address is not None else "boundary"
        if address is None:
            address = boundary.ip
            source = "boundary" if address is not None else "none"
        client_helo = helo if helo is not None else boundary.helo
        settings = settings if settings is not None else Settings()
        lists = DNSListSettings(use=(), lists=tuple(dns_lists))
        pipeline = build(dataclasses.replace(settings, dnsbl=lists), resolver, clock=clock)
        now = await reverify(
            message,
            pipeline,
            ip=address,
            ip_source=source,
            helo=client_helo,
            mail_from=mail_from
            if mail_from is not None
            else envelope_sender(message, recorded, boundary_field),
            hops=hops,
        )
        await pipeline.drain()
        changes = compare(recorded, now)
    headers = explain_headers(message, trusted, now.dkim if now else (), boundary_field)
    return Analysis(tuple(hops), boundary, tuple(headers), now, tuple(changes))
