"""The SRS maps of `mailwarden srs`: `forward` for sender_canonical_maps, `reverse` for
recipient_canonical_maps, answering as postsrsd does (its NOTFOUND reasons, word for word)."""

from __future__ import annotations

from collections.abc import Iterable

from mailwarden.srs import SRS, SRSError, SRSReason

from .server import Answer, Lookup

__all__ = ["srs_maps"]

_POSTSRSD_TEXT = {  # libsrs2's srs_strerror, as postsrsd answers
    SRSReason.NOT_SRS: "Not an SRS address.",
    SRSReason.NO_DOMAIN: "No at sign in sender address",
    SRSReason.HASH_TOO_SHORT: "Hash too short in SRS address.",
    SRSReason.BAD_HASH: "Hash invalid in SRS address.",
    SRSReason.BAD_TIMESTAMP: "Bad base32 character in timestamp.",
    SRSReason.EXPIRED: "Time stamp out of date.",
}


def _text(error: SRSError) -> str:
    return _POSTSRSD_TEXT.get(error.reason, error.detail[:1].upper() + error.detail[1:] + ".")


def srs_maps(srs: SRS, local_domains: Iterable[str]) -> dict[str, Lookup]:
    """{"forward": ..., "reverse": ...}. Senders in `local_domains` (and the SRS domain) are
    not rewritten: Postfix asks for every sender, forwarded or not."""
    local = frozenset(d.lower().rstrip(".") for d in local_domains) | {srs.domain.lower()}

    async def forward(address: str) -> Answer:
        _, at, domain = address.rpartition("@")
        if not at:
            return Answer.not_found("No domain.")
        if domain.lower() in local:
            return Answer.not_found("Need not rewrite local domain.")
        try:
            return Answer.found(srs.forward(address))
        except SRSError as exc:
            return Answer.not_found(_text(exc))

    async def reverse(address: str) -> Answer:
        try:
            return Answer.found(srs.reverse(address))
        except SRSError as exc:
            return Answer.not_found(_text(exc))

    return {"forward": forward, "reverse": reverse}
