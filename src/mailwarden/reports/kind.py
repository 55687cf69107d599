"""Is a message a report or a bounce? Reports must never be built from either: two
reporters answering each other's reports (or bounces) is a known loop (RFC 9990 §5)."""

from __future__ import annotations

import re

from mailwarden.body import Body, chunks
from mailwarden.message import Message

from .evaluation import MessageKind

__all__ = ["head", "message_kind"]

# RFC 9990 §2.5.1 (RFC 7489 §7.2.1.1) report file names: receiver!domain!begin!end[!id].ext
_REPORT_NAME = re.compile(rb"""name\*?=\s*"?[^"!\r\n;]*![^"!\r\n;]+!\d{6,}!\d{6,}""", re.I)
_REPORT_SUBJECT = re.compile(r"^\s*report\s+domain:", re.I)
_SCAN = 65536  # bytes of the body looked at for an attachment name


def _parameter(value: str, name: str) -> str:
    match = re.search(rf"(?:^|;)\s*{name}\s*=\s*\"?([^\";\s]+)", value, re.I)
    return match.group(1).lower() if match else ""


def head(body: Body, size: int) -> bytes:
    """The first `size` octets of a body, in memory or spooled (never read whole)."""
    return next(chunks(body, size), b"")[:size]


def message_kind(mail_from: str, message: Message | None) -> MessageKind:
    """BOUNCE for a null reverse path (RFC 5321 §4.5.5) or a delivery status notification
    (RFC 3464), REPORT for feedback reports (RFC 5965), DMARC aggregate report mail (its
    Subject or the file name of its attachment) and anything else of multipart/report."""
    if message is None:
        return MessageKind.BOUNCE if not mail_from.strip("<> ") else MessageKind.MESSAGE
    content_type = message.get("content-type")
    ctype = content_type.text() if content_type is not None else ""
    if ctype.split(";")[0].strip().lower() == "multipart/report":
        kind = _parameter(ctype, "report-type")
        if kind in ("delivery-status", "disposition-notification"):
            return MessageKind.BOUNCE
        return MessageKind.REPORT
    if not mail_from.strip("<> "):
        return MessageKind.BOUNCE
    subject = message.get("subject")
    if subject is not None and _REPORT_SUBJECT.match(subject.text()):
        return MessageKind.REPORT
    if content_type is not None and _REPORT_NAME.search(content_type.unfolded()):
        return MessageKind.REPORT  # the report file itself as the message's only part
    # an attachment named like a report: only a multipart message has one to look for
    if ctype.lstrip().lower().startswith("multipart/") and _REPORT_NAME.search(
        head(message.body, _SCAN)
    ):
        return MessageKind.REPORT
    return MessageKind.MESSAGE
