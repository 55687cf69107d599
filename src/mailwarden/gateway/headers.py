"""Header fields the gateway adds above a message, and the ones it removes.

The gateway prepends its Received field (RFC 5321 §4.4, with the TLS details as a comment),
then the checks' fields (Authentication-Results, Received-SPF, the verdict), folded by the one
folder (RFC 5322 §2.2.3), and drops the fields the checks found forged: all of it written from
the one parse of the message the checks read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import lru_cache

from mailwarden.body import Body, SpooledMessage
from mailwarden.message import fold_field
from mailwarden.pipeline import ParsedMessage

from .hooks import Session, Transaction

__all__ = ["received_field", "relayed_message"]

_UNSAFE = re.compile(r"[^\x21-\x27\x2a-\x5b\x5d-\x7e]")  # no space, parentheses or backslash


def _with_protocol(session: Session, tx: Transaction) -> str:
    # RFC 3848 (ESMTP, ESMTPS, ESMTPSA) and RFC 6531 §3.7.3 (UTF8SMTP, UTF8SMTPSA).
    if not session.esmtp:
        return "SMTP"
    base = "UTF8SMTP" if tx.smtputf8 else "ESMTP"
    return base + ("S" if session.tls else "") + ("A" if session.auth else "")


def received_field(session: Session, tx: Transaction, hostname: str, when: float) -> bytes:
    """Our trace field: who connected, with which TLS, by us, the queue id, when."""
    helo = _UNSAFE.sub("?", session.helo or "unknown") or "unknown"
    literal = f"IPv6:{session.client_ip}" if ":" in session.client_ip else session.client_ip
    reverse = _UNSAFE.sub("?", session.reverse_name) if session.reverse_name else "unknown"
    parts = [f"from {helo} ({reverse} [{literal}])"]
    if session.tls is not None:
        bits = f" ({session.tls.bits}/{session.tls.bits} bits)" if session.tls.bits else ""
        parts.append(f"(using {session.tls.version} with cipher {session.tls.cipher}{bits})")
    parts.append(f"by {hostname} (mailwarden) with {_with_protocol(session, tx)} id {tx.id}")
    if len(tx.rcpts) == 1:
        parts.append(f"for <{tx.rcpts[0]}>")
    date = _date(int(when))
    lines = "\r\n\t".join(parts)
    return f"Received: {lines};\r\n\t{date}\r\n".encode()


@lru_cache(maxsize=4)
def _date(second: int) -> str:
    """RFC 5322 §3.3 date-time of `second` (whole seconds: made once a second, not per message)."""
    return format_datetime(datetime.fromtimestamp(second, UTC))


def relayed_message(
    parsed: ParsedMessage | bytes | SpooledMessage,
    received: bytes,
    add: Sequence[tuple[str, str]],
    remove: Iterable[int],
) -> tuple[bytes, Body, list[str]]:
    """The message as relayed, as (head, body): our Received field, the checks' fields
    (folded), the message's own fields without those at the indices `remove` (of the checks'
    parse) and the empty line; then its body, in memory or spooled (streamed by the relay).
    Also the names of the fields removed. A message no checks read, and an unreadable header
    section, are relayed as they came, below our fields."""
    added = b"".join(fold_field(name, value).encode("utf-8") + b"\r\n" for name, value in add)
    if isinstance(parsed, bytes):
        return received + added + parsed, b"", []
    if isinstance(parsed, SpooledMessage):
        return received + added + parsed.head, parsed.body, []
    if parsed.message is None:
        return received + added + parsed.raw, parsed.spooled or b"", []
    message = parsed.message
    drop = {index for index in remove if 0 <= index < len(message.fields)}
    kept = b"".join(f.raw for index, f in enumerate(message.fields) if index not in drop)
    names = [message.fields[index].name.decode("ascii", "replace") for index in sorted(drop)]
    return received + added + kept + message.separator, message.body, names
