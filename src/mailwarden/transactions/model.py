"""One recent transaction as the dashboard shows it, and the figures it draws."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Check", "DomainCount", "Summary", "TransactionRecord", "normalize_key"]

MAX_TEXT = 998  # a field longer than an RFC 5322 line is cut


def _cut(text: str, limit: int = MAX_TEXT) -> str:
    """`text` at most `limit` characters, storable anywhere: NUL (which PostgreSQL refuses)
    and lone surrogates (undecodable bytes of a message) replaced."""
    if len(text) <= limit and text.isascii() and "\x00" not in text:
        return text  # the common case, as it is (ASCII has no surrogate)
    text = text[:limit].replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def normalize_key(key: str) -> str:
    """A queue id or Message-ID as stored and looked up: without surrounding space and angle
    brackets (RFC 5322 §3.6.4 msg-id), NUL removed."""
    return _cut(key.replace("\x00", "").strip().strip("<>").strip())


@dataclass(frozen=True, slots=True)
class Check:
    """One check's result and its reason (`spf`, `dkim:example.com`, `dmarc`, `dnsbl`...)."""

    name: str
    result: str
    reason: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "result": self.result, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    """What was decided about one transaction, and why. `reply_code` 0: relayed (the
    downstream's answer was the client's). `sender_domain` is the From (author) domain, whose
    DMARC result is `dmarc`. `greylist` is "deferred", "passed" or ""."""

    time: float
    queue_id: str
    message_id: str = ""
    client_ip: str = ""
    helo: str = ""
    mail_from: str = ""
    sender_domain: str = ""
    subject: str = ""
    action: str = "accept"
    stage: str = "data"
    reply_code: int = 0
    reply: str = ""
    dmarc: str = ""
    greylist: str = ""
    timed_out: tuple[str, ...] = ()
    symbols: tuple[str, ...] = ()
    checks: tuple[Check, ...] = field(default=())

    def bounded(self) -> TransactionRecord:
        """The record with every text cut to a sane length (a hostile message's fields are
        long)."""
        return TransactionRecord(
            time=self.time,
            queue_id=normalize_key(self.queue_id),
            message_id=normalize_key(self.message_id),
            client_ip=_cut(self.client_ip, 64),
            helo=_cut(self.helo, 255),
            mail_from=_cut(self.mail_from, 512),
            sender_domain=_cut(self.sender_domain.lower(), 255),
            subject=_cut(self.subject),
            action=_cut(self.action, 32),
            stage=_cut(self.stage, 32),
            reply_code=self.reply_code,
            reply=_cut(self.reply),
            dmarc=_cut(self.dmarc, 32),
            greylist=_cut(self.greylist, 32),
            timed_out=tuple(_cut(t, 32) for t in self.timed_out[:20]),
            symbols=tuple(_cut(s, 128) for s in self.symbols[:200]),
            checks=tuple(
                Check(_cut(c.name, 300), _cut(c.result, 32), _cut(c.reason))
                for c in self.checks[:100]
            ),
        )

    @property
    def refused(self) -> bool:
        return self.reply_code >= 500

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "queue_id": self.queue_id,
            "message_id": self.message_id,
            "client_ip": self.client_ip,
            "helo": self.helo,
            "mail_from": self.mail_from,
            "sender_domain": self.sender_domain,
            "subject": self.subject,
            "action": self.action,
            "stage": self.stage,
            "reply_code": self.reply_code or None,
            "reply": self.reply,
            "dmarc": self.dmarc,
            "greylist": self.greylist,
            "timed_out": list(self.timed_out),
            "symbols": list(self.symbols),
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclass(frozen=True, slots=True)
class DomainCount:
    """A sender (From) domain: its transactions and how many passed DMARC."""

    domain: str
    messages: int
    dmarc_pass: int

    @property
    def pass_rate(self) -> float:
        return self.dmarc_pass / self.messages if self.messages else 0.0


@dataclass(frozen=True, slots=True)
class Summary:
    """The figures of one window [since, until): the transactions by action per bucket, top
    symbols, top sender domains, clients refused most, greylisting and time-outs."""

    since: float
    until: float
    bucket: float
    timeline: dict[int, dict[str, int]]  # bucket index -> action -> transactions
    actions: dict[str, int]
    total: int
    symbols: list[tuple[str, int]]
    domains: list[DomainCount]
    refused_clients: list[tuple[str, int]]
    greylist: dict[str, int]  # deferred, passed
    timed_out: int  # transactions with a check out of time
