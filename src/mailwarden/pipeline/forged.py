"""Header fields that claim to come from us: found in the parse, for the front end to drop.

RFC 8601 §5: an Authentication-Results (or ARC-Authentication-Results) field claiming our
authserv-id was not written by us for this message, so it is removed before ours is added.
"""

from __future__ import annotations

from collections.abc import Iterable

from mailwarden.authres import remove_forged

from .parsed import ParsedMessage

__all__ = ["forged_fields"]

_AUTH_RESULTS = frozenset({"authentication-results", "arc-authentication-results"})


def forged_fields(parsed: ParsedMessage, our_ids: Iterable[str]) -> tuple[int, ...]:
    """Indices, in the parsed fields, of the results fields that claim one of `our_ids`."""
    if parsed.message is None:
        return ()
    ours = tuple(our_ids)
    return tuple(
        index
        for index, field in enumerate(parsed.message.fields)
        if field.lname in _AUTH_RESULTS and not remove_forged([(field.lname, field.text())], ours)
    )
