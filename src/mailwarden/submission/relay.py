"""The path to the smarthost, with the accounting that needs its answers.

A `Downstream` around the gateway's `DownstreamRelay`: every command passes through unchanged,
and what the smarthost answered is reported back to the submission checks: the recipients it
refused at RCPT (those refused with 5.1.x are nonexistent: Exim's compromise recipe counts
them), and whether it accepted the message, on which the rate-limit reservation is confirmed
or refunded. The client's answer is still the smarthost's (before-queue).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Protocol

from mailwarden.body import Body
from mailwarden.gateway import Downstream, Outbound, Reply, Session

__all__ = ["AccountingRelay", "SmarthostEvents"]

log = logging.getLogger("mailwarden.submission")


async def _tell(call: Awaitable[None]) -> None:
    """Accounting never breaks the relaying: a failure is logged."""
    try:
        await call
    except Exception:
        log.exception("submission accounting failed")


class SmarthostEvents(Protocol):
    """Told what the smarthost said for one session's transactions."""

    async def rcpt_refused(self, session: Session, rcpt: str, reply: Reply) -> None: ...

    async def data_answered(self, session: Session, replies: list[Reply]) -> None: ...

    async def transaction_closed(self, session: Session) -> None: ...


class _AccountingOutbound:
    def __init__(self, inner: Outbound, session: Session, events: SmarthostEvents) -> None:
        self.inner = inner
        self.session = session
        self.events = events

    async def mail(self, sender: str, params: dict[str, str | None]) -> Reply:
        return await self.inner.mail(sender, params)

    async def rcpt(self, rcpt: str) -> Reply:
        reply = await self.inner.rcpt(rcpt)
        if reply.code >= 500:
            await _tell(self.events.rcpt_refused(self.session, rcpt, reply))
        return reply

    async def data(self, head: bytes, body: Body = b"") -> list[Reply]:
        replies = await self.inner.data(head, body)
        await _tell(self.events.data_answered(self.session, replies))
        return replies

    async def reset(self) -> Reply:
        return await self.inner.reset()

    async def close(self) -> None:
        try:
            await self.inner.close()
        finally:
            await _tell(self.events.transaction_closed(self.session))


class AccountingRelay:
    """Wraps a Downstream; reports the smarthost's answers to `events`."""

    def __init__(self, inner: Downstream, events: SmarthostEvents) -> None:
        self.inner = inner
        self.events = events

    async def open(self, session: Session) -> Outbound:
        return _AccountingOutbound(await self.inner.open(session), session, self.events)

    async def close(self) -> None:
        await self.inner.close()
