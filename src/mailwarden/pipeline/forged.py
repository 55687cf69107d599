"""Header fields that claim to come from us, or that filters downstream act on.

A sender must not be able to write what the mailbox server or a user's filters trust: our
verdict, our spam flags, our SPF and authentication results. They are found in the one parse,
for the front end to drop before ours are added (RFC 8601 §5 asks this of
Authentication-Results; the same reasoning holds for the others):

* Authentication-Results and ARC-Authentication-Results whose authserv-id is one of our names,
  in any spelling: case, a trailing dot, comments, quoting, and values malformed enough that a
  lenient parser downstream might still read our name in them;
* Received-SPF naming one of our names as its receiver (`receiver=` or the comment);
* every X-Mailwarden-* field, and the spam-header prefix's fields (X-Spam-Flag, -Score, ...);
* the names configured in `[gateway] remove_headers` (`Name`, or a prefix ending in `*`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from mailwarden.authres import authserv_id_of

from .parsed import ParsedMessage

__all__ = ["forged_fields"]

_RESULTS = frozenset({"authentication-results", "arc-authentication-results"})
_INSTANCE = re.compile(r"\s*i\s*=\s*\d+\s*;", re.IGNORECASE)  # ARC-AR: "i=1;" comes first
_NOISE = re.compile(r'[\s()"\\]+')
_RECEIVER = re.compile(r"""receiver\s*=\s*"?\s*([^\s;"()]+)""", re.IGNORECASE)
_COMMENT_HOST = re.compile(r"\(\s*([^\s:()]+)\s*:")
OUR_PREFIX = "x-mailwarden-"


def _name(text: str) -> str:
    return text.strip().rstrip(".").lower()


def _claims(value: str, ours: frozenset[str]) -> bool:
    """Whether a results field's authserv-id is one of ours, read strictly and loosely."""
    claimed = authserv_id_of(value)
    if claimed is not None and _name(claimed) in ours:
        return True
    loose = _NOISE.sub("", value).lower()  # what a careless parser might take as the id
    return any(
        loose.startswith(name) and loose[len(name) : len(name) + 2] in ("", ";", ".;", ".")
        for name in ours
    )


def _names_receiver(value: str, ours: frozenset[str]) -> bool:
    found = _RECEIVER.findall(value) + _COMMENT_HOST.findall(value)
    return any(_name(name) in ours for name in found)


def forged_fields(
    parsed: ParsedMessage,
    our_names: Iterable[str],
    *,
    spam_prefix: str = "X-Spam",
    remove: Sequence[str] = (),
) -> tuple[int, ...]:
    """Indices, in the parsed fields, of the fields to drop (see the module docstring)."""
    if parsed.message is None:
        return ()
    ours = frozenset(_name(name) for name in our_names if name.strip())
    spam = spam_prefix.lower()
    exact = {r.lower() for r in remove if not r.endswith("*")}
    prefixes = tuple(r[:-1].lower() for r in remove if r.endswith("*"))
    found: list[int] = []
    for index, field in enumerate(parsed.message.fields):
        name = field.lname
        if not name:
            continue
        drop = (
            name.startswith(OUR_PREFIX)
            or name == spam
            or name.startswith(spam + "-")
            or name in exact
            or (bool(prefixes) and name.startswith(prefixes))
        )
        if not drop and name in _RESULTS:
            value = field.text()
            if name == "arc-authentication-results":
                match = _INSTANCE.match(value)
                value = value[match.end() :] if match else value
            drop = _claims(value, ours)
        elif not drop and name == "received-spf":
            drop = _names_receiver(field.text(), ours)
        if drop:
            found.append(index)
    return tuple(found)
