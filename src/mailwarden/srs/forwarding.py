"""Forwarding decisions: where a recipient goes, and the envelope sender it goes with.

`Forwarder.route(rcpt)` says what to do with one accepted recipient: deliver it here (not a
forwarding address), forward it to its external targets (and deliver the local ones here),
send a bounce back to the sender an SRS address stands for, or refuse a forged or expired
SRS address. `Forwarder.sender(mail_from)` is the envelope sender of what leaves: SRS-rewritten
for any sender but the null one and our own domains. Only mail that is really forwarded goes
through it, so nothing else is ever rewritten. `dmarc_risk` says when forwarding will fail
DMARC at the receiver whatever we do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from mailwarden.dmarc import DMARCPolicy, DMARCResult

from .aliases import Aliases
from .core import SRS, SRSError, SRSReason

__all__ = ["Forwarder", "Route", "RouteKind", "dmarc_risk"]


class RouteKind(StrEnum):
    LOCAL = "local"  # not a forwarding address: deliver it here
    FORWARD = "forward"  # a forwarding address: to its targets
    BOUNCE = "bounce"  # an SRS address of ours: back to the sender it stands for
    REFUSE = "refuse"  # an SRS address of ours that is forged, expired or malformed


@dataclass(frozen=True, slots=True)
class Route:
    kind: RouteKind
    remote: tuple[str, ...] = ()  # relayed off-site, with the rewritten sender
    local: tuple[str, ...] = ()  # delivered here, the sender unchanged
    reason: str = ""
    reason_code: SRSReason | None = None


class Forwarder:
    """The forwarding rules of one site: its SRS, alias table and own domains."""

    def __init__(self, srs: SRS, aliases: Aliases, local_domains: Iterable[str]) -> None:
        self.srs = srs
        self.aliases = aliases
        self.local_domains = frozenset(d.lower().rstrip(".") for d in local_domains) | {
            srs.domain.lower()
        }

    def is_local(self, address: str) -> bool:
        return address.rpartition("@")[2].lower() in self.local_domains

    def route(self, rcpt: str) -> Route:
        """Where one recipient goes (see the module docstring)."""
        if self.srs.owns(rcpt):
            try:
                original = self.srs.reverse(rcpt)
            except SRSError as exc:
                if exc.reason is SRSReason.NOT_SRS:  # postmaster@srs.example and the like
                    return Route(RouteKind.LOCAL, local=(rcpt,))
                return Route(RouteKind.REFUSE, reason=str(exc), reason_code=exc.reason)
            if self.is_local(original):
                return Route(RouteKind.BOUNCE, local=(original,))
            return Route(RouteKind.BOUNCE, remote=(original,))
        targets = self.aliases.targets(rcpt)
        if targets is None:
            return Route(RouteKind.LOCAL, local=(rcpt,))
        local = tuple(t for t in targets if self.is_local(t))
        remote = tuple(t for t in targets if not self.is_local(t))
        return Route(RouteKind.FORWARD, remote=remote, local=local)

    def sender(self, mail_from: str) -> str:
        """The envelope sender of mail relayed off-site: the null sender stays null, our own
        domains stay as they are (our SPF covers them), anything else is SRS-rewritten.
        SRSError when a sender cannot be rewritten (no @domain)."""
        if mail_from == "" or self.is_local(mail_from):
            return mail_from
        return self.srs.forward(mail_from)


def dmarc_risk(dmarc: DMARCResult) -> str | None:
    """Why forwarding this message will fail DMARC at the receiver, or None.

    Forwarding keeps the body and the signed fields, so an aligned DKIM signature survives;
    SPF is checked against the SRS domain, which never aligns with the author's. A domain
    with p=reject that passed here on SPF alone will therefore fail (RFC 7960 §3.2.1)."""
    if dmarc.requested_policy is not DMARCPolicy.REJECT or dmarc.dkim_aligned:
        return None
    return (
        f"{dmarc.domain} publishes p=reject and the message has no aligned DKIM signature "
        "(SPF only): forwarded, it will fail DMARC at the receiver"
    )
