"""The trust boundary: the first hop that entered the receiving organisation, found from the
--trusted-host names (host or domain names, addresses or networks: real Received fields name
hops by address too), the topmost Authentication-Results' authserv-id, or else the topmost
Received field. Hops below it were written outside and may be forged."""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mailwarden.authres import ParseError
from mailwarden.authres import parse_authentication_results as parse_ar
from mailwarden.dns import IPAddress, is_domain_name
from mailwarden.message import Message
from mailwarden.received import ReceivedHop

from .hops import Hop, replace_hop

__all__ = [
    "BoundaryMethod",
    "TrustBoundary",
    "find_boundary",
    "is_trusted_name",
    "received_field_positions",
    "topmost_authserv_id",
    "trusted_host",
]


class BoundaryMethod(StrEnum):
    """How the receiving organisation's hosts were known."""

    TRUSTED_HOST = "trusted-host"  # --trusted-host names
    AUTHSERV_ID = "authserv-id"  # the topmost Authentication-Results' authserv-id
    TOPMOST = "topmost"  # nothing to go by: the topmost Received field is assumed ours


@dataclass(frozen=True, slots=True)
class TrustBoundary:
    """The first hop that entered the receiving organisation (`hop` is its index)."""

    hop: int | None
    method: BoundaryMethod
    trusted_names: tuple[str, ...]
    reason: str
    by: str = ""
    ip: IPAddress | None = None
    helo: str = ""
    reverse_name: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "hop": self.hop,
            "by": self.by or None,
            "ip": str(self.ip) if self.ip is not None else None,
            "helo": self.helo or None,
            "reverse_name": self.reverse_name or None,
            "method": self.method.value,
            "trusted_names": list(self.trusted_names),
            "reason": self.reason,
        }


def trusted_host(text: str) -> str:
    """A --trusted-host value in its canonical form: a host or domain name (lower case, no
    final dot), an IP address (also as a Received field writes it: ``[192.0.2.1]``,
    ``[IPv6:2001:db8::1]``), or a network of addresses (``10.0.0.0/8``). ValueError when it
    is none of them (a scoped IPv6 address is refused: a zone means nothing elsewhere)."""
    text = text.strip()
    address = _address(text)
    if address is not None:
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            raise ValueError(f"{text!r} is a scoped address, not a host's address")
        return str(address)
    if "/" in text or ":" in text or text.replace(".", "").isdigit() or text.startswith("["):
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address or network") from None
        if network.num_addresses == 1:
            return str(network.network_address)
        return str(network)
    name = text.rstrip(".").lower()
    if not is_domain_name(name):
        raise ValueError(f"{text!r} is not a host or domain name, nor an IP address")
    return name


def _canonical(text: str) -> str:
    try:
        return trusted_host(text)
    except ValueError:  # not ours to refuse here: the command checks its options
        return text.strip().lower().rstrip(".")


def _address(text: str) -> IPAddress | None:
    """The address a Received field names a host by (``192.0.2.1``, ``[192.0.2.1]``,
    ``[IPv6:2001:db8::1]``, a bare IPv6 address), else None."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
        if text[:5].lower() == "ipv6:":
            text = text[5:]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _in_networks(address: IPAddress, trusted: Sequence[str]) -> bool:
    for entry in trusted:
        if entry[:1].isdigit() or ":" in entry:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except (ValueError, TypeError):
                continue
    return False


def is_trusted_name(name: str, trusted: Sequence[str]) -> bool:
    """`name` is one of the trusted names or a host below one of them, or an address that is
    (or lies in) a trusted address (or network)."""
    address = _address(name)
    if address is not None:
        return _in_networks(address, trusted)
    name = name.lower().rstrip(".")
    return bool(name) and any(name == t or name.endswith("." + t) for t in trusted)


def _internal_client(hop: ReceivedHop, trusted: Sequence[str]) -> bool:
    """The client of this hop is one of ours: its address is trusted, its reverse name
    (looked up by our server, so not the client's claim, unlike HELO) is trusted, or it is
    the host itself (loopback)."""
    if hop.ip is not None and (hop.ip.is_loopback or _in_networks(hop.ip, trusted)):
        return True
    return is_trusted_name(hop.reverse_name, trusted)


def topmost_authserv_id(message: Message) -> str | None:
    """The authserv-id of the topmost readable Authentication-Results field."""
    for received in message.get_all("authentication-results"):
        try:
            return parse_ar(received.text()).authserv_id.lower()
        except ParseError:
            continue
    return None


def find_boundary(
    hops: Sequence[Hop], trusted_hosts: Sequence[str] = (), authserv_id: str | None = None
) -> tuple[TrustBoundary, list[Hop]]:
    """The trust boundary and the hops with `trusted` set and forged hops flagged.

    Hops above the topmost one written by a trusted host are delivery inside the organisation;
    from there down, hops whose client is itself trusted are internal too; the first hop whose
    client is outside is the boundary. Anything below it was written outside and may be forged.
    """
    names = tuple(_canonical(n) for n in trusted_hosts if n.strip())
    method = BoundaryMethod.TRUSTED_HOST
    if not names and authserv_id:
        method = BoundaryMethod.AUTHSERV_ID
        names = (authserv_id,)
        if not any(h.hop and h.hop.by == authserv_id for h in hops):
            labels = authserv_id.split(".")
            if len(labels) >= 3:  # no hop by that exact name: its parent domain's hosts
                names = (authserv_id, ".".join(labels[1:]))
    top_down = sorted(hops, key=lambda h: h.position)
    start = None
    if names:
        start = next(
            (i for i, h in enumerate(top_down) if h.hop and is_trusted_name(h.hop.by, names)), None
        )
    reason = ""
    if start is None:
        start = next((i for i, h in enumerate(top_down) if h.hop is not None), None)
        reason = (
            "no Received field was written by a trusted host: the topmost one is assumed ours"
            if names
            else "no --trusted-host and no Authentication-Results: the topmost Received field "
            "is assumed ours"
        )
        method = BoundaryMethod.TOPMOST
    if start is None:
        boundary = TrustBoundary(None, method, names, "no readable Received field")
        return boundary, sorted(hops, key=lambda h: h.index)
    position = start
    while position + 1 < len(top_down):
        current = top_down[position].hop
        below = top_down[position + 1].hop
        if current is None or below is None or not _internal_client(current, names):
            break
        if method is not BoundaryMethod.TOPMOST and not is_trusted_name(below.by, names):
            break
        position += 1
    entry = top_down[position]
    assert entry.hop is not None
    if not reason:
        reason = (
            f"hop {entry.index} is the first, going down from the top, written by a trusted "
            f"host ({entry.hop.by}) for a client outside"
        )
    boundary = TrustBoundary(
        entry.index,
        method,
        names,
        reason,
        entry.hop.by,
        entry.hop.ip,
        entry.hop.helo,
        entry.hop.reverse_name,
    )
    marked: list[Hop] = []
    for number, hop in enumerate(top_down):
        flags = list(hop.flags)
        notes = list(hop.notes)
        trusted = number <= position
        if not trusted and hop.hop is not None and is_trusted_name(hop.hop.by, names):
            flags.append("forged")
            notes.append(
                f"claims to be written by {hop.hop.by}, a trusted host, but lies below the "
                "trust boundary: written by someone outside, so forged"
            )
        marked.append(replace_hop(hop, trusted=trusted, flags=tuple(flags), notes=tuple(notes)))
    marked.sort(key=lambda h: h.index)
    for older, newer in itertools.pairwise(list(marked)):
        if older.trusted or older.hop is None or newer.hop is None:
            continue  # inside the organisation, hosts hand over under many names
        if not older.hop.by or not newer.hop.from_name:
            continue
        client = {newer.hop.from_name, newer.hop.helo, newer.hop.reverse_name} - {""}
        if older.hop.by in client or "." not in older.hop.by:
            continue
        parent = older.hop.by.split(".", 1)[1]
        if any(name == parent or name.endswith("." + parent) for name in client):
            continue
        if older.hop.ip is None and older.hop.by.replace(":", "").isalnum():
            continue
        index = marked.index(older)
        marked[index] = replace_hop(
            older,
            flags=(*older.flags, "chain-break"),
            notes=(
                *older.notes,
                f"received by {older.hop.by}, but the next hop got it from "
                f"{', '.join(sorted(client))}: a gap in the chain (or an unrecorded relay)",
            ),
        )
    return boundary, marked


def received_field_positions(message: Message) -> list[int]:
    """Positions among all header fields of the Received fields, topmost first."""
    return [n for n, f in enumerate(message.fields) if f.lname == "received"]
