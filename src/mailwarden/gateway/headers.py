"""Header fields the gateway adds above a message, and the ones it removes.

The gateway prepends its Received field (RFC 5321 §4.4, with the TLS details as a comment),
then the checks' fields (Authentication-Results, Received-SPF, the verdict), folded
(RFC 5322 §2.2.3). Authentication-Results fields claiming our authserv-id are forgeries and are
removed (RFC 8601 §5), as are the fields the checks ask to drop.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime

from .hooks import HeaderFilter, Session, Transaction

__all__ = ["authserv_id", "fold", "received_field", "rewrite_message", "split_header"]

FOLD_WIDTH = 78  # RFC 5322 §2.1.1: lines SHOULD be at most 78 characters
_UNSAFE = re.compile(r"[^\x21-\x27\x2a-\x5b\x5d-\x7e]")  # no space, parentheses or backslash


def fold(name: str, value: str) -> bytes:
    """`Name: value` CRLF, folded at spaces before FOLD_WIDTH where possible."""
    words = " ".join(value.split()).split(" ")
    lines: list[str] = []
    current = f"{name}:"
    for word in words:
        if not word:
            continue
        if len(current) + 1 + len(word) > FOLD_WIDTH and current.strip() not in ("", f"{name}:"):
            lines.append(current)
            current = "\t" + word
        else:
            current += " " + word
    lines.append(current)
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _with_protocol(session: Session, tx: Transaction) -> str:
    # RFC 3848 (ESMTP, ESMTPS) and RFC 6531 §3.7.3 (UTF8SMTP, UTF8SMTPS).
    if not session.esmtp:
        return "SMTP"
    base = "UTF8SMTP" if tx.smtputf8 else "ESMTP"
    return base + ("S" if session.tls else "")


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
    date = format_datetime(datetime.fromtimestamp(when, UTC))
    lines = "\r\n\t".join(parts)
    return f"Received: {lines};\r\n\t{date}\r\n".encode()


def split_header(message: bytes) -> tuple[list[bytes], bytes]:
    """The header fields (each with its folded lines and CRLF) and the rest (blank line and
    body). A message without a blank line is all header."""
    if message.startswith(b"\r\n"):
        return [], message
    end = message.find(b"\r\n\r\n")
    head, rest = (message, b"") if end < 0 else (message[: end + 2], message[end + 2 :])
    fields: list[bytes] = []
    for line in head.split(b"\r\n")[:-1] if head.endswith(b"\r\n") else head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line + b"\r\n"
        else:
            fields.append(line + b"\r\n")
    return fields, rest


def _name_value(field: bytes) -> tuple[str, str]:
    name, _, value = field.partition(b":")
    text = value.decode("utf-8", "replace")
    return name.decode("latin-1").strip(), " ".join(text.split())


def authserv_id(value: str) -> str:
    """The authserv-id of an Authentication-Results value (RFC 8601 §2.2), lower-cased."""
    text = re.sub(r"\([^()]*\)", " ", value).strip()  # drop (simple) comments
    return re.split(r"[\s;]", text, maxsplit=1)[0].lower() if text else ""


def _matcher(remove: HeaderFilter) -> Callable[[str, str], bool]:
    if callable(remove):
        return remove
    pairs: Sequence[tuple[str, str]] = remove
    wanted = {(n.lower(), " ".join(v.split())) for n, v in pairs}
    return lambda name, value: (name.lower(), value) in wanted


def rewrite_message(
    message: bytes,
    received: bytes,
    prepend: Sequence[tuple[str, str]],
    remove: HeaderFilter,
    hostname: str,
) -> tuple[bytes, int]:
    """The message as relayed, and how many fields were removed."""
    fields, rest = split_header(message)
    drop = _matcher(remove)
    ours = hostname.lower()
    kept: list[bytes] = []
    removed = 0
    for field in fields:
        name, value = _name_value(field)
        forged = name.lower() == "authentication-results" and authserv_id(value) == ours
        if forged or drop(name, value):
            removed += 1
            continue
        kept.append(field)
    added = b"".join(fold(name, value) for name, value in prepend)
    return received + added + b"".join(kept) + rest, removed
