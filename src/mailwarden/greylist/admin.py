"""Greylist administration shared by `mailwarden greylist` and the HTTP API: the JSON of
entries, allow entries and network counters, and what `forget TARGET` deletes.

One serializer for both front ends, so a listing reads the same on the command line and over
HTTP. Rows written by hand or by an older version are listed with a `problem` note instead of
breaking the listing.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mailwarden.dns import normalize

from .core import (
    AllowEntry,
    Entry,
    GreylistConfig,
    NetworkEntry,
    client_network,
    is_valid_time,
    normalize_sender,
    parse_allow_target,
)
from .store import GreylistStore, TripletField

__all__ = [
    "ForgetPlan",
    "allow_dict",
    "entry_dict",
    "forget",
    "forget_plan",
    "iso",
    "listing",
    "network_dict",
    "problem",
]


def iso(moment: float | None) -> str | None:
    """ISO 8601 in UTC; None for None and for a value that is not a time (see `problem`)."""
    if moment is None or not is_valid_time(moment):
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def problem(times: dict[str, float | None], counts: dict[str, int] | None = None) -> str | None:
    """What is wrong with a stored row (its times and counts), or None."""
    bad = [
        f"{name} is not a number" if math.isnan(value) else f"{name} {value!r} is not a time"
        for name, value in times.items()
        if value is not None and not is_valid_time(value)
    ]
    bad += [f"{name} is not a count" for name, value in (counts or {}).items() if value < 0]
    return "; ".join(bad) or None


def entry_dict(entry: Entry) -> dict[str, Any]:
    flagged = problem(
        {
            "first_seen": entry.first_seen,
            "last_seen": entry.last_seen,
            "passed_at": entry.passed_at,
            "expires_at": entry.expires_at,
        },
        {"attempts": entry.attempts},
    )
    return {
        "origin": entry.key.origin,
        "sender": entry.key.sender,
        "recipient": entry.key.recipient,
        "state": "passed" if entry.passed else "pending",
        "first_seen": iso(entry.first_seen),
        "last_seen": iso(entry.last_seen),
        "attempts": entry.attempts,
        "passed_at": iso(entry.passed_at),
        "expires_at": iso(entry.expires_at),
        **({"problem": flagged} if flagged else {}),
    }


def allow_dict(entry: AllowEntry) -> dict[str, Any]:
    flagged = problem({"added_at": entry.added_at, "expires_at": entry.expires_at})
    return {
        "target": entry.target,
        "added_at": iso(entry.added_at),
        "expires_at": iso(entry.expires_at),
        "note": entry.note,
        **({"problem": flagged} if flagged else {}),
    }


def network_dict(entry: NetworkEntry) -> dict[str, Any]:
    flagged = problem({"expires_at": entry.expires_at}, {"passes": entry.passes})
    return {
        "network": entry.network,
        "passes": entry.passes,
        "expires_at": iso(entry.expires_at),
        **({"problem": flagged} if flagged else {}),
    }


async def listing(store: GreylistStore, now: float, state: str, limit: int) -> dict[str, Any]:
    """`greylist list`: triplets (`state` all, pending or passed; at most `limit`), the total,
    allow entries and auto-allow counters."""
    entries = await store.entries(now)
    if state != "all":
        entries = [e for e in entries if e.passed == (state == "passed")]
    return {
        "entries": [entry_dict(e) for e in entries[:limit]],
        "total": len(entries),
        "allowed": [allow_dict(a) for a in await store.allowed(now)],
        "networks": [network_dict(n) for n in await store.networks(now)],
    }


@dataclass(frozen=True, slots=True)
class ForgetPlan:
    """What `forget TARGET` deletes: triplet selectors, allow targets, network counters."""

    triplets: list[tuple[TripletField, str]]
    allow: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)


def forget_plan(target: str) -> ForgetPlan:
    """The plan for TARGET: an IP address (its network's triplets and counter), a network, a
    sender address, a domain (its senders and SPF pool), or an "spf:DOMAIN" pool. ValueError
    saying what is wrong with it."""
    text = target.strip()
    config = GreylistConfig()
    if text.lower().startswith("spf:"):
        domain = normalize(text[4:])
        if not domain:
            raise ValueError("spf: needs a domain")
        return ForgetPlan([(TripletField.ORIGIN, f"spf:{domain}")])
    allow_target = parse_allow_target(text)
    kind, _, value = allow_target.partition(":")
    if kind == "net":
        network = ipaddress.ip_network(value)
        origins = {allow_target}
        if network.prefixlen == network.max_prefixlen:  # one address: its greylist network
            origins.add(client_network(network.network_address, config))
        return ForgetPlan(
            [(TripletField.ORIGIN, o) for o in sorted(origins)], [allow_target], sorted(origins)
        )
    if kind == "sender":
        return ForgetPlan([(TripletField.SENDER, normalize_sender(value))], [allow_target])
    return ForgetPlan(
        [(TripletField.SENDER_DOMAIN, value), (TripletField.ORIGIN, f"spf:{value}")],
        [allow_target],
    )


async def forget(store: GreylistStore, plan: ForgetPlan) -> dict[str, int]:
    """Carry out `plan`: how many triplets, allow entries and network counters went."""
    triplets = 0
    for selector, value in plan.triplets:
        triplets += await store.forget_triplets(selector, value)
    allows = sum([await store.forget_allow(t) for t in plan.allow])
    counters = sum([await store.forget_network(n) for n in plan.networks])
    return {"triplets": triplets, "allow_entries": allows, "network_counters": counters}
